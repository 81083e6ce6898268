"""Mixed precision: Network(dtype="float32", compute="bfloat16") against reference.Network with the
same seed and compute, and closed forms.

Tolerances come from the precision table's row "mixed_bfloat16" (bpfast._precision): rtol 1e-3 for one
forward pass or one gradient, trajectory_rtol 2e-2 for a few training steps, each relative to
max(1, max|expected|) (conftest.relative_error). The two engines round the same float32 operands to
bfloat16 the same way and sum exact products (float32 natively, float64 in the reference), but the
activations, δ's and losses between the products are float32 values computed in different orders:
when one of them differs in its last bit and sits at a bfloat16 rounding midpoint, the next product
reads an operand one bfloat16 spacing (up to 2**-7 relative) away in one engine only. A pass is a
sum of many terms, so such a flip moves a result by far less than 2**-7 of its scale, and the rows
bound that; over training steps the flips feed into the weights and grow, hence the wider
trajectory tolerance. A float32 pass (compute=None) must NOT meet the bfloat16 reference to float32's
own tolerance, which shows the comparison can tell the two apart.
"""

import copy
import json
import pickle
import warnings

import numpy as np
import pytest

import bpfast
from bpfast import _precision, optim
from bpfast import reference as R
from conftest import assert_close, assert_unchanged, batch_for_output, relative_error, snapshot

ROW = _precision.BY_NAME["mixed_bfloat16"]
RTOL, TRAJECTORY_RTOL = ROW.rtol, ROW.trajectory_rtol
F32 = np.float32

# The one-time warning that the bfloat16 products are emulated (BPFAST_ISA=avx2, generic, avx512, amx_model,
# or a CPU without AVX512_BF16 and AMX): it is checked in tests/kernels/test_bfloat16.py::test_each_isa_path.
pytestmark = pytest.mark.filterwarnings("ignore:compute='bfloat16' runs on:RuntimeWarning")

CONFIGS = [  # (sizes, activation, output, loss)
    ([7, 13, 5], "relu", "softmax", "cross_entropy"),
    ([33, 65, 10], "tanh", "softmax", "cross_entropy"),
    ([13, 31, 3], "sigmoid", "sigmoid", "binary_cross_entropy"),
    ([31, 47, 17, 1], ["relu", "tanh"], "identity", "squared_error"),
]
CONFIG_IDS = [f"{'-'.join(map(str, c[0]))}-{c[2]}" for c in CONFIGS]


def make_pair(sizes, activation="relu", output="identity", loss=None, seed=0, optimizer=None, compute="bfloat16"):
    kw = dict(activation=activation, output=output, loss=loss, dtype="float32", compute=compute, seed=seed)
    return (bpfast.Network(sizes, optimizer=optimizer, **kw),
            R.Network(sizes, optimizer=None if optimizer is None else copy.deepcopy(optimizer), **kw))


def data(rng, sizes, output, batch):
    return batch_for_output(rng, sizes, output, batch, F32)


# ---------------------------------------------------------------- against the reference

@pytest.mark.parametrize("sizes,activation,output,loss", CONFIGS, ids=CONFIG_IDS)
def test_forward_loss_and_gradients_match_the_reference(sizes, activation, output, loss):
    net, ref = make_pair(sizes, activation, output, loss, seed=3)
    assert net.compute == ref.compute == "bfloat16" and net.dtype == np.float32
    for a, b in zip(net.layers, ref.layers):  # one seed, one initialisation
        assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
    X, T = data(np.random.default_rng(4), sizes, output, 64)
    Y = net.forward(X)
    assert Y.dtype == F32
    assert_close(Y, ref.forward(X), F32, RTOL)
    assert abs(net.loss(X, T) - ref.loss(X, T)) <= RTOL * max(1.0, abs(ref.loss(X, T)))
    before = snapshot(net)
    grads, ref_grads = net.gradients(X, T), ref.gradients(X, T)
    assert_unchanged(net, before)
    assert len(grads) == len(ref_grads) == len(sizes) - 1
    for (dW, db), (rdW, rdb) in zip(grads, ref_grads):
        assert dW.dtype == db.dtype == F32
        assert_close(dW, rdW, F32, RTOL)
        assert_close(db, rdb, F32, RTOL)
    # The row's rtol would also pass a net that computes in float32 for some of these configurations, so also:
    # the native is nearer the bfloat16 reference than the float32 reference is (the rounding really happens).
    f32 = R.Network(sizes, activation=activation, output=output, loss=loss, dtype="float32", seed=3)
    assert relative_error(Y, ref.forward(X)) < relative_error(f32.forward(X), ref.forward(X))
    f32_grads = f32.gradients(X, T)
    for (dW, _), (rdW, _), (fdW, _) in zip(grads, ref_grads, f32_grads):
        assert relative_error(dW, rdW) < relative_error(fdW, rdW)


def test_the_reference_comparison_tells_bfloat16_from_float32():
    # the same net computing in float32 is off the bfloat16 reference by far more than float32's own rtol
    sizes = [64, 128, 10]
    X = np.random.default_rng(5).standard_normal((64, 64)).astype(F32)
    bf16 = R.Network(sizes, output="softmax", compute="bfloat16", seed=1)
    f32 = bpfast.Network(sizes, output="softmax", compute=None, seed=1)
    native = bpfast.Network(sizes, output="softmax", compute="bfloat16", seed=1)
    assert f32.compute == "float32"
    Z_ref = bf16.forward(X)
    assert relative_error(native.forward(X), Z_ref) <= RTOL
    assert relative_error(f32.forward(X), Z_ref) > 10 * _precision.of(np.float32).rtol


@pytest.mark.parametrize("opt", [optim.SGD(lr=0.1), optim.Adam(1e-2)], ids=["sgd", "adam"])
@pytest.mark.parametrize("sizes,activation,output,loss", CONFIGS, ids=CONFIG_IDS)
def test_train_steps_follow_the_reference_trajectory(sizes, activation, output, loss, opt):
    net, ref = make_pair(sizes, activation, output, loss, seed=5, optimizer=opt)
    rng = np.random.default_rng(6)
    for _ in range(5):
        X, T = data(rng, sizes, output, 32)
        value, ref_value = net.train_step(X, T), ref.train_step(X, T)
        assert abs(value - ref_value) <= TRAJECTORY_RTOL * max(1.0, abs(ref_value))
    for a, b in zip(net.layers, ref.layers):
        assert_close(a.W, b.W, F32, TRAJECTORY_RTOL)
        assert_close(a.b, b.b, F32, TRAJECTORY_RTOL)
    # nearer the bfloat16 reference's weights than a float32 reference's trajectory (see the test above)
    f32 = R.Network(sizes, activation=activation, output=output, loss=loss, dtype="float32", seed=5,
                    optimizer=copy.deepcopy(opt))
    rng = np.random.default_rng(6)
    for _ in range(5):
        f32.train_step(*data(rng, sizes, output, 32))
    assert (max(relative_error(a.W, b.W) for a, b in zip(net.layers, ref.layers))
            < max(relative_error(c.W, b.W) for c, b in zip(f32.layers, ref.layers)))


# ---------------------------------------------------------------- it trains

def digits_split():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(F32)  # pixel values 0..16 to [0, 1]
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order]
    return X[:1400], y[:1400], X[1400:], y[1400:]


def test_bfloat16_trains_digits_as_well_as_float32():
    """[64, 64, 10] softmax, Adam lr 1e-2, batch 32, 8 epochs: the mean test accuracy over 3 seeds in bfloat16
    is within 1 percentage point of float32's (and both learn: over 90% where chance is 10%)."""
    X, y, X_test, y_test = digits_split()
    accuracy = {}
    for compute in ("float32", "bfloat16"):
        scores = []
        for seed in range(3):
            net = bpfast.Network([64, 64, 10], output="softmax", compute=compute, seed=seed,
                                 optimizer=optim.Adam(1e-2))
            assert net.compute == compute
            net.fit(X, y, epochs=8, batch_size=32)
            scores.append(np.mean(net.predict(X_test) == y_test))
        accuracy[compute] = float(np.mean(scores))
    assert accuracy["float32"] > 0.9 and accuracy["bfloat16"] > 0.9, accuracy
    assert abs(accuracy["bfloat16"] - accuracy["float32"]) <= 0.01, accuracy


# ---------------------------------------------------------------- errors

def test_float64_with_bfloat16_compute_raises_naming_dtype():
    with pytest.raises(ValueError, match="dtype"):
        bpfast.Network([3, 2], dtype="float64", compute="bfloat16")
    with pytest.raises(ValueError, match="dtype"):
        R.Network([3, 2], dtype="float64", compute="bfloat16")


@pytest.mark.parametrize("compute", ["float16", "bf16", "int8", 16])
def test_unknown_compute_raises_naming_compute(compute):
    with pytest.raises(ValueError, match="compute"):
        bpfast.Network([3, 2], compute=compute)


def test_compute_none_or_the_dtype_computes_in_the_dtype():
    for dtype in ("float32", "float64"):
        for compute in (None, dtype):
            net = bpfast.Network([3, 2], dtype=dtype, compute=compute)
            assert net.compute == dtype and "compute" not in repr(net)


@pytest.mark.parametrize("bad", ["wrong width", "wrong rows", "nan", "float64 labels"])
def test_bad_input_leaves_the_weights_alone(bad):
    net = bpfast.Network([4, 5, 3], output="softmax", compute="bfloat16", seed=1, optimizer=optim.Adam(1e-2))
    rng = np.random.default_rng(8)
    X, T = rng.standard_normal((6, 4)).astype(F32), np.eye(3, dtype=F32)[rng.integers(0, 3, 6)]
    net.train_step(X, T)  # an optimizer state that must not move either
    before = snapshot(net)
    if bad == "wrong width":
        X = X[:, :3]
    elif bad == "wrong rows":
        T = T[:5]
    elif bad == "nan":
        X = X.copy()
        X[2, 1] = np.nan
    else:
        T = np.full((6,), 0.5)  # labels that are not integers
    with pytest.raises((ValueError, FloatingPointError, TypeError)):
        net.train_step(X, T)
    assert_unchanged(net, before)
    # and the next good step is the step the net would have taken without the bad call
    twin = copy.deepcopy(net)
    X, T = rng.standard_normal((6, 4)).astype(F32), np.eye(3, dtype=F32)[rng.integers(0, 3, 6)]
    assert net.train_step(X, T) == twin.train_step(X, T)
    for a, b in zip(net.layers, twin.layers):
        assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)


# ---------------------------------------------------------------- persistence

def trained_net():
    net = bpfast.Network([9, 17, 4], activation="tanh", output="softmax", compute="bfloat16", seed=4,
                         optimizer=optim.Adam(1e-2))
    rng = np.random.default_rng(9)
    for _ in range(3):
        net.train_step(rng.standard_normal((16, 9)).astype(F32), rng.integers(0, 4, 16))
    return net


def assert_identical_and_training_on(net, other):
    """other keeps compute, the weights bit for bit, and two more steps on both stay bit for bit equal
    (the optimizer state and step counters came along)."""
    assert other.compute == "bfloat16" and other.dtype == np.float32
    for a, b in zip(net.layers, other.layers):
        assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
    rng = np.random.default_rng(10)
    for _ in range(2):
        X, y = rng.standard_normal((16, 9)).astype(F32), rng.integers(0, 4, 16)
        assert net.train_step(X, y) == other.train_step(X, y)
    for a, b in zip(net.layers, other.layers):
        assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)


def test_save_and_load_keep_compute_and_continue_identically(tmp_path):
    net = trained_net()
    net.save(tmp_path / "net.npz")
    assert_identical_and_training_on(net, bpfast.Network.load(tmp_path / "net.npz"))


def test_the_reference_loads_the_file_as_bfloat16(tmp_path):
    net = trained_net()
    net.save(tmp_path / "net.npz")
    ref = R.Network.load(tmp_path / "net.npz")
    assert ref.compute == "bfloat16"
    X = np.random.default_rng(11).standard_normal((8, 9)).astype(F32)
    assert_close(net.forward(X), ref.forward(X), F32, RTOL)


def test_pickle_and_deepcopy_keep_compute():
    net = trained_net()
    assert_identical_and_training_on(net, pickle.loads(pickle.dumps(net)))
    net = trained_net()
    assert_identical_and_training_on(net, copy.deepcopy(net))
    net = trained_net()
    assert_identical_and_training_on(net, copy.copy(net))


def test_a_file_without_compute_loads_computing_in_its_dtype(tmp_path):
    # a file as written before mixed precision: the architecture record has no compute key
    net = trained_net()
    net.save(tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz") as archive:
        fields = {key: archive[key] for key in archive.files}
    architecture = json.loads(str(fields["architecture"]))
    assert architecture.pop("compute") == "bfloat16"
    fields["architecture"] = np.array(json.dumps(architecture))
    np.savez(tmp_path / "old.npz", **fields)
    old = bpfast.Network.load(tmp_path / "old.npz")
    assert old.compute == "float32" == old.dtype.name
    for a, b in zip(net.layers, old.layers):
        assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
    # it computes in float32: its forward is the float32 net's, not the bfloat16 one's
    X = np.random.default_rng(12).standard_normal((8, 9)).astype(F32)
    f32 = R.Network.load(tmp_path / "old.npz")
    assert f32.compute == "float32"
    assert_close(old.forward(X), f32.forward(X), F32, _precision.of(np.float32).rtol)
    # and saved again, the file names its compute
    old.save(tmp_path / "again.npz")
    with np.load(tmp_path / "again.npz") as archive:
        assert json.loads(str(archive["architecture"]))["compute"] == "float32"


def test_repr_shows_compute():
    net = bpfast.Network([3, 4, 2], compute="bfloat16")
    assert "compute='bfloat16'" in repr(net)
    assert "dtype='float32'" in repr(net)
    assert "compute" not in repr(bpfast.Network([3, 4, 2]))
