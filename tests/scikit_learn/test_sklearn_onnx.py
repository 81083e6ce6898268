"""estimator.to_onnx() of bpfast.sklearn's estimators, run by onnxruntime, against predict and
predict_proba: bpfast's own (labels exactly, probabilities to 1e-12) and scikit-learn's
estimator fitted on the same data with the same random_state (which gives the same model in
float64), as the independent oracle."""

import io
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from sklearn.datasets import load_diabetes, load_iris, make_multilabel_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.neural_network import _multilayer_perceptron as sklearn_mlp  # noqa: E402

import bpfast.sklearn  # noqa: E402

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_DIABETES, Y_DIABETES = load_diabetes(return_X_y=True)
X_MULTI, Y_MULTI = make_multilabel_classification(n_samples=80, n_classes=4, random_state=0)


def session_outputs(model, X):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return {output.name: value for output, value in zip(session.get_outputs(), session.run(None, {"X": X}))}


def fit_both(kind, X, y, **params):
    params = dict(hidden_layer_sizes=(7, 5), max_iter=30, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = getattr(bpfast.sklearn, "MLP" + kind)(**params).fit(X, y)
        theirs = getattr(sklearn_mlp, "MLP" + kind)(**params).fit(X, y)
    return ours, theirs


CLASSIFICATION = {
    "multiclass": (X_IRIS, Y_IRIS),
    "binary": (X_IRIS, Y_IRIS == 1),
    "strings": (X_IRIS, np.array(["setosa", "versicolor", "virginica"])[Y_IRIS]),
    "binary_strings": (X_IRIS, np.array(["no", "yes"])[(Y_IRIS == 2).astype(int)]),
    "floats": (X_IRIS, Y_IRIS * 2.0),
    "multilabel": (X_MULTI, Y_MULTI),
}


@pytest.mark.parametrize("case, activation", [(case, "relu") for case in sorted(CLASSIFICATION)]
                         + [("multiclass", a) for a in ("tanh", "logistic", "identity")]
                         + [("binary", a) for a in ("tanh", "logistic", "identity")])
def test_classifier_onnx_gives_predict_and_predict_proba(case, activation):
    X, y = CLASSIFICATION[case]
    ours, theirs = fit_both("Classifier", X, y, activation=activation)
    outputs = session_outputs(ours.to_onnx(), X)
    assert list(outputs) == ["label", "probabilities"]
    np.testing.assert_array_equal(outputs["label"], ours.predict(X))
    np.testing.assert_array_equal(outputs["label"], theirs.predict(X))
    np.testing.assert_allclose(outputs["probabilities"], ours.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(outputs["probabilities"], theirs.predict_proba(X), rtol=0, atol=1e-8)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_regressor_onnx_gives_predict(loss, n_outputs):
    y = Y_DIABETES / 100 if n_outputs == 1 else np.c_[Y_DIABETES, Y_DIABETES[::-1]] / 100
    ours, theirs = fit_both("Regressor", X_DIABETES, y, loss=loss)
    outputs = session_outputs(ours.to_onnx(), X_DIABETES)
    assert list(outputs) == ["variable"] and outputs["variable"].shape == (len(X_DIABETES), n_outputs)
    expected = theirs.predict(X_DIABETES).reshape(len(X_DIABETES), n_outputs)
    np.testing.assert_allclose(outputs["variable"], ours.predict(X_DIABETES).reshape(expected.shape),
                               rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(outputs["variable"], expected, rtol=1e-8, atol=1e-10)


def test_a_float32_fit_gives_a_float32_model():
    X = X_IRIS.astype(np.float32)
    model = bpfast.sklearn.MLPClassifier(hidden_layer_sizes=(6,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, Y_IRIS)
    outputs = session_outputs(model.to_onnx(), X)
    assert outputs["probabilities"].dtype == np.float32
    np.testing.assert_allclose(outputs["probabilities"], model.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(outputs["label"], model.predict(X))


def test_to_onnx_writes_to_a_path_or_a_file_and_checks_its_arguments(tmp_path):
    model = bpfast.sklearn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0)
    with pytest.raises(NotFittedError):
        model.to_onnx()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_DIABETES, Y_DIABETES / 100)
    written = model.to_onnx(tmp_path / "model.onnx", opset=13)
    assert (tmp_path / "model.onnx").read_bytes() == written.SerializeToString()
    assert written.opset_import[0].version == 13
    buffer = io.BytesIO()
    model.to_onnx(buffer)
    assert buffer.getvalue() == model.to_onnx().SerializeToString()
    with pytest.raises(TypeError, match="path"):
        model.to_onnx(42)
    with pytest.raises(ValueError, match="opset"):
        model.to_onnx(opset=5)


# ---------------------------------------------------------------- skl2onnx


def test_skl2onnx_converts_a_pipeline_that_holds_them():
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bpfast.sklearn.register_skl2onnx()
    bpfast.sklearn.register_skl2onnx()  # idempotent
    for kind, X, y in [("Classifier", X_IRIS, Y_IRIS), ("Classifier", X_IRIS, Y_IRIS == 2),
                       ("Regressor", X_DIABETES, Y_DIABETES / 100)]:
        Estimator = getattr(bpfast.sklearn, "MLP" + kind)
        pipeline = make_pipeline(StandardScaler(), Estimator(hidden_layer_sizes=(6,), max_iter=30, random_state=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline.fit(X, y)
        X32 = X.astype(np.float32)
        options = {Estimator: {"zipmap": False}} if kind == "Classifier" else None
        model = skl2onnx.to_onnx(pipeline, X32[:1], options=options)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        outputs = session.run(None, {session.get_inputs()[0].name: X32})
        if kind == "Classifier":
            label, probabilities = outputs
            np.testing.assert_allclose(probabilities, pipeline.predict_proba(X), atol=1e-5)
            agree = np.mean(label == pipeline.predict(X))
            assert agree >= 0.99, agree  # float32 graph: a probability at 0.5 may round either way
        else:
            np.testing.assert_allclose(outputs[0].ravel(), pipeline.predict(X), rtol=1e-4, atol=1e-4)

    poisson = bpfast.sklearn.MLPRegressor(loss="poisson", hidden_layer_sizes=(3,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        poisson.fit(X_DIABETES, Y_DIABETES / 100)
    with pytest.raises(NotImplementedError, match="poisson"):
        skl2onnx.to_onnx(poisson, X_DIABETES[:1].astype(np.float32))
