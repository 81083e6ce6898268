"""Mixed precision on the small-network path: bfloat16 operands rounded by the backend, float FMAs.

SmallNetBackend runs compute="bfloat16" on its float kernels after rounding what the products read
(W, the input, δ, the activations) to bfloat16, where the batch's forward pass is small enough
(SmallNetBackend::bf16_forward_flops_limit: 2**22 flops beside VDPBF16PS, 2**20 beside AMX or its
model, no limit where the bfloat16 products are emulated); past that the blocked GEMM's bfloat16
kernels run. The oracles:
  - the rounding kernel against reference.kernels.round_to_bfloat16, bit for bit;
  - the kernels' rounded stores against the same rounding of their unrounded results, bit for bit;
  - whole nets against reference.Network(compute="bfloat16") with the tolerances of the precision
    table's row (rtol for a pass, trajectory_rtol for steps; test_mixed_precision.py says why), and
    nearer that reference than a float32 net is, so the rounding is shown to happen.
Skipped where the ISA has no small-network kernels (BPFAST_ISA=generic).
"""

import copy

import numpy as np
import pytest

import bpfast
from bpfast import _core, _precision, optim
from bpfast import reference as R
from bpfast.reference.kernels import round_to_bfloat16
from conftest import assert_close, batch_for_output, relative_error

SMALL = _core.f32.small_net
if SMALL.lanes() == 0:
    pytest.skip(f"the {_core.isa!r} ISA has no small-network kernels", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:compute='bfloat16' runs on:RuntimeWarning")

ROW = _precision.BY_NAME["mixed_bfloat16"]
F32 = np.float32


def forward_flops_limit():
    """SmallNetBackend::bf16_forward_flops_limit, from the bfloat16 GEMM kernel's name."""
    kernel = _core.build_info()["gemm_kernel"]["bfloat16"]
    if kernel.startswith("amx"):
        return 2.0 ** 20
    if kernel.startswith("avx512_bf16_"):
        return 2.0 ** 22
    return np.inf


def forward_flops(sizes, batch):
    return 2.0 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


# ---------------------------------------------------------------- the rounding kernel

def special_values():
    bits = np.array([
        0x00000000, 0x80000000,              # ±0
        0x00000001, 0x807fffff, 0x0000ffff,  # denormals: a zero of their sign
        0x00800000, 0x80800000,              # the smallest normals
        0x3f808000, 0x3f818000,              # ties: to even (down), to even (up)
        0x3f808001, 0x3f807fff,              # just past and just short of a tie
        0x7f7f7fff, 0x7f7f8000, 0x7f7fffff,  # below the largest bfloat16, a tie to Inf, the largest float32
        0xff7fffff,
        0x7f800000, 0xff800000,              # ±Inf
        0x7fc00000, 0x7f800001, 0xffffffff,  # NaNs (quiet, signalling, negative with a full payload)
    ], dtype=np.uint32)
    return bits.view(F32)


@pytest.mark.parametrize("n", [1, 7, 16, 17, 33, 1000])
def test_the_rounding_kernel_rounds_as_the_reference_bit_for_bit(n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)).astype(F32)
    x[: min(n, len(special_values()))] = special_values()[:n]
    got, expected = SMALL.round_to_bfloat16(x), round_to_bfloat16(x)
    assert got.dtype == F32
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    finite = ~np.isnan(expected)
    assert np.array_equal(got[finite].view(np.uint32), expected[finite].view(np.uint32))
    assert np.all(got.view(np.uint32) & 0xFFFF == 0)  # on the bfloat16 grid, NaNs too


@pytest.mark.parametrize("where", ["tail", "vector"])
def test_every_special_value_rounds_the_same_in_the_vector_body_and_the_tail(where):
    # alone (n = 1) a value takes the scalar tail; 64 copies fill whole vectors of any width
    for value in special_values():
        x = np.full(1 if where == "tail" else 64, value, dtype=F32)
        got, expected = SMALL.round_to_bfloat16(x), round_to_bfloat16(x)
        if np.isnan(value):
            assert np.all(np.isnan(got)) and np.all(got.view(np.uint32) & 0xFFFF == 0)
        else:
            assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), hex(int(x.view(np.uint32)[0]))


# ---------------------------------------------------------------- the kernels' rounded stores

@pytest.mark.parametrize("batch,n_in,n_out", [(1, 3, 5), (17, 33, 31), (64, 64, 65)])
@pytest.mark.parametrize("relu", [False, True])
def test_the_forward_stores_its_activations_rounded(batch, n_in, n_out, relu):
    rng = np.random.default_rng(batch + n_in)
    X, W, b = (rng.standard_normal(s).astype(F32) for s in ((batch, n_in), (n_out, n_in), (n_out,)))
    A, S = SMALL.forward(X, W, b, relu)
    A_rounded, S_rounded = SMALL.forward(X, W, b, relu, round_bf16=True)
    assert np.array_equal(A_rounded, round_to_bfloat16(A))
    assert np.array_equal(S_rounded, round_to_bfloat16(S))


@pytest.mark.parametrize("batch,n_in,n_out", [(1, 3, 5), (17, 33, 31), (64, 65, 10)])
@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", "relu"])
def test_the_input_gradient_stores_delta_rounded_and_sums_db_unrounded(batch, n_in, n_out, activation):
    rng = np.random.default_rng(batch * n_out)
    delta, W = rng.standard_normal((batch, n_out)).astype(F32), rng.standard_normal((n_out, n_in)).astype(F32)
    A_in = rng.random((batch, n_in)).astype(F32)
    d_in, db, finite = SMALL.input_gradient(delta, W, A_in, activation)
    d_rounded, db_rounded, finite_rounded = SMALL.input_gradient(delta, W, A_in, activation, round_bf16=True)
    assert finite and finite_rounded
    assert np.array_equal(d_rounded, round_to_bfloat16(d_in))
    assert np.array_equal(db_rounded, db)  # the sum of the unrounded values, bit for bit


def test_the_float64_kernels_refuse_to_round():
    X = np.ones((2, 3))
    with pytest.raises(ValueError, match="round_bf16"):
        _core.f64.small_net.forward(X, np.ones((4, 3)), np.ones(4), True, round_bf16=True)
    with pytest.raises(ValueError, match="round_bf16"):
        _core.f64.small_net.input_gradient(np.ones((2, 4)), np.ones((4, 3)), X, "relu", round_bf16=True)


# ---------------------------------------------------------------- which path runs

@pytest.mark.parametrize("sizes,batch", [([32, 64, 64, 1], 16), ([64, 100, 10], 200), ([100, 100, 10], 200),
                                         ([784, 128, 10], 32), ([64, 100, 10], 512)])
def test_the_small_path_takes_the_batches_under_the_limit(sizes, batch):
    net = bpfast.Network(sizes, compute="bfloat16")
    f32 = bpfast.Network(sizes)
    under = forward_flops(sizes, batch) <= forward_flops_limit()
    small = net._engine.uses_small_net(batch) or net._engine.row_chunks(batch) > 1
    f32_small = f32._engine.uses_small_net(batch) or f32._engine.row_chunks(batch) > 1
    assert small == (under and f32_small)


# ---------------------------------------------------------------- whole nets against the reference

CONFIGS = [  # (sizes, activation, output, loss)
    ([7, 13, 5], "relu", "softmax", "cross_entropy"),
    ([33, 65, 10], "tanh", "softmax", "cross_entropy"),
    ([13, 31, 3], "sigmoid", "sigmoid", "binary_cross_entropy"),
    ([31, 47, 17, 1], ["relu", "tanh"], "identity", "squared_error"),
    ([20, 24, 24, 4], ["sigmoid", "identity"], "identity", "squared_error"),
    ([64, 512, 10], "relu", "softmax", "cross_entropy"),  # at batch 32+, its products split into parts
]
IDS = [f"{'-'.join(map(str, c[0]))}-{c[1] if isinstance(c[1], str) else '-'.join(c[1])}" for c in CONFIGS]
BATCHES = [1, 13, 64, 200]  # 200: row chunks where the thread count allows


def on_small_path(net, batch):
    return net._engine.uses_small_net(batch) or net._engine.row_chunks(batch) > 1


def check_path(net, sizes, batch):
    """The path the rule picks; these nets are small enough for the float path in every ISA here."""
    assert on_small_path(net, batch) == (forward_flops(sizes, batch) <= forward_flops_limit())


def data(rng, sizes, output, batch):
    return batch_for_output(rng, sizes, output, batch, F32)


def make(cls, sizes, activation, output, loss, seed, compute="bfloat16", optimizer=None):
    return cls(sizes, activation=activation, output=output, loss=loss, dtype="float32", compute=compute,
               seed=seed, optimizer=optimizer)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("sizes,activation,output,loss", CONFIGS, ids=IDS)
def test_a_pass_matches_the_bfloat16_reference(sizes, activation, output, loss, batch):
    net = make(bpfast.Network, sizes, activation, output, loss, seed=7)
    ref = make(R.Network, sizes, activation, output, loss, seed=7)
    check_path(net, sizes, batch)  # and past the limit (beside AMX) the GEMM's bfloat16 kernels, to the same oracle
    X, T = data(np.random.default_rng(batch), sizes, output, batch)
    Y = net.forward(X)
    assert_close(Y, ref.forward(X), F32, ROW.rtol)
    assert abs(net.loss(X, T) - ref.loss(X, T)) <= ROW.rtol * max(1.0, abs(ref.loss(X, T)))
    grads, ref_grads = net.gradients(X, T), ref.gradients(X, T)
    for (dW, db), (rdW, rdb) in zip(grads, ref_grads):
        assert_close(dW, rdW, F32, ROW.rtol)
        assert_close(db, rdb, F32, ROW.rtol)
    # nearer the bfloat16 reference than float32 products are: the operands were rounded
    f32 = make(R.Network, sizes, activation, output, loss, seed=7, compute=None)
    if batch > 1:  # one sample may land near enough either way
        assert relative_error(Y, ref.forward(X)) < relative_error(f32.forward(X), ref.forward(X))
        for (dW, _), (rdW, _), (fdW, _) in zip(grads, ref_grads, f32.gradients(X, T)):
            assert relative_error(dW, rdW) < relative_error(fdW, rdW)


@pytest.mark.parametrize("opt", [optim.SGD(lr=0.1), optim.SGD(lr=0.05, momentum=0.9), optim.Adam(1e-2)],
                         ids=["sgd", "momentum", "adam"])
@pytest.mark.parametrize("sizes,activation,output,loss", CONFIGS, ids=IDS)
def test_steps_follow_the_bfloat16_reference(sizes, activation, output, loss, opt):
    # plain SGD takes the step fused into the weight gradient's tiles; the others a pass after
    net = make(bpfast.Network, sizes, activation, output, loss, seed=9, optimizer=opt)
    ref = make(R.Network, sizes, activation, output, loss, seed=9, optimizer=copy.deepcopy(opt))
    rng = np.random.default_rng(10)
    for batch in (32, 13, 200, 64):
        check_path(net, sizes, batch)
        X, T = data(rng, sizes, output, batch)
        value, ref_value = net.train_step(X, T), ref.train_step(X, T)
        assert abs(value - ref_value) <= ROW.trajectory_rtol * max(1.0, abs(ref_value))
    for a, b in zip(net.layers, ref.layers):
        assert_close(a.W, b.W, F32, ROW.trajectory_rtol)
        assert_close(a.b, b.b, F32, ROW.trajectory_rtol)


def test_the_stored_weights_stay_float32_and_unrounded():
    # the products read rounded copies; the master weights keep every float32 bit of their updates
    net = make(bpfast.Network, [16, 32, 4], "relu", "softmax", "cross_entropy", seed=2,
               optimizer=optim.Adam(1e-3))
    X, T = data(np.random.default_rng(3), [16, 32, 4], "softmax", 48)
    net.train_step(X, T)
    W = net.layers[0].W
    assert W.dtype == F32
    assert np.count_nonzero(W.view(np.uint32) & 0xFFFF) > W.size // 2


def parameters_on_thread_counts(train, counts=(1, 2, 3)):
    """The parameters train() leaves (it makes and trains a net) on each thread count, asserted
    bitwise equal; the first count's returned."""
    results = []
    threads = bpfast.get_num_threads()
    try:
        for n in counts:
            bpfast.set_num_threads(n)
            results.append([p.copy() for p in train().parameters()])
    finally:
        bpfast.set_num_threads(threads)
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other))
    return results[0]


def test_steps_split_into_parts_give_the_same_bits_on_any_thread_count():
    # a product of over 2**20 flops is split by rows of W (forward, weight gradient) and by columns
    # (input gradient) over the threads, each part rounding its own rows of W
    sizes, batch = [64, 512, 10], 32
    rng = np.random.default_rng(8)
    batches = [data(rng, sizes, "softmax", batch) for _ in range(3)]

    def train():
        net = make(bpfast.Network, sizes, "relu", "softmax", "cross_entropy", seed=3, optimizer=optim.Adam(1e-2))
        check_path(net, sizes, batch)
        for X, T in batches:
            net.train_step(X, T)
        return net

    parameters_on_thread_counts(train)


def test_a_fit_with_row_chunks_gives_the_same_bits_on_any_thread_count():
    sizes, batch = [20, 48, 5], 200
    X, T = data(np.random.default_rng(4), sizes, "softmax", 600)

    def train():
        net = make(bpfast.Network, sizes, "relu", "softmax", "cross_entropy", seed=5, optimizer=optim.Adam(1e-2))
        assert net._engine.row_chunks(batch) > 1 or forward_flops(sizes, batch) > forward_flops_limit()
        net.fit(X, T, epochs=2, batch_size=batch, shuffle=True)
        return net

    first = parameters_on_thread_counts(train)
    ref = make(R.Network, sizes, "relu", "softmax", "cross_entropy", seed=5, optimizer=optim.Adam(1e-2))
    ref.fit(X, T, epochs=2, batch_size=batch, shuffle=True)  # the same shuffle, from the same seed
    for a, b in zip(first, ref.parameters()):
        assert_close(a, b, F32, ROW.trajectory_rtol)
