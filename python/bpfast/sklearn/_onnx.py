"""ONNX for bpfast.sklearn's estimators: estimator.to_onnx(path) (needs the onnx package).

The network is bpfast.onnx's graph (per layer Gemm with transB=1, then its
activation; for a Poisson regressor an Exp after the last layer), in the
estimator's dtype (float64 after a float64 fit, float32 after a float32 one),
with input "X" [batch, n_features_in_]. What follows it gives predict and
predict_proba as the estimator does:

- MLPRegressor: "variable" [batch, n_outputs_], predict's values (predict
  returns them as a vector when n_outputs_ is 1).
- MLPClassifier: "label" and "probabilities" (skl2onnx's names).
  probabilities is predict_proba: the softmax for several classes, [1 - p, p]
  for two, the sigmoids for multilabel indicators. label is predict: the class
  of the largest probability (the first of a tie, as numpy's argmax) taken from
  classes_, classes_[1] where p > 0.5 for two classes, and for multilabel the
  indicator matrix (p > 0.5, int64). Labels are int64 for integer or boolean
  classes_, strings for string classes_, float64 for float classes_.
"""

import os

import numpy as np

from .. import onnx as network_onnx

HIDDEN = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
OUTPUT = {"softmax": "softmax", "logistic": "sigmoid", "identity": "identity", "exp": "identity"}


class _Layer:
    def __init__(self, W, b, activation):
        self.W, self.b, self.activation = W, b, activation


class _FittedNetwork:
    """What bpfast.onnx.export reads (sizes, dtype, layers of W (n_out, n_in), b, activation),
    from a fitted estimator's coefs_ and intercepts_."""

    def __init__(self, estimator):
        dtype = np.dtype(estimator.coefs_[0].dtype)
        self.dtype = dtype
        self.sizes = [int(estimator.coefs_[0].shape[0])] + [int(c.shape[1]) for c in estimator.coefs_]
        activations = [HIDDEN[estimator.activation]] * (len(estimator.coefs_) - 1)
        activations.append(OUTPUT[estimator.out_activation_])
        self.layers = [_Layer(np.ascontiguousarray(np.asarray(c, dtype=dtype).T), np.asarray(b, dtype=dtype).copy(),
                              a)
                       for c, b, a in zip(estimator.coefs_, estimator.intercepts_, activations)]


def _label_tensor(onnx, classes, name):
    """classes_ as an ONNX initializer: int64, string or float64."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "iub":
        values = classes.astype(np.int64)
    elif classes.dtype.kind in "US" or classes.dtype == object:
        values = np.array([str(c) for c in classes], dtype=object)
    elif classes.dtype.kind == "f":
        values = classes.astype(np.float64)
    else:
        raise TypeError(f"classes_ of dtype {classes.dtype} have no ONNX tensor type; integer, boolean, float "
                        "and string labels do")
    if values.dtype == object:
        return onnx.helper.make_tensor(name, onnx.TensorProto.STRING, [len(values)],
                                       [v.encode("utf-8") for v in values])
    return onnx.numpy_helper.from_array(values, name)


def export(estimator, path=None, opset=None):
    """The ONNX model of a fitted bpfast.sklearn estimator (see the module docstring); written to
    path when given (a str, an os.PathLike, or a binary file object). Returns the onnx.ModelProto."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    if path is not None and not isinstance(path, (str, os.PathLike)) and not callable(getattr(path, "write", None)):
        raise TypeError(f"path must be None, a str, an os.PathLike or a binary file object with a write method; "
                        f"got {type(path).__name__}")
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as error:
        raise ImportError('exporting to ONNX needs the onnx package: pip install onnx (or the "onnx" extra of '
                          'bpfast)') from error
    opset = network_onnx._checked_opset(opset, onnx.defs.onnx_opset_version())
    net = _FittedNetwork(estimator)
    model = network_onnx._build_model(onnx, net, opset)
    graph = model.graph
    helper = onnx.helper
    elem_type = helper.np_dtype_to_tensor_dtype(net.dtype)
    batch = network_onnx.BATCH_DIM
    n_out = net.sizes[-1]
    last = network_onnx.OUTPUT_NAME
    del graph.output[:]
    if not hasattr(estimator, "classes_"):  # a regressor
        if estimator.out_activation_ == "exp":
            graph.node.append(helper.make_node("Exp", [last], ["variable"], name="poisson_exp"))
        else:
            graph.node.append(helper.make_node("Identity", [last], ["variable"], name="output"))
        graph.output.append(helper.make_tensor_value_info("variable", elem_type, [batch, n_out]))
    else:
        _classifier_outputs(onnx, estimator, graph, last, elem_type, batch, n_out)
    graph.name = f"bpfast_{type(estimator).__name__}"
    model.doc_string = (f"bpfast.sklearn.{type(estimator).__name__}: " + model.doc_string
                        + ("; outputs label and probabilities (predict and predict_proba)"
                           if hasattr(estimator, "classes_") else "; output variable (predict)"))
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        data = model.SerializeToString()
        if callable(getattr(path, "write", None)):
            path.write(data)
        else:
            with open(path, "wb") as file:
                file.write(data)
    return model


def _classifier_outputs(onnx, estimator, graph, last, elem_type, batch, n_out):
    helper = onnx.helper
    nodes = graph.node
    n_classes = len(estimator.classes_)
    label_type = None
    if estimator._label_binarizer.y_type_.startswith("multilabel"):
        nodes.append(helper.make_node("Identity", [last], ["probabilities"], name="probabilities"))
        graph.initializer.append(onnx.numpy_helper.from_array(np.array(0.5, dtype=net_dtype(elem_type)), "half"))
        nodes.append(helper.make_node("Greater", [last, "half"], ["above"], name="threshold"))
        nodes.append(helper.make_node("Cast", ["above"], ["label"], name="label", to=onnx.TensorProto.INT64))
        graph.output.append(helper.make_tensor_value_info("label", onnx.TensorProto.INT64, [batch, n_out]))
        graph.output.append(helper.make_tensor_value_info("probabilities", elem_type, [batch, n_out]))
        return
    classes = _label_tensor(onnx, estimator.classes_, "classes")
    graph.initializer.append(classes)
    label_type = classes.data_type
    if n_out == 1:  # two classes: p of classes_[1]
        graph.initializer.append(onnx.numpy_helper.from_array(np.array([1.0], dtype=net_dtype(elem_type)), "one"))
        nodes.append(helper.make_node("Sub", ["one", last], ["p0"], name="complement"))
        nodes.append(helper.make_node("Concat", ["p0", last], ["probabilities"], name="probabilities", axis=1))
        graph.initializer.append(onnx.numpy_helper.from_array(np.array(0.5, dtype=net_dtype(elem_type)), "half"))
        nodes.append(helper.make_node("Greater", [last, "half"], ["above"], name="threshold"))
        nodes.append(helper.make_node("Cast", ["above"], ["above_int"], name="to_index", to=onnx.TensorProto.INT64))
        nodes.append(helper.make_node("Reshape", ["above_int", "flat_shape"], ["index"], name="index"))
        graph.initializer.append(onnx.numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat_shape"))
    else:
        nodes.append(helper.make_node("Identity", [last], ["probabilities"], name="probabilities"))
        nodes.append(helper.make_node("ArgMax", [last], ["index"], name="argmax", axis=1, keepdims=0))
    nodes.append(helper.make_node("Gather", ["classes", "index"], ["label"], name="label", axis=0))
    graph.output.append(helper.make_tensor_value_info("label", label_type, [batch]))
    graph.output.append(helper.make_tensor_value_info("probabilities", elem_type, [batch, n_classes]))


def net_dtype(elem_type):
    """The numpy dtype of an ONNX element type."""
    import onnx.helper

    return onnx.helper.tensor_dtype_to_np_dtype(elem_type)


_REGISTERED = []


def register_skl2onnx(classifier, regressor):
    """Register bpfast.sklearn's MLPClassifier and MLPRegressor (given: classifier, regressor) with skl2onnx (needs the skl2onnx
    package), through its documented way to add an estimator (skl2onnx.update_registered_converter),
    so that skl2onnx.to_onnx / convert_sklearn converts them, and pipelines that hold them. They
    take skl2onnx's own converters and shape calculators for scikit-learn's MLPs, which read the
    same fitted attributes (coefs_, intercepts_, activation, out_activation_, classes_), and the
    classifier its options (zipmap, nocl, output_class_labels). A Poisson regressor
    (out_activation_ "exp") has no skl2onnx converter, as scikit-learn's own has none: its
    conversion raises NotImplementedError; estimator.to_onnx() exports it. Calling it again does
    nothing. Returns None."""
    if _REGISTERED:
        return
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx.operator_converters.multilayer_perceptron import (
            convert_sklearn_mlp_classifier, convert_sklearn_mlp_regressor)
        from skl2onnx.shape_calculators.linear_classifier import calculate_linear_classifier_output_shapes
        from skl2onnx.shape_calculators.linear_regressor import calculate_linear_regressor_output_shapes
    except ImportError as error:
        raise ImportError("register_skl2onnx needs the skl2onnx package: pip install skl2onnx (or the "
                          '"sklearn" extra of bpfast)') from error
    def convert_regressor(scope, operator, container):
        if operator.raw_operator.out_activation_ == "exp":
            raise NotImplementedError("skl2onnx has no converter for an MLPRegressor with loss='poisson' "
                                      "(out_activation_ 'exp'), scikit-learn's included; "
                                      "bpfast.sklearn.MLPRegressor.to_onnx() exports one")
        return convert_sklearn_mlp_regressor(scope, operator, container)

    update_registered_converter(classifier, "BpfastMLPClassifier", calculate_linear_classifier_output_shapes,
                                convert_sklearn_mlp_classifier,
                                options={"zipmap": [True, False, "columns"], "output_class_labels": [False, True],
                                         "nocl": [True, False]})
    update_registered_converter(regressor, "BpfastMLPRegressor", calculate_linear_regressor_output_shapes,
                                convert_regressor)
    _REGISTERED.append(True)
