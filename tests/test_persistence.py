"""save/load: an exact round trip, and clear errors for files that are not bpfast networks.

The oracle for the round trip is the original network itself: after load,
the weights, optimizer settings and state, step and epoch counters and
shuffle Generator must be bit-for-bit equal, so that continuing training
(train_step and shuffled fit) gives bit-for-bit the same losses and weights
on both. A file written by bpfast.Network also loads into
bpfast.reference.Network and trains like it to 1e-10 (float64).
"""

import json

import numpy as np
import pytest

import bpfast
from bpfast import optim, reference
from conftest import assert_close

CLASSES = [bpfast.Network, reference.Network]
CLASS_IDS = ["native", "reference"]
SIZES = [6, 9, 5, 3]
OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=0.1),
    "sgd-nesterov-step": lambda: optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3,
                                           schedule=optim.StepDecay(step_size=2, gamma=0.5)),
    "adam-invscaling-clip": lambda: optim.Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3,
                                               decay_bias=True, clip_norm=0.7,
                                               schedule=optim.InverseScaling(0.4)),
    "adamw": lambda: optim.AdamW(lr=0.01, weight_decay=0.05),
}


def make(cls, dtype, opt, seed=3):
    return cls(SIZES, activation=["tanh", "relu"], output="softmax", loss="cross_entropy", reduction="mean",
               dtype=dtype, seed=seed, optimizer=OPTIMIZERS[opt]())


def training_data(dtype):
    rng = np.random.default_rng(0)
    return rng.standard_normal((29, SIZES[0])).astype(dtype), rng.integers(0, SIZES[-1], 29)


def trained(cls, dtype, opt, seed=3):
    net = make(cls, dtype, opt, seed)
    X, labels = training_data(dtype)
    net.fit(X, labels, epochs=3, batch_size=8)
    net.train_step(X[:5], labels[:5])
    return net


def assert_same_network(a, b):
    assert type(a) is type(b)
    assert repr(a) == repr(b)
    assert (a.sizes, a.output, a.loss_name, a.reduction, a.dtype, a.seed) == \
           (b.sizes, b.output, b.loss_name, b.reduction, b.dtype, b.seed)
    assert [l.activation for l in a.layers] == [l.activation for l in b.layers]
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert p.dtype == q.dtype and p.shape == q.shape
        assert p.tobytes() == q.tobytes()
    assert a.optimizer == b.optimizer and type(a.optimizer) is type(b.optimizer)
    assert a.optimizer.config() == b.optimizer.config()
    for which in (0, 1):
        s, t = a._engine.optimizer_state()[which], b._engine.optimizer_state()[which]
        assert s.dtype == t.dtype and s.tobytes() == t.tobytes()
    assert (a._engine.steps, a._engine.epochs) == (b._engine.steps, b._engine.epochs)


def continue_training(net):
    """Losses of further steps and a shuffled fit, and the final weights."""
    X, labels = training_data(net.dtype)
    losses = [net.train_step(X[5:13], labels[5:13]), net.train_step(X[13:20], labels[13:20])]
    losses += list(net.fit(X, labels, epochs=3, batch_size=7))
    losses.append(net.train_step(X[:9], labels[:9]))
    return losses, [p.copy() for p in net.parameters()]


# ---------------------------------------------------------------- round trip

@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_round_trip_is_exact_and_training_continues_identically(cls, dtype, opt, tmp_path):
    net = trained(cls, dtype, opt)
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = cls.load(path)
    assert_same_network(loaded, net)
    if opt != "sgd":  # the optimizer state is really non-trivial
        assert np.any(net._engine.optimizer_state()[0])
    ours, our_params = continue_training(net)
    theirs, their_params = continue_training(loaded)
    assert ours == theirs
    for p, q in zip(our_params, their_params):
        assert p.tobytes() == q.tobytes()


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_round_trip_restores_the_shuffle_stream_of_an_unseeded_net(cls, tmp_path):
    # seed=None draws the shuffle Generator from the OS; only the saved state can reproduce it.
    net = cls([4, 5, 3], output="softmax", dtype="float64", seed=None)
    rng = np.random.default_rng(1)
    X, labels = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    net.fit(X, labels, epochs=2, batch_size=4)
    net.save(tmp_path / "net.npz")
    loaded = cls.load(tmp_path / "net.npz")
    assert loaded.seed is None
    assert list(net.fit(X, labels, epochs=3, batch_size=4)) == list(loaded.fit(X, labels, epochs=3, batch_size=4))
    for p, q in zip(net.parameters(), loaded.parameters()):
        assert np.array_equal(p, q)


def test_shuffle_state_matters_for_the_continuation(tmp_path):
    # Sanity check of the test above: two nets with equal weights and optimizer state but
    # different shuffle streams do not train alike, so a lost shuffle state would be caught.
    net = trained(bpfast.Network, "float64", "adamw")
    net.save(tmp_path / "net.npz")
    loaded = bpfast.Network.load(tmp_path / "net.npz")
    loaded._shuffle_rng = np.random.default_rng([3, 1])  # as if the state had not been saved
    X, labels = training_data("float64")
    assert list(net.fit(X, labels, epochs=2, batch_size=7)) != list(loaded.fit(X, labels, epochs=2, batch_size=7))


@pytest.mark.parametrize("opt", ["sgd-nesterov-step", "adam-invscaling-clip"])
def test_native_file_loads_into_the_reference_and_trains_alike(opt, tmp_path):
    net = trained(bpfast.Network, "float64", opt)
    net.save(tmp_path / "net.npz")
    ref = reference.Network.load(tmp_path / "net.npz")
    assert type(ref) is reference.Network
    for p, q in zip(net.parameters(), ref.parameters()):
        assert p.tobytes() == q.tobytes()
    assert (ref._engine.steps, ref._engine.epochs) == (net._engine.steps, net._engine.epochs)
    ours, our_params = continue_training(net)
    theirs, their_params = continue_training(ref)
    assert_close(np.array(ours), np.array(theirs), np.float64, 1e-10)
    for p, q in zip(our_params, their_params):
        assert_close(p, q, np.float64, 1e-10)


def test_save_writes_a_file_that_needs_no_pickle(tmp_path):
    net = trained(bpfast.Network, "float32", "adam-invscaling-clip")
    path = tmp_path / "net.npz"
    net.save(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    assert all(a.dtype != object for a in arrays.values())
    assert str(arrays["format"]) == "bpfast-network" and int(arrays["version"]) == 1
    architecture = json.loads(str(arrays["architecture"]))
    assert architecture["sizes"] == SIZES and architecture["dtype"] == "float32"
    assert json.loads(str(arrays["optimizer"])) == net.optimizer.config()
    assert np.array_equal(arrays["param_0"], net.layers[0].W)


def test_save_and_load_accept_str_paths(tmp_path):
    net = trained(bpfast.Network, "float64", "sgd")
    path = str(tmp_path / "model.npz")
    net.save(path)
    assert_same_network(bpfast.Network.load(path), net)


# ---------------------------------------------------------------- bad files

def good_file_fields(tmp_path):
    path = tmp_path / "good.npz"
    trained(bpfast.Network, "float64", "adamw").save(path)
    with np.load(path, allow_pickle=False) as data:
        return path, {key: data[key] for key in data.files}


def write_truncated(tmp_path, path):
    good, _ = good_file_fields(tmp_path)
    data = good.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def write_random(tmp_path, path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def write_empty(tmp_path, path):
    path.write_bytes(b"")


def write_unrelated(tmp_path, path):
    np.savez(path, a=np.arange(3), b=np.ones((2, 2)))


def write_changed(key, value):
    def write(tmp_path, path):
        _, fields = good_file_fields(tmp_path)
        fields[key] = value
        np.savez(path, **fields)
    return write


def write_without(key):
    def write(tmp_path, path):
        _, fields = good_file_fields(tmp_path)
        del fields[key]
        np.savez(path, **fields)
    return write


def write_pickled(tmp_path, path):
    _, fields = good_file_fields(tmp_path)
    fields["architecture"] = np.array([{"sizes": SIZES}], dtype=object)
    np.savez(path, **fields)


def write_npy(tmp_path, path):
    with open(path, "wb") as f:
        np.save(f, np.arange(10.0))


BAD_FILES = {
    "truncated": write_truncated,
    "random bytes": write_random,
    "empty": write_empty,
    "unrelated npz": write_unrelated,
    "wrong format": write_changed("format", np.array("keras-model")),
    "wrong version": write_changed("version", np.array(2)),
    "version 0": write_changed("version", np.array(0)),
    "no weights": write_without("param_3"),
    "wrong weight shape": write_changed("param_0", np.zeros((3, 3))),
    "broken architecture": write_changed("architecture", np.array("{not json")),
    "pickled object array": write_pickled,
    # sizes whose parameter count overflows int64 (it once wrapped to a tiny buffer)
    "overflowing sizes": write_changed("architecture", np.array(json.dumps(
        {"sizes": [2**31, 2**30 - 1] * 4 + [1, 1152921506217459715], "activation": ["relu"] * 9,
         "output": "softmax", "loss": "cross_entropy", "reduction": "mean", "dtype": "float64", "seed": 0}))),
    # a layer of 2^49 weights: refused before anything is allocated
    "a layer above the size limit": write_changed("architecture", np.array(json.dumps(
        {"sizes": [2**24, 2**25, 3], "activation": ["relu"], "output": "softmax", "loss": "cross_entropy",
         "reduction": "mean", "dtype": "float64", "seed": 0}))),
    "NaN weights": write_changed("param_1", np.array([np.nan] * 9)),
    "Inf optimizer state": write_changed("state_1", np.full(SIZES[0] * 9 + 9 + 9 * 5 + 5 + 5 * 3 + 3, np.inf)),
    "negative counters": write_changed("counters", np.array([-1, 0])),
    "plain npy": write_npy,
}


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_raises_value_error_naming_the_path(cls, case, tmp_path):
    path = tmp_path / "bad.npz"
    BAD_FILES[case](tmp_path, path)
    assert path.exists()
    with pytest.raises(ValueError) as info:
        cls.load(path)
    assert str(path) in str(info.value)


def test_wrong_version_message_says_which(tmp_path):
    path = tmp_path / "bad.npz"
    write_changed("version", np.array(2))(tmp_path, path)
    with pytest.raises(ValueError, match="version 2"):
        bpfast.Network.load(path)


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_missing_file_raises_file_not_found_error(cls, tmp_path):
    with pytest.raises(FileNotFoundError):
        cls.load(tmp_path / "nowhere.npz")
