"""Network.predict_proba, evaluate and summary against closed forms.

The oracle is a numpy forward pass written here from the net's W and b (softmax,
sigmoid, cross-entropy, squared error and accuracy in their textbook forms), and
for summary the parameter count n_in·n_out + n_out of each layer times the dtype's
size. Tolerance: conftest.assert_close's for float64 (1e-12 relative).
"""

import io
import re
import warnings

import numpy as np
import pytest

import bpfast
from bpfast import optim, reference
from conftest import assert_close

NETS = [bpfast.Network, reference.Network]
IDS = ["native", "reference"]
ACTIVATE = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "identity": lambda z: z,
            "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
            "softmax": lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)}


def numpy_forward(net, X):
    A = np.asarray(X, dtype=np.float64)
    for layer in net.layers:
        A = ACTIVATE[layer.activation](A @ layer.W.T.astype(np.float64) + layer.b)
    return A


def softmax_net(cls, seed=3):
    return cls([5, 7, 4], activation="tanh", output="softmax", dtype="float64", seed=seed)


# ---------------------------------------------------------------- predict_proba

@pytest.mark.parametrize("cls", NETS, ids=IDS)
def test_predict_proba_of_a_softmax_net_is_the_softmax(cls, rng):
    net = softmax_net(cls)
    X = rng.standard_normal((9, 5))
    P = net.predict_proba(X)
    assert P.shape == (9, 4) and P.dtype == np.float64
    assert_close(P, numpy_forward(net, X), np.float64)
    assert_close(P.sum(axis=1), np.ones(9), np.float64)
    assert np.array_equal(P.argmax(axis=1), net.predict(X))


@pytest.mark.parametrize("cls", NETS, ids=IDS)
def test_predict_proba_of_one_sigmoid_unit_has_both_classes(cls, rng):
    net = cls([3, 6, 1], output="sigmoid", dtype="float64", seed=5)
    X = rng.standard_normal((11, 3))
    p = numpy_forward(net, X)[:, 0]
    P = net.predict_proba(X)
    assert P.shape == (11, 2)
    assert_close(P, np.column_stack([1 - p, p]), np.float64)
    assert np.array_equal(P.argmax(axis=1), net.predict(X))  # the column of predict's label


def test_predict_proba_of_several_sigmoid_units_is_each_units_probability(rng):
    net = bpfast.Network([3, 5, 3], output="sigmoid", loss="binary_cross_entropy", dtype="float64", seed=6)
    X = rng.standard_normal((4, 3))
    assert_close(net.predict_proba(X), numpy_forward(net, X), np.float64)


def test_predict_proba_refuses_a_regressor_and_bad_input(rng):
    with pytest.raises(ValueError, match=r"predict_proba needs a classifier.*squared_error"):
        bpfast.Network([3, 2], seed=0).predict_proba(rng.standard_normal((2, 3)))
    net = softmax_net(bpfast.Network)
    with pytest.raises(ValueError, match=r"^X must have shape \(batch, 5\)"):
        net.predict_proba(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"^X must be finite"):
        net.predict_proba(np.full((2, 5), np.nan))
    with pytest.raises(TypeError, match=r"^X must hold real numbers"):
        net.predict_proba(np.full((2, 5), "a"))


# ---------------------------------------------------------------- evaluate

@pytest.mark.parametrize("cls", NETS, ids=IDS)
def test_evaluate_a_classifier_gives_loss_and_accuracy(cls, rng):
    net = softmax_net(cls)
    X, labels = rng.standard_normal((13, 5)), rng.integers(0, 4, 13)
    P = numpy_forward(net, X)
    result = net.evaluate(X, labels)
    assert set(result) == {"loss", "accuracy"}
    assert_close(result["loss"], -np.mean(np.log(P[np.arange(13), labels])), np.float64)
    assert result["accuracy"] == np.mean(P.argmax(axis=1) == labels)
    assert net.evaluate(X, np.eye(4)[labels]) == pytest.approx(result, rel=1e-12)  # one-hot targets alike


def test_evaluate_a_single_sigmoid_unit(rng):
    net = bpfast.Network([3, 4, 1], output="sigmoid", dtype="float64", seed=8)
    X, labels = rng.standard_normal((10, 3)), rng.integers(0, 2, 10)
    p = numpy_forward(net, X)[:, 0]
    result = net.evaluate(X, labels)
    assert_close(result["loss"], -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)), np.float64)
    assert result["accuracy"] == np.mean((p > 0.5) == labels)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_evaluate_a_regressor_gives_the_loss_only(reduction, rng):
    net = bpfast.Network([4, 5, 2], reduction=reduction, dtype="float64", seed=9)
    X, T = rng.standard_normal((7, 4)), rng.standard_normal((7, 2))
    per_sample = 0.5 * ((numpy_forward(net, X) - T) ** 2).sum(axis=1)  # ½‖y − t‖²
    result = net.evaluate(X, T)
    assert list(result) == ["loss"]
    assert_close(result["loss"], per_sample.mean() if reduction == "mean" else per_sample.sum(), np.float64)


def test_evaluate_on_the_validation_data_is_what_fit_records(rng):
    net = softmax_net(bpfast.Network)
    X, labels = rng.standard_normal((40, 5)), rng.integers(0, 4, 40)
    X_val, labels_val = rng.standard_normal((12, 5)), rng.integers(0, 4, 12)
    history = net.fit(X, labels, epochs=3, batch_size=8, validation_data=(X_val, labels_val))
    result = net.evaluate(X_val, labels_val)
    assert result["loss"] == history.history["val_loss"][-1]
    assert result["accuracy"] == history.history["val_accuracy"][-1]


def test_evaluate_names_the_bad_argument():
    net = softmax_net(bpfast.Network)
    with pytest.raises(ValueError, match=r"^T must have 3 rows to match X"):
        net.evaluate(np.ones((3, 5)), [0, 1])
    with pytest.raises(ValueError, match=r"^T labels must lie in \[0, 4\)"):
        net.evaluate(np.ones((2, 5)), [0, 4])
    with pytest.raises(ValueError, match=r"^X must have shape \(batch, 5\)"):
        net.evaluate(np.ones((2, 3)), [0, 1])
    with pytest.raises(TypeError, match=r"^T must hold.*np\.unique\(T, return_inverse=True\)"):
        net.evaluate(np.ones((2, 5)), ["a", "b"])


# ---------------------------------------------------------------- summary

def summary_of(net):
    out = io.StringIO()
    assert net.summary(file=out) is None
    return out.getvalue()


def kib(n):
    """The byte counts of these nets (under 1 GiB), as summary writes them."""
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1024 ** 2 else f"{n / 1024 ** 2:.1f} MiB"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls", NETS, ids=IDS)
def test_summary_lists_layers_parameters_and_memory(cls, dtype):
    sizes = [784, 128, 33, 10]
    net = cls(sizes, activation=["relu", "tanh"], output="softmax", dtype=dtype, seed=0, optimizer=optim.Adam(0.01))
    text = summary_of(net)
    lines = text.splitlines()
    item = np.dtype(dtype).itemsize
    assert f"dtype {dtype}" in lines[0] and f"compute {dtype}" in lines[0] and "loss cross_entropy" in lines[0]
    total = 0
    for i, (n_in, n_out, act) in enumerate(zip(sizes, sizes[1:], ["relu", "tanh", "softmax"])):
        count = n_in * n_out + n_out  # W and b
        total += count
        row = next(line for line in lines if line.startswith(f"{i} "))
        assert row.split() == [str(i), str(n_in), "->", str(n_out), act, f"{count:,}", *kib(count * item).split()]
    assert total == 105_077  # 784·128 + 128 + 128·33 + 33 + 33·10 + 10
    assert next(line for line in lines if line.startswith("total")).split() == \
        ["total", f"{total:,}", *kib(total * item).split()]
    # Adam keeps two moments per parameter; the gradients are one more copy of the weights.
    assert lines[-1] == (f"training keeps: weights {kib(total * item)}, gradients {kib(total * item)}, "
                         f"optimizer state {kib(2 * total * item)}")
    assert any(line.startswith("optimizer Adam(lr=0.01") for line in lines)


def test_summary_shows_mixed_precision_and_prints_to_stdout(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bfloat16 emulated on this CPU
        net = bpfast.Network([3, 2], output="sigmoid", dtype="float32", compute="bfloat16", seed=0)
    net.summary()
    first = capsys.readouterr().out.splitlines()[0]
    assert re.search(r"\bdtype float32\b", first) and re.search(r"\bcompute bfloat16\b", first)


def test_summary_refuses_a_file_it_cannot_write_to():
    with pytest.raises(TypeError, match=r"^file must be a text stream"):
        bpfast.Network([3, 2]).summary(file="out.txt")
