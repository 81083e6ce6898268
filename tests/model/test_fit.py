"""Network.fit against a plain numpy loop, and fit's History, validation, patience,
callbacks, progress output and non-finite guard.

The oracle loop slices the mini-batches itself, drawing each epoch's order
from np.random.default_rng([seed, 1]).permutation(n) as fit documents, and
steps a bpfast.reference.Network (numpy kernels) with train_step. Tolerance:
1e-10 relative to max(1, max|expected|) in float64 for losses and weights
after several epochs. Validation records, callbacks' logs, the restored best
weights and the weights kept by the non-finite guard are compared exactly.
"""

import io
import re
import sys

import numpy as np
import pytest

import bpfast
from bpfast import _progress, optim, reference
from bpfast.network import History
from conftest import assert_close, assert_unchanged, snapshot

F64 = np.float64
TRAJECTORY_RTOL = 1e-10


def params_of(net):
    return [p.copy() for p in net.parameters()]


def assert_params_equal(net, expected):
    """Bit-for-bit equality of every W and b with a list of arrays."""
    params = net.parameters()
    assert len(params) == len(expected)
    for p, e in zip(params, expected):
        assert p.dtype == e.dtype and np.array_equal(p, e)


def numpy_fit(ref, X, T, epochs, batch_size, seed, shuffle=True):
    """fit written out: per-epoch order, batch slicing, size-weighted mean of batch losses."""
    n = X.shape[0]
    rng = np.random.default_rng([seed, 1])
    losses = []
    for _ in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            value = ref.train_step(X[rows], T[rows])
            total += value * rows.size if ref.reduction == "mean" else value
        losses.append(total / n if ref.reduction == "mean" else total)
    return losses


OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=0.1),
    "sgd-momentum": lambda: optim.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3),
    "adam": lambda: optim.Adam(lr=0.01),
    "adamw-clip": lambda: optim.AdamW(lr=0.01, clip_norm=0.5, schedule=optim.InverseScaling(0.3)),
}


# ---------------------------------------------------------------- against the numpy loop

@pytest.mark.parametrize("batch_size", [10, 7, 1, 40, 64], ids=lambda b: f"batch{b}")
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_fit_matches_a_numpy_loop_over_the_reference(opt, batch_size):
    # n = 40: batch sizes that divide it (10, 1, 40), that do not (7) and larger than n (64).
    rng = np.random.default_rng(1)
    X, labels = rng.standard_normal((40, 6)), rng.integers(0, 4, 40)
    kw = dict(activation="tanh", output="softmax", dtype="float64", seed=21)
    net = bpfast.Network([6, 9, 4], optimizer=OPTIMIZERS[opt](), **kw)
    ref = reference.Network([6, 9, 4], optimizer=OPTIMIZERS[opt](), **kw)
    history = net.fit(X, labels, epochs=4, batch_size=batch_size)
    expected = numpy_fit(ref, X, labels, 4, batch_size, seed=21)
    assert_close(np.array(history), np.array(expected), F64, TRAJECTORY_RTOL)
    assert_close(np.array(history.history["loss"]), np.array(expected), F64, TRAJECTORY_RTOL)
    for p, e in zip(net.parameters(), ref.parameters()):
        assert_close(p, e, F64, TRAJECTORY_RTOL)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_with_dense_targets_matches_the_numpy_loop(shuffle, reduction):
    rng = np.random.default_rng(2)
    X, T = rng.standard_normal((33, 5)), rng.standard_normal((33, 2))
    kw = dict(activation="relu", output="identity", reduction=reduction, dtype="float64", seed=4)
    lr = 0.05 if reduction == "mean" else 0.005
    net = bpfast.Network([5, 8, 2], optimizer=optim.SGD(lr=lr, momentum=0.5), **kw)
    ref = reference.Network([5, 8, 2], optimizer=optim.SGD(lr=lr, momentum=0.5), **kw)
    history = net.fit(X, T, epochs=3, batch_size=8, shuffle=shuffle)
    expected = numpy_fit(ref, X, T, 3, 8, seed=4, shuffle=shuffle)
    assert_close(np.array(history), np.array(expected), F64, TRAJECTORY_RTOL)
    for p, e in zip(net.parameters(), ref.parameters()):
        assert_close(p, e, F64, TRAJECTORY_RTOL)


def test_consecutive_fits_continue_the_shuffle_stream_and_optimizer_state():
    # fit(epochs=2) then fit(epochs=2) is one 4-epoch run: the permutation Generator and
    # Adam's moments carry over between calls.
    rng = np.random.default_rng(3)
    X, labels = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    kw = dict(output="softmax", dtype="float64", seed=8)
    net = bpfast.Network([4, 6, 3], optimizer=optim.Adam(lr=0.02), **kw)
    ref = reference.Network([4, 6, 3], optimizer=optim.Adam(lr=0.02), **kw)
    history = list(net.fit(X, labels, epochs=2, batch_size=8)) + list(net.fit(X, labels, epochs=2, batch_size=8))
    expected = numpy_fit(ref, X, labels, 4, 8, seed=8)
    assert_close(np.array(history), np.array(expected), F64, TRAJECTORY_RTOL)


def test_fit_lr_overrides_that_call_only():
    rng = np.random.default_rng(4)
    X, labels = rng.standard_normal((20, 4)), rng.integers(0, 3, 20)
    kw = dict(output="softmax", dtype="float64", seed=9)
    net = bpfast.Network([4, 5, 3], optimizer=optim.SGD(lr=0.1, momentum=0.9), **kw)
    ref = reference.Network([4, 5, 3], optimizer=optim.SGD(lr=0.1, momentum=0.9), **kw)
    net.fit(X, labels, epochs=2, batch_size=20, shuffle=False, lr=0.5)
    expected = [ref.train_step(X, labels, lr=0.5) for _ in range(2)]
    expected += [ref.train_step(X, labels) for _ in range(2)]
    history = net.fit(X, labels, epochs=2, batch_size=20, shuffle=False)
    assert net.optimizer.lr == 0.1
    assert_close(np.array(history), np.array(expected[2:]), F64, TRAJECTORY_RTOL)
    for p, e in zip(net.parameters(), ref.parameters()):
        assert_close(p, e, F64, TRAJECTORY_RTOL)


# ---------------------------------------------------------------- History

def test_history_is_the_list_of_epoch_losses():
    rng = np.random.default_rng(5)
    X, labels = rng.standard_normal((25, 3)), rng.integers(0, 2, 25)
    net = bpfast.Network([3, 4, 2], output="softmax", dtype="float64", seed=1)
    seen = []
    history = net.fit(X, labels, epochs=5, batch_size=6, callbacks=[lambda e, logs: seen.append(logs["loss"])])
    assert isinstance(history, list) and isinstance(history, History)
    assert len(history) == 5
    assert list(history) == history.history["loss"] == seen
    assert set(history.history) == {"loss"}
    assert all(isinstance(v, float) for v in history)
    assert history.stopped_early is False
    assert history.best_epoch == int(np.argmin(history)) + 1  # epochs count from 1


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("targets", ["labels", "one-hot"])
def test_validation_loss_and_accuracy_for_a_classifier(targets):
    rng = np.random.default_rng(6)
    X, labels = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    X_val, labels_val = rng.standard_normal((17, 5)), rng.integers(0, 3, 17)
    T_val = labels_val if targets == "labels" else np.eye(3)[labels_val]
    net = bpfast.Network([5, 7, 3], output="softmax", dtype="float64", seed=2)
    expected = {"val_loss": [], "val_accuracy": []}

    def record(epoch, logs):
        expected["val_loss"].append(net.loss(X_val, T_val))
        expected["val_accuracy"].append(float(np.mean(net.predict(X_val) == labels_val)))
        assert logs["val_loss"] == expected["val_loss"][-1]
        assert logs["val_accuracy"] == expected["val_accuracy"][-1]

    history = net.fit(X, labels, epochs=6, batch_size=8, validation_data=(X_val, T_val), callbacks=[record])
    assert set(history.history) == {"loss", "val_loss", "val_accuracy"}
    assert history.history["val_loss"] == expected["val_loss"]
    assert history.history["val_accuracy"] == expected["val_accuracy"]
    assert len(set(expected["val_loss"])) == 6  # the records change from epoch to epoch
    assert history.best_epoch == int(np.argmin(expected["val_loss"])) + 1


def test_validation_accuracy_for_a_single_sigmoid_output():
    rng = np.random.default_rng(7)
    X, labels = rng.standard_normal((30, 4)), rng.integers(0, 2, 30)
    X_val, labels_val = rng.standard_normal((11, 4)), rng.integers(0, 2, 11)
    net = bpfast.Network([4, 5, 1], output="sigmoid", dtype="float64", seed=3)
    accuracies = []
    history = net.fit(X, labels, epochs=4, batch_size=5, validation_data=(X_val, labels_val),
                      callbacks=[lambda e, l: accuracies.append(float(np.mean(net.predict(X_val) == labels_val)))])
    assert history.history["val_accuracy"] == accuracies


def test_validation_for_a_regressor_has_no_accuracy():
    rng = np.random.default_rng(8)
    X, T = rng.standard_normal((30, 4)), rng.standard_normal((30, 2))
    X_val, T_val = rng.standard_normal((9, 4)), rng.standard_normal((9, 2))
    net = bpfast.Network([4, 5, 2], dtype="float64", seed=3)
    losses = []
    history = net.fit(X, T, epochs=3, batch_size=10, validation_data=(X_val, T_val),
                      callbacks=[lambda e, l: losses.append(net.loss(X_val, T_val))])
    assert set(history.history) == {"loss", "val_loss"}
    assert history.history["val_loss"] == losses



BAD_PAIRS = {  # (X, T) pairs for Network([3, 4, 3], softmax), each wrong in one way
    "T rows": (np.ones((50, 3)), np.zeros(49, int)),
    "T 2-D rows": (np.ones((50, 3)), np.ones((49, 3))),
    "T columns": (np.ones((50, 3)), np.ones((50, 2))),
    "T 3-D": (np.ones((50, 3)), np.ones((50, 3, 1))),
    "T out of range": (np.ones((50, 3)), np.full(50, 5)),
    "T fractional": (np.ones((50, 3)), np.full(50, 0.5)),
    "T NaN": (np.ones((50, 3)), np.full((50, 3), np.nan)),
    "T dtype": (np.ones((50, 3)), np.ones(50, complex)),
    "X columns": (np.ones((50, 2)), np.zeros(50, int)),
    "X 1-D": (np.ones(3), np.zeros(3, int)),
    "X empty": (np.ones((0, 3)), np.zeros(0, int)),
    "X NaN": (np.full((50, 3), np.nan), np.zeros(50, int)),
    "X dtype": (np.full((50, 3), "a"), np.zeros(50, int)),
}


@pytest.mark.parametrize("case", list(BAD_PAIRS))
def test_validation_data_errors_name_X_val_and_T_val(case):
    # The oracle: the same pair given as fit's training data, whose error names X and T;
    # as validation_data the message is that one with X_val and T_val in their place.
    X_bad, T_bad = BAD_PAIRS[case]
    net = bpfast.Network([3, 4, 3], output="softmax", seed=0)
    X, labels = np.ones((8, 3)), np.zeros(8, int)
    with pytest.raises((ValueError, TypeError)) as as_training:
        net.fit(X_bad, T_bad, epochs=1)
    before = snapshot(net)
    with pytest.raises(as_training.type) as as_validation:
        net.fit(X, labels, epochs=1, validation_data=(X_bad, T_bad))
    expected = re.sub(r"\bT\b", "T_val", re.sub(r"\bX\b", "X_val", str(as_training.value)))
    assert str(as_validation.value) == expected
    assert not re.search(r"\b[XT]\b", str(as_validation.value))  # neither X nor T is blamed
    assert_unchanged(net, before)


def test_validation_rows_error_names_X_val():
    net = bpfast.Network([3, 4, 3], output="softmax", seed=0)
    with pytest.raises(ValueError, match=r"^T_val must have 50 rows to match X_val; got shape \(49,\)$"):
        net.fit(np.ones((8, 3)), np.zeros(8, int), validation_data=(np.ones((50, 3)), np.zeros(49, int)))


# ---------------------------------------------------------------- string labels

def test_string_labels_are_refused_with_the_way_forward():
    rng = np.random.default_rng(30)
    names = np.array(["cat", "dog", "emu"])
    X, words = rng.standard_normal((24, 3)), names[rng.integers(0, 3, 24)]
    net = bpfast.Network([3, 4, 3], output="softmax", dtype="float64", seed=4)
    before = snapshot(net)
    with pytest.raises(TypeError, match=r"^T must hold") as refused:
        net.fit(X, words, epochs=2)
    message = str(refused.value)
    assert "np.unique(T, return_inverse=True)" in message and "bpfast.sklearn" in message
    assert_unchanged(net, before)
    with pytest.raises(TypeError, match=r"^T_val must hold.*np\.searchsorted\(classes, T_val\)"):
        net.fit(X, np.zeros(24, int), epochs=1, validation_data=(X, words))
    # Following the advice trains as labels encoded by hand (sorted names: cat 0, dog 1, emu 2).
    classes, T = np.unique(words, return_inverse=True)
    by_hand = np.array([{"cat": 0, "dog": 1, "emu": 2}[w] for w in words])
    assert list(classes) == ["cat", "dog", "emu"]
    twin = bpfast.Network([3, 4, 3], output="softmax", dtype="float64", seed=4)
    assert list(net.fit(X, T, epochs=2)) == list(twin.fit(X, by_hand, epochs=2))
    assert_params_equal(net, params_of(twin))
    assert set(classes[net.predict(X)]) <= set(names)


def test_string_labels_work_in_bpfast_sklearn_as_the_message_says():
    pytest.importorskip("sklearn")
    from bpfast.sklearn import MLPClassifier
    rng = np.random.default_rng(31)
    X, words = rng.standard_normal((30, 3)), np.array(["no", "yes"])[rng.integers(0, 2, 30)]
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, words)
    assert set(clf.predict(X)) <= {"no", "yes"} and list(clf.classes_) == ["no", "yes"]


# ---------------------------------------------------------------- patience

def line_net(w0=0.0):
    """y = w·x + b with w = w0, b = 0, trained on t = 2x: w walks from w0 towards 2."""
    net = bpfast.Network([1, 1], output="identity", dtype="float64", seed=0,
                         optimizer=optim.SGD(lr=0.1))
    net.layers[0].W = [[w0]]
    net.layers[0].b = [0.0]
    return net


def test_patience_stops_at_the_validation_minimum_and_restores_it():
    # Training pulls w from 0 towards 2; the validation targets t = x want w = 1. In closed
    # form (full batch, mean x² = 1, no bias gradient since mean x = 0) w_k = 2(1 − 0.9^k) after
    # epoch k−1, so the validation loss falls until w passes 1 and rises after.
    x = np.array([[-1.0], [1.0]])
    net = line_net()
    captured = []
    history = net.fit(x, 2 * x, epochs=50, batch_size=2, shuffle=False, patience=3,
                      validation_data=(x, x), callbacks=[lambda e, l: captured.append(params_of(net))])
    w = 2 * (1 - 0.9 ** np.arange(1, 51))
    best = int(np.argmin((w - 1) ** 2))
    assert best == 6
    assert history.best_epoch == best + 1
    assert history.stopped_early is True
    assert len(history) == best + 3 + 1
    assert np.argmin(history.history["val_loss"]) == best
    assert_close(np.array(history.history["val_loss"]), 0.5 * (w[:len(history)] - 1) ** 2, F64, 1e-12)
    assert_params_equal(net, captured[best])
    assert not np.array_equal(captured[best][0], captured[-1][0])


def test_patience_on_the_training_loss_with_a_too_large_lr():
    # No validation data: the training loss is monitored. With lr = 2.5 the full-batch
    # iteration w ← w − 2.5(w − 2) oscillates with growing amplitude from epoch 1 on.
    x = np.array([[-1.0], [1.0]])
    net = line_net(w0=1.9)
    captured = []
    history = net.fit(x, 2 * x, epochs=50, batch_size=2, shuffle=False, patience=4, lr=2.5,
                      callbacks=[lambda e, l: captured.append(params_of(net))])
    assert history.stopped_early is True and history.best_epoch == 1
    assert len(history) == 5
    assert all(a < b for a, b in zip(history, history[1:]))
    assert_params_equal(net, captured[0])
    assert_close(net.layers[0].W, [[2.15]], F64, 1e-12)  # w after epoch 1: 2 − 1.5·(1.9 − 2)


def test_patience_not_reached_keeps_the_last_weights():
    rng = np.random.default_rng(9)
    X, labels = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    net = bpfast.Network([4, 6, 3], output="softmax", dtype="float64", seed=5)
    history = net.fit(X, labels, epochs=5, batch_size=30, shuffle=False, patience=5, lr=0.05)
    twin = bpfast.Network([4, 6, 3], output="softmax", dtype="float64", seed=5)
    for _ in range(5):
        twin.train_step(X, labels, lr=0.05)
    assert history.stopped_early is False and len(history) == 5
    assert_params_equal(net, twin.parameters())


# ---------------------------------------------------------------- callbacks

def test_callbacks_get_epoch_and_logs_and_true_stops():
    rng = np.random.default_rng(10)
    X, labels = rng.standard_normal((20, 3)), rng.integers(0, 2, 20)
    X_val, labels_val = rng.standard_normal((5, 3)), rng.integers(0, 2, 5)
    net = bpfast.Network([3, 4, 2], output="softmax", dtype="float64", seed=6)
    calls, other = [], []

    def stop_at_2(epoch, logs):
        calls.append((epoch, dict(logs)))
        logs["loss"] = -1.0  # a callback's logs are its own copy
        return True if epoch == 2 else None

    history = net.fit(X, labels, epochs=10, batch_size=4, validation_data=(X_val, labels_val),
                      callbacks=[stop_at_2, lambda epoch, logs: other.append(epoch)])
    assert [e for e, _ in calls] == [1, 2] and other == [1, 2]  # epochs count from 1, as verbose counts
    assert len(history) == 2 and history.stopped_early is False
    for epoch, logs in calls:
        assert set(logs) == {"loss", "val_loss", "val_accuracy"}
        assert logs["loss"] == history[epoch - 1]
        assert logs["val_loss"] == history.history["val_loss"][epoch - 1]
        assert logs["val_accuracy"] == history.history["val_accuracy"][epoch - 1]


def test_a_callback_returning_a_falsy_value_does_not_stop():
    rng = np.random.default_rng(11)
    X, labels = rng.standard_normal((12, 3)), rng.integers(0, 2, 12)
    net = bpfast.Network([3, 2], output="softmax", dtype="float64", seed=6)
    history = net.fit(X, labels, epochs=4, batch_size=4, callbacks=[lambda e, l: False, lambda e, l: None])
    assert len(history) == 4


# ---------------------------------------------------------------- verbose

def test_verbose_prints_one_line_per_epoch(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # plain lines even where tqdm is installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    rng = np.random.default_rng(12)
    X, labels = rng.standard_normal((20, 3)), rng.integers(0, 3, 20)
    X_val, labels_val = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    net = bpfast.Network([3, 4, 3], output="softmax", dtype="float64", seed=7)
    history = net.fit(X, labels, epochs=3, batch_size=5, validation_data=(X_val, labels_val), verbose=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 3
    for epoch, line in enumerate(lines):
        assert re.search(rf"\b{epoch + 1}/3\b", line), line
        for key in ("loss", "val_loss", "val_accuracy"):
            value = history.history[key][epoch]
            assert re.search(rf"\b{key}\b\D*{re.escape(f'{value:.4g}')}", line), (key, line)


def test_not_verbose_prints_nothing(capsys):
    rng = np.random.default_rng(13)
    X, labels = rng.standard_normal((10, 3)), rng.integers(0, 3, 10)
    bpfast.Network([3, 3], output="softmax", dtype="float64", seed=7).fit(X, labels, epochs=3, batch_size=5)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def plain_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


def show_batches_always(monkeypatch, span_seconds=0.0):
    """Every epoch counts as long, and each engine call runs as few batches as the span allows."""
    monkeypatch.setattr(_progress, "LONG_EPOCH_SECONDS", 0.0)
    monkeypatch.setattr(_progress, "LINE_SECONDS", 0.0)
    monkeypatch.setattr(_progress, "SPAN_SECONDS", span_seconds)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
def test_verbose_batches_take_exactly_the_steps_of_one_call(cls, reduction, capsys, monkeypatch):
    # The oracle is the same fit without verbose (one engine call per epoch): running the
    # epoch in spans of one batch must give bit-identical weights and epoch losses.
    plain_lines(monkeypatch)
    show_batches_always(monkeypatch)
    rng = np.random.default_rng(21)
    X, labels = rng.standard_normal((53, 4)), rng.integers(0, 3, 53)
    nets = [cls([4, 6, 3], output="softmax", reduction=reduction, dtype="float64", seed=2,
                optimizer=optim.SGD(0.05, momentum=0.9, schedule=optim.StepDecay(step_size=1, gamma=0.7)))
            for _ in range(2)]
    quiet = nets[0].fit(X, labels, epochs=3, batch_size=8)
    shown = nets[1].fit(X, labels, epochs=3, batch_size=8, verbose=True)
    assert list(shown) == list(quiet)
    assert_params_equal(nets[1], params_of(nets[0]))
    assert (nets[1]._engine.steps, nets[1]._engine.epochs) == (nets[0]._engine.steps, nets[0]._engine.epochs) == (21, 3)
    lines = capsys.readouterr().out.splitlines()
    for epoch in (1, 2, 3):
        batches = [int(m.group(1)) for line in lines for m in [re.search(rf"^epoch {epoch}/3: batch (\d+)/7$", line)]
                   if m]
        assert batches == list(range(1, 7)), lines  # a line after each span but the last
        assert any(re.match(rf"epoch {epoch}/3  \d+\.\d\ds  loss", line) for line in lines)


def test_a_short_epoch_stays_one_call(capsys, monkeypatch):
    plain_lines(monkeypatch)
    rng = np.random.default_rng(22)
    X, labels = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    net = bpfast.Network([3, 4, 2], output="softmax", seed=1)
    calls = []
    original = net._engine.train_epoch

    class Spy:  # the native engine's attributes cannot be replaced: wrap it
        def __getattr__(self, name):
            return getattr(engine, name)

        def train_epoch(self, *args, **kwargs):
            calls.append((kwargs.get("begin", 0), kwargs.get("end")))
            return original(*args, **kwargs)
    engine = net._engine
    net._engine = Spy()
    net.fit(X, labels, epochs=3, batch_size=4, verbose=True)
    # the first call measures one batch; the rest of each epoch is one call (it takes far under a second)
    assert calls[0] == (0, 4) and all(call[1] == 40 for call in calls[1:])
    assert len(calls) == 4
    assert "batch" not in capsys.readouterr().out


class Terminal(io.StringIO):
    """A stream that says it is an interactive terminal."""

    def isatty(self):
        return True


def rendered(text):
    """What a terminal shows after text: each line as its last carriage-return frame left it,
    ANSI erase codes dropped; blank lines dropped."""
    shown = []
    for line in text.replace("\x1b[K", "").replace("\x1b[A", "").split("\n"):
        line = line.split("\r")[-1].rstrip()
        if line:
            shown.append(line)
    return shown


def assert_epoch_lines(lines, history, epochs):
    """One line per epoch, in order, each with the epoch's time and History's records."""
    assert len(lines) == epochs, lines
    for epoch, line in enumerate(lines, 1):
        assert re.match(rf"^epoch {epoch}/{epochs}  \d+\.\d\ds  ", line), line
        for key, records in history.history.items():
            assert re.search(rf"\b{key} {re.escape(f'{records[epoch - 1]:.4g}')}\b", line), (key, line)


def long_epochs_fit(verbose=True):
    rng = np.random.default_rng(23)
    X, labels = rng.standard_normal((30, 3)), rng.integers(0, 2, 30)
    net = bpfast.Network([3, 2], output="softmax", seed=1)
    return net.fit(X, labels, epochs=2, batch_size=4, validation_data=(X[:7], labels[:7]), verbose=verbose)


def test_batches_show_in_a_tqdm_bar_on_a_terminal(monkeypatch):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    show_batches_always(monkeypatch)
    out = Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    bars = []
    real = tqdm_auto.tqdm

    def recording(*args, **kwargs):
        bar = real(*args, **kwargs)
        bars.append((kwargs.get("unit"), bar))
        return bar
    monkeypatch.setattr(tqdm_auto, "tqdm", recording)
    history = long_epochs_fit()
    assert [unit for unit, _ in bars] == ["batch", "batch"]  # one batch bar per epoch, no epoch bar
    assert all(bar.n == bar.total == 8 for _, bar in bars)
    assert "\r" in out.getvalue()  # the bars redrew themselves
    assert_epoch_lines(rendered(out.getvalue()), history, 2)  # and left the epochs' lines only


def test_batches_show_in_a_plain_bar_on_a_terminal_without_tqdm(monkeypatch):
    plain_lines(monkeypatch)
    show_batches_always(monkeypatch)
    out = Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    history = long_epochs_fit()
    frames = out.getvalue().split("\r")
    for epoch in (1, 2):  # the bar counts each epoch's 8 batches up to the last
        counts = [int(m.group(1)) for frame in frames for m in [re.match(rf"epoch {epoch}/2  \[[=> ]{{30}}\] "
                                                                         r"(\d+)/8 batches", frame)] if m]
        assert counts == list(range(1, 9)), frames
    assert_epoch_lines(rendered(out.getvalue()), history, 2)


@pytest.mark.parametrize("tqdm", ["installed", "absent"])
def test_without_a_terminal_verbose_writes_whole_lines_only(tqdm, capsys, monkeypatch):
    if tqdm == "installed":
        pytest.importorskip("tqdm.auto")
    else:
        plain_lines(monkeypatch)
    show_batches_always(monkeypatch)
    history = long_epochs_fit()
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out  # no carriage-return frames, no terminal codes
    lines = out.splitlines()
    batch_lines = [line for line in lines if re.match(r"^epoch \d/2: batch \d/8$", line)]
    assert batch_lines == [f"epoch {e}/2: batch {b}/8" for e in (1, 2) for b in range(1, 8)]
    assert_epoch_lines([line for line in lines if line not in batch_lines], history, 2)


def test_verbose_says_why_and_when_early_stopping_stopped(capsys, monkeypatch):
    plain_lines(monkeypatch)
    x = np.array([[-1.0], [1.0]])
    net = line_net()
    history = net.fit(x, 2 * x, epochs=50, batch_size=2, shuffle=False, patience=3, validation_data=(x, x),
                      verbose=True)
    out = capsys.readouterr().out
    stop = [line for line in out.splitlines() if "early stopping" in line]
    assert len(stop) == 1, out
    assert f"after epoch {len(history)}" in stop[0]
    assert "val_loss" in stop[0] and "patience=3" in stop[0]
    assert f"restored the weights of epoch {history.best_epoch}" in stop[0]
    assert history.best_epoch == 7


def test_verbose_says_which_callback_stopped(capsys, monkeypatch):
    plain_lines(monkeypatch)
    rng = np.random.default_rng(24)
    X, labels = rng.standard_normal((12, 3)), rng.integers(0, 2, 12)

    def enough(epoch, logs):
        return epoch == 2
    bpfast.Network([3, 2], output="softmax", seed=1).fit(X, labels, epochs=5, batch_size=4, callbacks=[enough],
                                                         verbose=True)
    assert "stopped after epoch 2: callback" in capsys.readouterr().out


# ---------------------------------------------------------------- arguments

def test_arguments_after_sizes_and_after_X_T_are_keyword_only():
    with pytest.raises(TypeError, match="positional"):
        bpfast.Network([3, 2], "relu")
    net = bpfast.Network([3, 2])
    with pytest.raises(TypeError, match="positional"):
        net.fit(np.ones((4, 3)), np.ones((4, 2)), 5)


@pytest.mark.parametrize("bad, name, error", [
    (dict(seed="abc"), "seed", ValueError), (dict(seed=-1), "seed", ValueError), (dict(seed=1.5), "seed", ValueError),
    (dict(optimizer="sgd"), "optimizer", TypeError)])
def test_bad_constructor_arguments_are_named(bad, name, error):
    with pytest.raises(error, match=rf"\b{name}\b"):
        bpfast.Network([3, 2], **bad)


@pytest.mark.parametrize("bad, name, error", [
    (dict(callbacks=print), "callbacks", TypeError), (dict(callbacks=[print, 3]), r"callbacks\[1\]", TypeError),
    (dict(shuffle="yes"), "shuffle", ValueError), (dict(verbose=2), "verbose", ValueError),
    (dict(epochs=-1), "epochs", ValueError), (dict(optimizer=object()), "optimizer", TypeError),
    (dict(validation_data=np.ones((3, 3))), "validation_data", ValueError)])
def test_bad_fit_arguments_are_named_and_change_nothing(bad, name, error):
    X, T = np.ones((4, 3)), np.ones((4, 2))
    net = bpfast.Network([3, 2], seed=0, optimizer=optim.SGD(0.1, momentum=0.5))
    net.train_step(X, T)
    before, optimizer, state = snapshot(net), net.optimizer, [s.copy() for s in net._engine.optimizer_state()]
    with pytest.raises(error, match=rf"\b{name}"):
        net.fit(X, T, **bad)
    assert_unchanged(net, before)
    assert net.optimizer is optimizer
    assert all(np.array_equal(a, b) for a, b in zip(state, net._engine.optimizer_state()))


def test_fit_optimizer_is_set_only_when_every_other_argument_is_good():
    X, T = np.ones((4, 3)), np.ones((4, 2))
    net = bpfast.Network([3, 2], seed=0)
    adam = optim.Adam(0.01)
    for bad in (dict(batch_size=0), dict(lr=-1.0), dict(patience=0), dict(callbacks=[1])):
        with pytest.raises((ValueError, TypeError)):
            net.fit(X, T, optimizer=adam, **bad)
        assert isinstance(net.optimizer, optim.SGD)
    with pytest.raises(ValueError, match=r"\bT\b"):
        net.fit(X, np.ones((4, 3)), optimizer=adam)
    assert isinstance(net.optimizer, optim.SGD)
    net.fit(X, T, epochs=1, optimizer=adam)
    assert net.optimizer is adam  # for good, as documented


# ---------------------------------------------------------------- History.plot

def test_history_plot_draws_every_record(monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    rng = np.random.default_rng(25)
    X, labels = rng.standard_normal((20, 3)), rng.integers(0, 3, 20)
    net = bpfast.Network([3, 4, 3], output="softmax", dtype="float64", seed=3)
    history = net.fit(X, labels, epochs=4, batch_size=5, validation_data=(X[:6], labels[:6]))
    ax = history.plot()
    lines = {line.get_label(): line for axis in ax.figure.axes for line in axis.get_lines()}
    for key in ("loss", "val_loss", "val_accuracy"):
        assert list(lines[key].get_xdata()) == [1, 2, 3, 4]
        assert list(lines[key].get_ydata()) == history.history[key]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss", "val_loss", "val_accuracy"]
    matplotlib.pyplot.close(ax.figure)


def test_history_plot_legend_covers_no_curve():
    # The oracle is geometry in display coordinates, after drawing: the legend's box must
    # miss every plotted point of every curve (val_accuracy's on the twin axis included),
    # and stay inside the figure.
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    history = History()
    epochs = 30
    history.history["loss"] = list(np.linspace(1.0, 0.1, epochs))
    history.history["val_loss"] = list(np.linspace(1.1, 0.3, epochs))
    history.history["val_accuracy"] = list(np.linspace(0.2, 1.0, epochs))  # rises into the top right
    history.extend(history.history["loss"])
    ax = history.plot()
    figure = ax.figure
    figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    for axis in figure.axes:
        for line in axis.get_lines():
            if line.get_label() not in history.history:
                continue  # the best epoch's marker line
            points = axis.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
            inside = ((points[:, 0] >= legend.x0) & (points[:, 0] <= legend.x1)
                      & (points[:, 1] >= legend.y0) & (points[:, 1] <= legend.y1))
            assert not inside.any(), line.get_label()
        assert not legend.overlaps(axis.get_window_extent())  # clear of the plotting area itself
    assert figure.bbox.contains(legend.x0, legend.y0) and figure.bbox.contains(legend.x1, legend.y1)
    matplotlib.pyplot.close(figure)


def test_history_plot_without_matplotlib_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        History().plot()


# ---------------------------------------------------------------- the non-finite guard

def overflowing_loss_case():
    """Identity net; a feature that is 0 except in batch 2, where it is 1e200.

    Column 2 of W_0 starts at 0, so epoch 1 is finite, but its batch 3 gives that column a
    gradient of order 1e200; in epoch 2 the same batch overflows the forward pass and the
    loss (epoch 2, batch 3, in the loss: both counted from 1).
    """
    rng = np.random.default_rng(14)
    X = rng.standard_normal((20, 3)) * 0.5
    X[:, 2] = 0.0
    X[10:15, 2] = 1e200
    T = rng.standard_normal((20, 2))

    def make():
        net = bpfast.Network([3, 4, 2], activation="identity", dtype="float64", seed=3)
        W = net.layers[0].W.copy()
        W[:, 2] = 0.0
        net.layers[0].W = W
        return net
    return make, X, T, 0.1, (2, 3, None)


def overflowing_gradient_case():
    """tanh → sigmoid net with a finite loss but an infinite gradient of layer 0 in batch 3 of epoch 1.

    W_1 = 1e10 makes the backpropagated δ about 1e9; column 2 of X is 1e300 in batch 2 only,
    so dW_0[:, 2] overflows while the forward pass never sees it (W_0[:, 2] = 0). Epochs and
    batches are counted from 1, layers from 0 (as net.layers is indexed).
    """
    rng = np.random.default_rng(15)
    X = rng.standard_normal((20, 3)) * 0.5
    X[:, 2] = 0.0
    X[10:15, 2] = 1e300
    T = np.full((20, 1), 0.5)

    def make():
        net = bpfast.Network([3, 4, 1], activation="tanh", output="sigmoid", loss="cross_entropy",
                             dtype="float64", seed=3)
        W = net.layers[0].W.copy() * 0.1
        W[:, 2] = 0.0
        net.layers[0].W = W
        net.layers[1].W = np.full((1, 4), 1e10)
        return net
    return make, X, T, 1e-12, (1, 3, 0)


@pytest.mark.parametrize("case", [overflowing_loss_case, overflowing_gradient_case], ids=["loss", "layer"])
def test_fit_non_finite_guard_names_epoch_batch_and_place(case):
    make, X, T, lr, (bad_epoch, bad_batch, bad_layer) = case()
    net = make()
    with pytest.raises(FloatingPointError) as info:
        net.fit(X, T, epochs=3, batch_size=5, shuffle=False, lr=lr)
    message = str(info.value)
    assert re.search(rf"\bepoch {bad_epoch}\b", message), message
    assert re.search(rf"\bbatch {bad_batch}\b", message), message
    if bad_layer is None:
        after = message[message.index(f"batch {bad_batch}"):]
        assert "loss" in after and "layer" not in message, message
    else:
        assert re.search(rf"\blayer {bad_layer}\b", message), message
    # The weights are those from before the bad batch: a twin stepping through the same
    # batches up to it, with train_step.
    twin = make()
    for epoch in range(1, bad_epoch + 1):
        for b in range(4 if epoch < bad_epoch else bad_batch - 1):
            twin.train_step(X[5 * b:5 * b + 5], T[5 * b:5 * b + 5], lr=lr)
    assert_params_equal(net, twin.parameters())
    # ... and that batch really does fail from there.
    before = snapshot(twin)
    first = 5 * (bad_batch - 1)
    with pytest.raises(FloatingPointError):
        twin.train_step(X[first:first + 5], T[first:first + 5], lr=lr)
    assert_unchanged(twin, before)


def test_fit_non_finite_guard_keeps_weights_set_by_a_callback():
    # A callback blows the weights up after epoch 1: epoch 2 fails at its first batch and
    # keeps exactly the callback's weights.
    rng = np.random.default_rng(16)
    X, T = rng.standard_normal((12, 2)), rng.standard_normal((12, 1))
    net = bpfast.Network([2, 1], dtype="float64", seed=0)

    def explode(epoch, logs):
        net.layers[0].W = [[1e200, -1e200]]

    with pytest.raises(FloatingPointError, match=r"epoch 2\b.*batch 1\b"):
        net.fit(X, T, epochs=3, batch_size=4, callbacks=[explode])
    assert np.array_equal(net.layers[0].W, [[1e200, -1e200]])


def loss_overflow_net(cls, optimizer):
    """Identity net whose column 2 of W_0 is 1: a row with x_2 = 1e200 overflows the loss."""
    net = cls([3, 4, 2], activation="identity", dtype="float64", seed=3, optimizer=optimizer)
    W = net.layers[0].W.copy()
    W[:, 2] = 1.0
    net.layers[0].W = W
    return net


def gradient_overflow_net(cls, optimizer):
    """overflowing_gradient_case's net: finite loss, infinite dW_0 for a row with x_2 = 1e300."""
    net = cls([3, 4, 1], activation="tanh", output="sigmoid", loss="cross_entropy", dtype="float64",
              seed=3, optimizer=optimizer)
    W = net.layers[0].W.copy() * 0.1
    W[:, 2] = 0.0
    net.layers[0].W = W
    net.layers[1].W = np.full((1, 4), 1e10)
    return net


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # numpy, in the reference
@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("case", ["loss", "layer"])
def test_train_step_guard_changes_nothing(cls, case):
    rng = np.random.default_rng(17)
    X = rng.standard_normal((15, 3)) * 0.5
    X[:, 2] = 0.0
    X[10:15, 2] = 1e200 if case == "loss" else 1e300
    n_out = 2 if case == "loss" else 1
    T = rng.uniform(0, 1, (15, n_out))
    build = loss_overflow_net if case == "loss" else gradient_overflow_net
    lr = 0.01 if case == "loss" else 1e-12

    def make():
        return build(cls, optim.Adam(lr=lr, schedule=optim.InverseScaling(0.5)))
    net, twin = make(), make()
    assert net.train_step(X[0:5], T[0:5]) == twin.train_step(X[0:5], T[0:5])
    before = snapshot(net)
    with pytest.raises(FloatingPointError) as info:
        net.train_step(X[10:15], T[10:15])
    message = str(info.value)
    if case == "loss":
        assert "loss" in message and "layer" not in message, message
    else:
        assert re.search(r"\blayer 0\b", message), message
    assert_unchanged(net, before)
    # Nor did the failed step touch the optimizer: Adam's moments and the step count of the
    # schedule continue as if it had never been tried.
    for s in (slice(5, 10), slice(0, 5)):
        assert net.train_step(X[s], T[s]) == twin.train_step(X[s], T[s])
    assert_params_equal(net, twin.parameters())
