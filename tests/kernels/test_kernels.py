"""Every native kernel of bpfast.kernels against its numpy twin in bpfast.reference.

Tolerance: max|native − reference| / max(1, max|reference|) must be at most
1e-12 in float64 and 1e-5 in float32 (conftest.TOLERANCE). Shapes include 1,
primes, sizes that are not multiples of any micro-kernel tile (4x8, 6x8, 6x16)
and sizes above the GEMM's blocking (MC=72, KC=512 on a 1 MiB L2; one case
above NC). Run it once more with BPFAST_ISA=generic to cover the portable
micro-kernel, and with BPFAST_GEMM_BLOCKS small to make every shape span many
blocks (.ci/run does both; test_tiny_gemm_blocks_* below does the latter here).

The last part of the file is a differential fuzz of the same kernels: Hypothesis
draws shapes, dtypes, memory layouts and value regimes (finite, overflowing,
NaN and Inf), and fuzzing.py says what it draws and how each result is checked.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from bpfast import _core
from bpfast import kernels as K
from bpfast import reference as R
from conftest import DTYPES, assert_close
from fuzzing import (
    FUZZ, FUZZED_LOSSES, LIPSCHITZ, dim, big, values, probability_rows, overflowing, non_finite, layout,
    out_buffer, draw_dtype, operand_dtypes, gemm_operands, operand_limit, f64, check, same_finiteness,
    reference, product_scale, op, dependency_mask, activation_outputs, backward_bound, draw_loss_inputs,
    loss_value_scale, in_place, param_shape, lr_value, refused)

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "softmax")
LOSSES = ("squared_error", "log_loss", "binary_cross_entropy", "softmax_cross_entropy",
          "sigmoid_cross_entropy", "poisson", "softmax_clipped_log_loss", "sigmoid_clipped_log_loss")
REDUCTIONS = ("mean", "sum")


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def assert_result(got, expected, dtype, shape):
    """got has the dtype and the shape asked for, and expected's values to the dtype's tolerance."""
    assert got.dtype == dtype and got.shape == shape
    assert_close(got, expected, dtype)


def prob_rows(rng, shape, dtype):
    """Rows of probabilities strictly inside (0, 1) that sum to 1 (the softmax of normals)."""
    return R.softmax(rng.standard_normal(shape)).astype(dtype)


def one_hot(rng, shape, dtype):
    T = np.zeros(shape, dtype=dtype)
    T[np.arange(shape[0]), rng.integers(0, shape[1], size=shape[0])] = 1
    return T


def test_isa_is_known_and_respects_the_environment():
    forced = os.environ.get("BPFAST_ISA")
    assert K.isa() in ("generic", "avx2", "avx512", "avx512_bf16", "amx", "amx_model")
    if forced:
        assert K.isa() == forced


# ---------------------------------------------------------------- GEMM shapes

MATMUL_SHAPES = [  # (M, K, N) of op(A) (M, K) · op(B) (K, N)
    (1, 1, 1), (1, 7, 1), (7, 1, 13), (7, 13, 31), (13, 31, 7), (31, 1, 257),
    (6, 16, 16), (73, 257, 17), (257, 13, 31), (300, 257, 7), (31, 300, 257), (300, 300, 31),
    (1, 300, 257), (300, 257, 1), (257, 1, 300),  # a unit dimension with long vectors
]


@pytest.mark.parametrize("trans_b", [False, True], ids=["B", "Bt"])
@pytest.mark.parametrize("trans_a", [False, True], ids=["A", "At"])
@pytest.mark.parametrize("M,Kd,N", MATMUL_SHAPES)
def test_matmul(rng, dtype, M, Kd, N, trans_a, trans_b):
    A = randn(rng, (Kd, M) if trans_a else (M, Kd), dtype)
    B = randn(rng, (N, Kd) if trans_b else (Kd, N), dtype)
    got = K.matmul(A, B, trans_a, trans_b)
    assert_result(got, R.matmul(A, B, trans_a, trans_b), dtype, (M, N))


@pytest.mark.parametrize("trans_b", [False, True], ids=["B", "Bt"])
def test_matmul_wider_than_one_column_block(rng, trans_b):
    # N past nc (the float64 column block on this CPU) exercises the outermost blocking loop;
    # cheap because M and K are small.
    from bpfast import show_config
    n = show_config(mode="dicts")["gemm_blocks"]["float64"]["nc"] + 28
    A = randn(rng, (3, 5), np.float64)
    B = randn(rng, (n, 5) if trans_b else (5, n), np.float64)
    assert_close(K.matmul(A, B, False, trans_b), R.matmul(A, B, False, trans_b), np.float64)


# A product with few columns (a 10-unit output layer) runs as Cᵀ = Bᵀ·Aᵀ, whose
# rows fill the micro-tile better. Oracle: the same product with the columns
# padded by zero columns of B up to 40 (the direct orientation), whose first
# columns are the same sums in the same order, and so equal to the bit.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [2, 3, 6, 10, 20])
@pytest.mark.parametrize("M,Kd", [(64, 128), (300, 100), (256, 1024), (97, 600)])
def test_few_columns_equal_the_direct_product_to_the_bit(rng, dtype, M, Kd, N):
    X, W = randn(rng, (M, Kd), dtype), randn(rng, (N, Kd), dtype)
    padded = np.zeros((40, Kd), dtype)
    padded[:N] = W
    direct = K.matmul(X, padded, trans_b=True)[:, :N]
    assert np.array_equal(K.matmul(X, W, trans_b=True), direct)
    assert_close(K.matmul(X, W, trans_b=True), R.matmul(X, W, trans_b=True), dtype)
    B = np.ascontiguousarray(W.T)  # B row-major (Kd, N)
    padded_b = np.zeros((Kd, 40), dtype)
    padded_b[:, :N] = B
    assert np.array_equal(K.matmul(X, B), K.matmul(X, padded_b)[:, :N])


TINY_BLOCKS_PROGRAM = """
import json, sys
import numpy as np
import bpfast
from bpfast import kernels as K
shapes = json.loads(sys.argv[1])
rng = np.random.default_rng(7)
worst, same = 0.0, True
for dtype in (np.float32, np.float64):
    for M, Kd, N in shapes:
        A, B = rng.standard_normal((M, Kd)), rng.standard_normal((Kd, N))
        exact = A @ B
        runs = []
        for threads in (1, 2, 3):
            bpfast.set_num_threads(threads)
            products = [K.matmul(A.astype(dtype), B.astype(dtype)),
                        K.matmul(np.ascontiguousarray(A.T).astype(dtype), B.astype(dtype), trans_a=True),
                        K.matmul(A.astype(dtype), np.ascontiguousarray(B.T).astype(dtype), trans_b=True)]
            runs.append(products)
            for got in products:
                scale = max(1.0, float(np.max(np.abs(exact))))
                worst = max(worst, float(np.max(np.abs(got - exact))) / scale / float(np.finfo(dtype).eps) / Kd)
        same = same and all(np.array_equal(a, b) for run in runs[1:] for a, b in zip(runs[0], run))
print(json.dumps({"worst_in_eps_times_depth": worst, "same_for_any_thread_count": same,
                  "blocks": bpfast.show_config(mode="dicts")["gemm_blocks"]}))
"""

# Shapes that span several blocks of every kind under BPFAST_GEMM_BLOCKS=8,48,64:
# ragged depths such as 49 and 97 (an even split into 2 or 3 blocks), rows over
# 4·mc, columns over nc; the few-columns and skinny paths; and, big enough to
# run on several threads, column parts sharing one packing of A (24, 49, 2000),
# the shared-B path (300, 150, 257), row parts (520, 61, 64) and A packed by
# several threads at once (64, 300, 2000); and one ragged block of rows packing B a few
# panels at a time, its A packed once for the column parts (21, 150, 2000).
TINY_BLOCK_SHAPES = [(7, 49, 65), (33, 97, 130), (100, 200, 70), (97, 48, 9), (40, 300, 3), (250, 50, 200),
                     (24, 49, 2000), (300, 150, 257), (520, 61, 64), (64, 300, 2000), (21, 150, 2000)]


@pytest.mark.slow
@pytest.mark.parametrize("blocks", ["8,48,64", "16,16,32", "24,100,96"])
def test_tiny_gemm_blocks_give_the_same_products(blocks):
    """Under small forced blocks every shape runs through many A, B and depth blocks: each product
    must still be A·B to rounding (against numpy in float64) and the same bits on 1, 2 and 3 threads."""
    env = {**os.environ, "BPFAST_GEMM_BLOCKS": blocks}
    done = subprocess.run([sys.executable, "-c", TINY_BLOCKS_PROGRAM, json.dumps(TINY_BLOCK_SHAPES)], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["blocks"]["float32"]["kc"] == int(blocks.split(",")[1])
    assert result["same_for_any_thread_count"]
    assert result["worst_in_eps_times_depth"] < 1.0, result


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_b", [False, True], ids=["B", "Bt"])
@pytest.mark.parametrize("trans_a", [False, True], ids=["A", "At"])
@pytest.mark.parametrize("extra", [1, 17])
def test_matmul_deeper_than_one_depth_block(rng, dtype, trans_a, trans_b, extra):
    # K just past kc (and past 2·kc) splits the depth into 2 (and 3) blocks at this CPU's kc.
    from bpfast import show_config
    kc = show_config(mode="dicts")["gemm_blocks"][np.dtype(dtype).name]["kc"]
    M, Kd, N = 37, kc * (1 if extra == 1 else 2) + extra, 45
    A = randn(rng, (Kd, M) if trans_a else (M, Kd), dtype)
    B = randn(rng, (N, Kd) if trans_b else (Kd, N), dtype)
    assert_close(K.matmul(A, B, trans_a, trans_b), R.matmul(A, B, trans_a, trans_b), dtype)


def test_matmul_closed_form_small():
    A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    B = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.5]])
    expected = np.array([[5.0, 2.0, 0.0], [11.0, 4.0, -1.0], [17.0, 6.0, -2.0]])
    for dt in DTYPES:
        assert_close(K.matmul(A.astype(dt), B.astype(dt)), expected, dt)
        assert_close(K.matmul(A.T.copy().astype(dt), B.T.copy().astype(dt), True, True), expected, dt)


GRADIENT_SHAPES = [  # (batch, n_out, n_in)
    (1, 1, 1), (1, 13, 7), (7, 1, 31), (13, 7, 31), (257, 7, 13), (31, 300, 13), (300, 31, 257),
    (257, 300, 31),
]


@pytest.mark.parametrize("batch,n_out,n_in", GRADIENT_SHAPES)
def test_weight_gradient(rng, dtype, batch, n_out, n_in):
    delta, X = randn(rng, (batch, n_out), dtype), randn(rng, (batch, n_in), dtype)
    got = K.weight_gradient(delta, X)
    assert_result(got, R.weight_gradient(delta, X), dtype, (n_out, n_in))


@pytest.mark.parametrize("batch,n_out,n_in", GRADIENT_SHAPES)
def test_weight_gradient_accumulates_into_out(rng, dtype, batch, n_out, n_in):
    delta, X = randn(rng, (batch, n_out), dtype), randn(rng, (batch, n_in), dtype)
    out0 = randn(rng, (n_out, n_in), dtype)
    out = out0.copy()
    got = K.weight_gradient(delta, X, out=out, accumulate=True)
    assert got is out
    assert_close(out, out0.astype(np.float64) + R.weight_gradient(delta, X).astype(np.float64), dtype)


def test_weight_gradient_accumulate_needs_out():
    with pytest.raises(ValueError, match="out"):
        K.weight_gradient(np.ones((2, 3)), np.ones((2, 4)), accumulate=True)


@pytest.mark.parametrize("batch,n_out,n_in", GRADIENT_SHAPES)
def test_input_gradient(rng, dtype, batch, n_out, n_in):
    delta, W = randn(rng, (batch, n_out), dtype), randn(rng, (n_out, n_in), dtype)
    got = K.input_gradient(delta, W)
    assert_result(got, R.input_gradient(delta, W), dtype, (batch, n_in))


def test_empty_dimensions(rng, dtype):
    # A zero inner dimension gives zeros (or leaves an accumulated out as it was); zero outer
    # dimensions give empty results. The reference is the oracle.
    A, B = np.ones((3, 0), dtype), np.ones((0, 4), dtype)
    got = K.matmul(A, B)
    assert got.shape == (3, 4) and np.array_equal(got, R.matmul(A, B)) and not np.any(got)
    assert K.matmul(np.ones((0, 5), dtype), np.ones((5, 3), dtype)).shape == (0, 3)
    assert K.matmul(np.ones((2, 5), dtype), np.ones((5, 0), dtype)).shape == (2, 0)
    out0 = randn(rng, (4, 6), dtype)
    out = out0.copy()
    K.weight_gradient(np.ones((0, 4), dtype), np.ones((0, 6), dtype), out=out, accumulate=True)
    assert np.array_equal(out, out0)
    assert not np.any(K.weight_gradient(np.ones((0, 4), dtype), np.ones((0, 6), dtype)))
    assert not np.any(K.input_gradient(np.ones((5, 0), dtype), np.ones((0, 3), dtype)))
    b = randn(rng, 4, dtype)
    for act in ACTIVATIONS:
        X, W = np.ones((3, 0), dtype), np.ones((4, 0), dtype)
        assert_close(K.dense_forward(X, W, b, act), R.dense_forward(X, W, b, act), dtype)


def test_kernels_run_concurrently_from_python_threads(rng):
    # The GIL is released around every kernel: several Python threads at once must each get
    # their own right answer (the per-thread packing buffers and the pool must not mix them up).
    from concurrent.futures import ThreadPoolExecutor
    jobs = []
    for i in range(8):
        dt = DTYPES[i % 2]
        X, W, b = randn(rng, (64 + i, 300), dt), randn(rng, (257, 300), dt, 0.1), randn(rng, 257, dt)
        dA = randn(rng, (64 + i, 257), dt)
        jobs.append((dt, X, W, b, dA))

    def work(job):
        dt, X, W, b, dA = job
        results = []
        for _ in range(3):
            A = K.dense_forward(X, W, b, "tanh")
            results.append((A, K.dense_backward(dA, X, W, A, "tanh")))
        return results

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(work, jobs))
    for (dt, X, W, b, dA), results in zip(jobs, outcomes):
        A_ref = R.dense_forward(X, W, b, "tanh")
        dX_ref, dW_ref, db_ref = R.dense_backward(dA, X, W, A_ref, "tanh")
        for A, (dX, dW, db) in results:
            assert_close(A, A_ref, dt)
            assert_close(dX, dX_ref, dt)
            assert_close(dW, dW_ref, dt)
            assert_close(db, db_ref, dt)


# ---------------------------------------------------------------- activations

ACT_SHAPES = [(1, 1), (1, 7), (7, 1), (13, 31), (3, 257), (300, 13)]


@pytest.mark.parametrize("shape", ACT_SHAPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_forward(rng, dtype, name, shape):
    Z = randn(rng, shape, dtype, scale=3.0)
    got = K.activation_forward(Z, name)
    assert_result(got, R.activation_forward(Z, name), dtype, shape)


@pytest.mark.parametrize("shape", ACT_SHAPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward(rng, dtype, name, shape):
    A = R.activation_forward(randn(rng, shape, dtype, scale=3.0), name)
    dA = randn(rng, shape, dtype)
    got = K.activation_backward(dA, A, name)
    assert_result(got, R.activation_backward(dA, A, name), dtype, shape)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_closed_forms(name):
    # Float64, against formulas written out here rather than the reference.
    Z = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    closed = {
        "identity": Z,
        "sigmoid": 1 / (1 + np.exp(-Z)),
        "tanh": np.tanh(Z),
        "relu": np.where(Z > 0, Z, 0.0),
        "softmax": np.exp(Z) / np.exp(Z).sum(),
    }[name]
    assert_close(K.activation_forward(Z, name), closed, np.float64)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softmax"])
def test_activation_forward_is_stable_for_large_inputs(dtype, name):
    Z = np.array([[-800.0, -100.0, 0.0, 100.0, 800.0]] if dtype == np.float64
                 else [[-100.0, -50.0, 0.0, 50.0, 100.0]], dtype=dtype)
    got = K.activation_forward(Z, name)
    assert np.all(np.isfinite(got))
    assert_close(got, R.activation_forward(Z, name), dtype)


def test_float32_tanh_is_accurate_to_a_few_ulps_everywhere():
    # A dense sweep of the float32 line from 1e-30 to 30 (both signs), against
    # float64 np.tanh: the rational fit's error stays within 1e-6 relative,
    # the function is odd, |tanh| never exceeds 1, and it is 1 past 9.
    magnitudes = np.concatenate([np.geomspace(1e-30, 1e-3, 2000), np.linspace(1e-3, 30, 200001)])
    Z = np.concatenate([magnitudes, -magnitudes]).astype(np.float32).reshape(2, -1)
    got = K.activation_forward(Z, "tanh").astype(np.float64)
    exact = np.tanh(Z.astype(np.float64))
    assert np.max(np.abs(got - exact) / np.abs(exact)) < 1e-6
    assert np.array_equal(got[1], -got[0])
    assert np.max(np.abs(got)) <= 1.0
    assert np.all(np.abs(got[:, np.abs(Z[0]) >= 9]) == 1.0)


def test_activation_unknown_name_raises():
    with pytest.raises(ValueError, match="activation"):
        K.activation_forward(np.ones((2, 2)), "gelu")
    with pytest.raises(ValueError, match="activation"):
        K.activation_backward(np.ones((2, 2)), np.ones((2, 2)), "gelu")


@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (7, 31), (3, 300), (257, 7)])
def test_softmax(rng, dtype, shape):
    Z = randn(rng, shape, dtype, scale=4.0)
    got = K.softmax(Z)
    assert got.dtype == dtype
    assert_close(got, R.softmax(Z), dtype)
    assert_close(got.sum(axis=1), np.ones(shape[0]), dtype)


@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (7, 31), (3, 300), (257, 7)])
def test_softmax_backward(rng, dtype, shape):
    Y = R.softmax(randn(rng, shape, dtype, scale=2.0))
    dY = randn(rng, shape, dtype)
    got = K.softmax_backward(dY, Y)
    assert got.dtype == dtype
    assert_close(got, R.softmax_backward(dY, Y), dtype)


def test_softmax_backward_matches_explicit_jacobian(rng, dtype):
    # J_ij = y_i (1{i=j} − y_j), formed explicitly per row; δx = J·δy.
    Y = R.softmax(rng.standard_normal((4, 5))).astype(dtype)
    dY = randn(rng, (4, 5), dtype)
    Y64, dY64 = Y.astype(np.float64), dY.astype(np.float64)
    expected = np.empty((4, 5))
    for r in range(4):
        y = Y64[r]
        J = np.diag(y) - np.outer(y, y)
        expected[r] = J @ dY64[r]
    assert_close(K.softmax_backward(dY, Y), expected, dtype)
    assert_close(R.softmax_backward(dY, Y), expected, dtype)


# ---------------------------------------------------------------- dense layer

DENSE_SHAPES = [  # (batch, n_in, n_out)
    (1, 1, 1), (1, 7, 13), (7, 13, 1), (13, 31, 7), (257, 13, 31), (31, 300, 17), (5, 17, 257),
    (31, 300, 257), (300, 257, 31),
]


@pytest.mark.parametrize("batch,n_in,n_out", DENSE_SHAPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_forward(rng, dtype, activation, batch, n_in, n_out):
    X, W, b = randn(rng, (batch, n_in), dtype), randn(rng, (n_out, n_in), dtype, 0.3), randn(rng, n_out, dtype)
    got = K.dense_forward(X, W, b, activation)
    assert_result(got, R.dense_forward(X, W, b, activation), dtype, (batch, n_out))


@pytest.mark.parametrize("need_dx", [True, False], ids=["dx", "no_dx"])
@pytest.mark.parametrize("batch,n_in,n_out", DENSE_SHAPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_backward(rng, dtype, activation, batch, n_in, n_out, need_dx):
    X, W, b = randn(rng, (batch, n_in), dtype), randn(rng, (n_out, n_in), dtype, 0.3), randn(rng, n_out, dtype)
    A = R.dense_forward(X, W, b, activation)
    dA = randn(rng, (batch, n_out), dtype)
    dX, dW, db = K.dense_backward(dA, X, W, A, activation, need_dx=need_dx)
    rdX, rdW, rdb = R.dense_backward(dA, X, W, A, activation, need_dx=need_dx)
    assert_close(dW, rdW, dtype)
    assert_close(db, rdb, dtype)
    assert dW.dtype == dtype and db.dtype == dtype and db.shape == (n_out,)
    if need_dx:
        assert dX.dtype == dtype
        assert_close(dX, rdX, dtype)
    else:
        assert dX is None and rdX is None


# ---------------------------------------------------------------- losses

def loss_inputs(rng, name, shape, dtype, hard_targets):
    """(Y or Z, T) valid for the loss: probabilities in (0, 1) and matching targets."""
    if name == "squared_error":
        return randn(rng, shape, dtype), randn(rng, shape, dtype)
    if name == "log_loss":
        T = one_hot(rng, shape, dtype) if hard_targets else prob_rows(rng, shape, dtype)
        return prob_rows(rng, shape, dtype), T
    if name == "binary_cross_entropy":
        T = (rng.integers(0, 2, shape) if hard_targets else rng.uniform(0, 1, shape)).astype(dtype)
        return rng.uniform(0.02, 0.98, shape).astype(dtype), T
    if name == "softmax_cross_entropy":
        T = one_hot(rng, shape, dtype) if hard_targets else prob_rows(rng, shape, dtype)
        return randn(rng, shape, dtype, 3.0), T
    if name in ("sigmoid_cross_entropy", "sigmoid_clipped_log_loss"):
        T = (rng.integers(0, 2, shape) if hard_targets else rng.uniform(0, 1, shape)).astype(dtype)
        return randn(rng, shape, dtype, 3.0), T
    if name == "softmax_clipped_log_loss":
        T = one_hot(rng, shape, dtype) if hard_targets else prob_rows(rng, shape, dtype)
        return randn(rng, shape, dtype, 3.0), T
    if name == "poisson":  # counts (zeros included) or any non-negative targets
        T = (rng.poisson(1.5, shape) if hard_targets else rng.uniform(0, 3, shape)).astype(dtype)
        return randn(rng, shape, dtype), T
    raise AssertionError(name)


@pytest.mark.parametrize("hard", [True, False], ids=["hard", "soft"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (13, 1), (7, 13), (300, 3), (3, 257)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", LOSSES)
def test_loss(rng, dtype, name, reduction, shape, hard):
    Y, T = loss_inputs(rng, name, shape, dtype, hard)
    value, grad = getattr(K, name)(Y, T, reduction)
    ref_value, ref_grad = getattr(R, name)(Y, T, reduction)
    assert isinstance(value, float)
    assert grad.dtype == dtype and grad.shape == shape
    assert_close(value, ref_value, dtype)
    assert_close(grad, ref_grad, dtype)
    # The dispatcher gives the same as the named function.
    value2, grad2 = K.loss(name, Y, T, reduction)
    assert value2 == value and np.array_equal(grad2, grad)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_sum_is_batch_times_mean(rng, name):
    Y, T = loss_inputs(rng, name, (7, 5), np.float64, False)
    mean_value, mean_grad = K.loss(name, Y, T, "mean")
    sum_value, sum_grad = K.loss(name, Y, T, "sum")
    assert_close(sum_value, 7 * mean_value, np.float64)
    assert_close(sum_grad, 7 * mean_grad, np.float64)


def test_loss_closed_forms():
    # Float64 values and gradients written out by hand (reduction "sum", one or two samples).
    Y = np.array([[0.2, 0.7, 0.1]])
    T = np.array([[0.0, 1.0, 0.0]])
    value, grad = K.squared_error(Y, T, "sum")
    assert_close(value, 0.5 * (0.04 + 0.09 + 0.01), np.float64)
    assert_close(grad, Y - T, np.float64)
    value, grad = K.log_loss(Y, T, "sum")
    assert_close(value, -np.log(0.7), np.float64)
    assert_close(grad, np.array([[0.0, -1 / 0.7, 0.0]]), np.float64)
    value, grad = K.binary_cross_entropy(Y, T, "sum")
    assert_close(value, -(np.log(0.8) + np.log(0.7) + np.log(0.9)), np.float64)
    assert_close(grad, (Y - T) / (Y * (1 - Y)), np.float64)
    Z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    T2 = np.array([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    value, grad = K.softmax_cross_entropy(Z, T2, "mean")
    lse0 = np.log(np.exp(1) + np.exp(2) + np.exp(3))
    assert_close(value, ((lse0 - 3) + np.log(3)) / 2, np.float64)
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    assert_close(grad, (P - T2) / 2, np.float64)
    Z3 = np.array([[-1.0, 0.5]])
    T3 = np.array([[1.0, 0.25]])
    s = 1 / (1 + np.exp(-Z3))
    value, grad = K.sigmoid_cross_entropy(Z3, T3, "sum")
    assert_close(value, -np.sum(T3 * np.log(s) + (1 - T3) * np.log(1 - s)), np.float64)
    assert_close(grad, s - T3, np.float64)


def test_softmax_cross_entropy_is_stable_for_huge_logits(dtype):
    Z = np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 0.0], [1000.0, 0.0, -1000.0]], dtype=dtype)
    T = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
    value, grad = K.softmax_cross_entropy(Z, T, "sum")
    # Row losses: lse(z) − z·t = 0, log 2, 1000 (to far below rounding).
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert_close(value, 0.0 + np.log(2.0) + 1000.0, dtype)
    P = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert_close(grad, P - T, dtype)
    value_mean, grad_mean = K.softmax_cross_entropy(Z, T, "mean")
    assert_close(value_mean, (np.log(2.0) + 1000.0) / 3, dtype)
    assert_close(grad_mean, (P - T) / 3, dtype)


def test_softmax_cross_entropy_keeps_small_losses_of_confident_rows(dtype):
    # A confident, correct row far from 0: the loss log(1 + 9·e^-15) ≈ 2.8e-6 is
    # far below the spacing of floats near the logit 15 (9.5e-7 in float32),
    # so it must not be formed as (15 + log-sum) − 15 in float, nor the sum
    # 1 + 9·e^-15 in float.
    for top in (15.0, 30.0):
        Z = np.array([[top] + [0.0] * 9], dtype=dtype)
        T = np.eye(10, dtype=dtype)[:1]
        value, _ = K.softmax_cross_entropy(Z, T, "sum")
        expected = np.log1p(9 * np.exp(-top))
        # log of a sum of 1 and a tiny term, in double: good to about 1e-16 absolute
        assert abs(value - expected) <= 1e-3 * expected + 2e-15, top


def test_sigmoid_cross_entropy_is_stable_for_huge_logits(dtype):
    Z = np.array([[800.0, 800.0, -800.0, -800.0]], dtype=dtype)
    T = np.array([[1.0, 0.0, 0.0, 1.0]], dtype=dtype)
    value, grad = K.sigmoid_cross_entropy(Z, T, "sum")
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    # −[t log σ(z) + (1−t) log(1−σ(z))]: 0, 800, 0, 800.
    assert_close(value, 1600.0, dtype)
    assert_close(grad, np.array([[0.0, 1.0, 0.0, -1.0]]), dtype)


@pytest.mark.parametrize("name", ["log_loss", "binary_cross_entropy"])
def test_probability_losses_clamp_at_eps(dtype, name):
    # Outputs of exactly 0 and 1 are clamped to [eps, 1 − eps]: value and gradient stay finite.
    Y = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.25]], dtype=dtype)
    T = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
    value, grad = getattr(K, name)(Y, T, "sum")
    ref_value, ref_grad = getattr(R, name)(Y, T, "sum")
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    eps = np.finfo(dtype).eps
    assert_close(value, ref_value, dtype)
    assert value > -2 * np.log(eps) * 0.99  # both rows pay about −log(eps)
    assert_close(grad, ref_grad, dtype)


def test_loss_unknown_name_or_reduction_raises():
    Y = np.ones((2, 3))
    with pytest.raises(ValueError, match="loss"):
        K.loss("hinge", Y, Y)
    with pytest.raises(ValueError, match="reduction"):
        K.squared_error(Y, Y, "avg")


def test_loss_empty_batch_raises():
    with pytest.raises(ValueError, match="Y"):
        K.squared_error(np.ones((0, 3)), np.ones((0, 3)))


# ---------------------------------------------------------------- optimizer

@pytest.mark.parametrize("shape", [(1,), (7,), (13, 31), (300, 257)])
def test_sgd_update(rng, dtype, shape):
    param = randn(rng, shape, dtype)
    grad = randn(rng, shape, dtype)
    expected = param.copy()
    R.sgd_update(expected, grad, 0.1)
    original = param
    assert K.sgd_update(param, grad, 0.1) is None
    assert param is original
    assert_close(param, expected, dtype)


def test_sgd_update_closed_form_and_conversions():
    param = np.array([1.0, 2.0, 3.0])
    K.sgd_update(param, np.array([1, 2, 3]), 0.5)  # integer gradient is converted
    assert_close(param, np.array([0.5, 1.0, 1.5]), np.float64)
    with pytest.raises(TypeError, match="param"):
        K.sgd_update(np.array([1, 2, 3]), np.ones(3), 0.1)
    with pytest.raises(ValueError, match="param"):
        K.sgd_update(np.ones(6)[::2], np.ones(3), 0.1)
    with pytest.raises(ValueError, match="grad"):
        K.sgd_update(np.ones(3), np.ones(4), 0.1)


@pytest.mark.parametrize("momentum,nesterov,weight_decay",
                         [(0.9, False, 0.0), (0.9, True, 0.0), (0.5, False, 0.01), (0.5, True, 0.01), (0.0, False, 0.1)])
@pytest.mark.parametrize("shape", [(1,), (7,), (13, 31), (300, 257)])
@pytest.mark.parametrize("form", ["pytorch", "sklearn"])
def test_sgd_momentum_update(rng, dtype, shape, momentum, nesterov, weight_decay, form):
    param, grad, velocity = (randn(rng, shape, dtype) for _ in range(3))
    expected, expected_velocity = param.copy(), velocity.copy()
    for lr in (0.1, 0.1, 0.03):  # the velocity carries over between steps, through a change of lr
        R.sgd_momentum_update(expected, grad, expected_velocity, lr, momentum, nesterov, weight_decay, form=form)
        assert K.sgd_momentum_update(param, grad, velocity, lr, momentum, nesterov, weight_decay,
                                     form=form) is None
    assert_close(param, expected, dtype)
    assert_close(velocity, expected_velocity, dtype)


def test_sgd_momentum_update_closed_form():
    # θ = 1, g = 1, b = 0, μ = 0.5, λ = 0.1: g ← 1.1, b ← 1.1, θ ← 1 − 0.1·1.1 (heavy ball)
    # or θ ← 1 − 0.1·(1.1 + 0.55) (Nesterov).
    for nesterov, step in [(False, 1.1), (True, 1.65)]:
        param, velocity = np.ones(3), np.zeros(3)
        K.sgd_momentum_update(param, np.ones(3), velocity, 0.1, 0.5, nesterov, 0.1)
        assert_close(velocity, np.full(3, 1.1), np.float64)
        assert_close(param, np.full(3, 1.0 - 0.1 * step), np.float64)
    param = np.ones(2)
    K.sgd_momentum_update(param, np.ones(2), None, 0.5, 0.0, False, 0.0)  # no momentum: no velocity needed
    assert_close(param, np.full(2, 0.5), np.float64)
    with pytest.raises(ValueError, match="velocity"):
        K.sgd_momentum_update(np.ones(2), np.ones(2), None, 0.5, 0.9, False, 0.0)
    with pytest.raises(TypeError, match="velocity"):
        K.sgd_momentum_update(np.ones(2), np.ones(2), np.zeros(2, np.float32), 0.5, 0.9, False, 0.0)


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("shape", [(1,), (7,), (13, 31), (300, 257)])
@pytest.mark.parametrize("form", ["pytorch", "sklearn"])
def test_adam_update(rng, dtype, shape, weight_decay, decoupled, form):
    param, grad = randn(rng, shape, dtype), randn(rng, shape, dtype)
    m, v = np.zeros(shape, dtype), np.zeros(shape, dtype)
    expected, expected_m, expected_v = param.copy(), m.copy(), v.copy()
    for step in (1, 2, 3):
        R.adam_update(expected, grad, expected_m, expected_v, step, 1e-2, 0.9, 0.999, 1e-3, weight_decay, decoupled,
                      form=form)
        assert K.adam_update(param, grad, m, v, step, 1e-2, 0.9, 0.999, 1e-3, weight_decay, decoupled,
                             form=form) is None
    assert_close(param, expected, dtype)
    assert_close(m, expected_m, dtype)
    assert_close(v, expected_v, dtype)


def test_adam_update_closed_form_first_step():
    # Step 1 from m = v = 0: m = (1−β1)g, v = (1−β2)g², and the corrected ratio is g/|g|, so
    # θ moves by lr·sign(g) (up to ε).
    param, m, v = np.zeros(4), np.zeros(4), np.zeros(4)
    grad = np.array([2.0, -3.0, 0.5, -0.25])
    K.adam_update(param, grad, m, v, 1, 0.01, 0.9, 0.999, 1e-12, 0.0, False)
    assert_close(param, -0.01 * np.sign(grad), np.float64, 1e-10)
    assert_close(m, 0.1 * grad, np.float64)
    assert_close(v, 0.001 * grad ** 2, np.float64)
    with pytest.raises(ValueError, match="step"):
        K.adam_update(param, grad, m, v, 0, 0.01, 0.9, 0.999, 1e-8, 0.0, False)
    with pytest.raises(ValueError, match="m"):
        K.adam_update(param, grad, np.zeros(3), v, 1, 0.01, 0.9, 0.999, 1e-8, 0.0, False)


@pytest.mark.parametrize("max_norm", [1e-3, 1.0, 1e6])
def test_clip_by_global_norm(rng, dtype, max_norm):
    grads = [randn(rng, shape, dtype) for shape in [(1,), (13, 31), (300, 257), (5,)]]
    expected = [g.copy() for g in grads]
    expected_norm = R.clip_by_global_norm(expected, max_norm)
    originals = list(grads)
    norm = K.clip_by_global_norm(grads, max_norm)
    assert_close(norm, expected_norm, dtype)
    for g, e, o in zip(grads, expected, originals):
        assert g is o
        assert_close(g, e, dtype)


def test_clip_by_global_norm_closed_form_and_checks():
    grads = [np.array([3.0]), np.array([[4.0]])]  # global norm 5
    assert K.clip_by_global_norm(grads, 1.0) == 5.0
    assert_close(np.concatenate([g.ravel() for g in grads]), np.array([3.0, 4.0]) / (5.0 + 1e-6), np.float64)
    unclipped = [np.array([0.3, 0.4])]
    K.clip_by_global_norm(unclipped, 1.0)
    assert_close(unclipped[0], np.array([0.3, 0.4]), np.float64, 0.0)
    with pytest.raises(TypeError, match=r"grads\[1\]"):
        K.clip_by_global_norm([np.ones(2), np.ones(2, np.float32)], 1.0)
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        K.clip_by_global_norm([np.ones(4)[::2]], 1.0)


def test_kernels_mirror_every_reference_kernel():
    # Every kernel of bpfast.reference has a native twin of the same name and signature.
    import inspect
    kernels = [name for name in R.__all__ if name not in ("Engine", "Network")]
    for name in kernels:
        assert name in K.__all__, name
        native, twin = inspect.signature(getattr(K, name)), inspect.signature(getattr(R, name))
        twin_params = list(twin.parameters)
        assert list(native.parameters)[:len(twin_params)] == twin_params, name


# ---------------------------------------------------------------- out= buffers

def _out_cases(rng, dtype):
    """(name, call(**out), out kwarg name, expected shape, reference result) for every out-taking kernel."""
    A, B = randn(rng, (7, 13), dtype), randn(rng, (13, 5), dtype)
    delta, X, W = randn(rng, (7, 5), dtype), randn(rng, (7, 13), dtype), randn(rng, (5, 13), dtype)
    b = randn(rng, 5, dtype)
    Z = randn(rng, (7, 5), dtype)
    Y = R.softmax(Z)
    dA = randn(rng, (7, 5), dtype)
    Ad = R.dense_forward(X, W, b, "tanh")
    P, T = prob_rows(rng, (7, 5), dtype), prob_rows(rng, (7, 5), dtype)
    cases = [
        ("matmul", lambda **o: K.matmul(A, B, **o), "out", (7, 5), R.matmul(A, B)),
        ("weight_gradient", lambda **o: K.weight_gradient(delta, X, **o), "out", (5, 13),
         R.weight_gradient(delta, X)),
        ("input_gradient", lambda **o: K.input_gradient(delta, W, **o), "out", (7, 13), R.input_gradient(delta, W)),
        ("activation_forward", lambda **o: K.activation_forward(Z, "sigmoid", **o), "out", (7, 5),
         R.activation_forward(Z, "sigmoid")),
        ("activation_backward", lambda **o: K.activation_backward(dA, Y, "tanh", **o), "out", (7, 5),
         R.activation_backward(dA, Y, "tanh")),
        ("softmax", lambda **o: K.softmax(Z, **o), "out", (7, 5), R.softmax(Z)),
        ("softmax_backward", lambda **o: K.softmax_backward(dA, Y, **o), "out", (7, 5), R.softmax_backward(dA, Y)),
        ("dense_forward", lambda **o: K.dense_forward(X, W, b, "relu", **o), "out", (7, 5),
         R.dense_forward(X, W, b, "relu")),
    ]
    rdX, rdW, rdb = R.dense_backward(dA, X, W, Ad, "tanh")
    for i, (key, shape, ref) in enumerate([("dX", (7, 13), rdX), ("dW", (5, 13), rdW), ("db", (5,), rdb)]):
        cases.append((f"dense_backward[{key}]", lambda i=i, **o: K.dense_backward(dA, X, W, Ad, "tanh", **o)[i],
                      key, shape, ref))
    for name in LOSSES:
        Yl = Z if name.endswith("_cross_entropy") and name != "binary_cross_entropy" else P
        cases.append((name, lambda name=name, Yl=Yl, **o: getattr(K, name)(Yl, T, "mean", **o)[1], "grad",
                      (7, 5), getattr(R, name)(Yl, T, "mean")[1]))
    return cases


OUT_CASE_NAMES = [c[0] for c in _out_cases(np.random.default_rng(0), np.float64)]


def _case(rng, dtype, name):
    return next(c for c in _out_cases(rng, dtype) if c[0] == name)


@pytest.mark.parametrize("name", OUT_CASE_NAMES)
def test_out_buffer_is_written_in_place_and_returned(rng, dtype, name):
    _, call, key, shape, ref = _case(rng, dtype, name)
    out = np.full(shape, np.nan, dtype=dtype)
    got = call(**{key: out})
    assert got is out
    assert_close(out, ref, dtype)


@pytest.mark.parametrize("name", OUT_CASE_NAMES)
def test_out_buffer_of_the_wrong_dtype_raises_type_error(rng, name):
    _, call, key, shape, _ = _case(rng, np.float32, name)
    with pytest.raises(TypeError, match=key):
        call(**{key: np.empty(shape, dtype=np.float64)})


@pytest.mark.parametrize("name", OUT_CASE_NAMES)
def test_out_buffer_not_contiguous_raises_value_error(rng, dtype, name):
    _, call, key, shape, _ = _case(rng, dtype, name)
    wide = np.empty(shape[:-1] + (2 * shape[-1],), dtype=dtype)
    out = wide[..., ::2]
    assert out.shape == shape and not out.flags.c_contiguous
    with pytest.raises(ValueError, match=key):
        call(**{key: out})
    if len(shape) == 2 and shape[0] > 1 and shape[1] > 1:
        with pytest.raises(ValueError, match=key):
            call(**{key: np.empty(shape, dtype=dtype, order="F")})


@pytest.mark.parametrize("name", OUT_CASE_NAMES)
def test_out_buffer_of_the_wrong_shape_raises_value_error(rng, dtype, name):
    _, call, key, shape, _ = _case(rng, dtype, name)
    with pytest.raises(ValueError, match=key):
        call(**{key: np.empty((shape[0] + 1,) + shape[1:], dtype=dtype)})
    with pytest.raises(ValueError, match=key):
        call(**{key: np.empty(shape[:-1] + (shape[-1] + 1,), dtype=dtype)})


# ---------------------------------------------------------------- input conversion

def test_non_contiguous_inputs_are_converted(rng):
    wide = rng.standard_normal((13, 62))
    A = wide[:, ::2]  # (13, 31), strided
    B = np.asfortranarray(rng.standard_normal((31, 7)))
    assert not A.flags.c_contiguous and not B.flags.c_contiguous
    assert_close(K.matmul(A, B), np.ascontiguousarray(A) @ np.ascontiguousarray(B), np.float64)
    assert_close(K.matmul(A, B.T, False, True), np.ascontiguousarray(A) @ np.ascontiguousarray(B),
                 np.float64)
    W = np.asfortranarray(rng.standard_normal((5, 31)))
    b = rng.standard_normal(10)[::2]
    assert_close(K.dense_forward(A, W, b, "tanh"), R.dense_forward(A.copy(), W.copy(), b.copy(), "tanh"),
                 np.float64)
    Z = rng.standard_normal((7, 10))[:, 1::2]
    assert_close(K.softmax(Z), R.softmax(Z.copy()), np.float64)
    T = R.softmax(rng.standard_normal((7, 5))).T.copy().T
    assert_close(K.softmax_cross_entropy(Z, T)[1], R.softmax_cross_entropy(Z.copy(), T.copy())[1], np.float64)


def test_integer_and_mixed_inputs_are_converted(rng):
    A = rng.integers(-5, 6, size=(7, 13))
    B = rng.integers(-5, 6, size=(13, 31))
    got = K.matmul(A, B)
    assert got.dtype == np.float64
    assert np.array_equal(got, (A @ B).astype(np.float64))  # exact in floating point
    A32 = A.astype(np.float32)
    got = K.matmul(A32, B.astype(np.float64))  # mixed dtypes work in float64
    assert got.dtype == np.float64
    assert_close(got, A @ B, np.float64)
    X = rng.integers(-3, 4, size=(5, 13))
    W = rng.standard_normal((7, 13)).astype(np.float32)
    b = np.zeros(7, dtype=np.int32)
    assert_close(K.dense_forward(X, W, b, "sigmoid"),
                 R.dense_forward(X.astype(np.float64), W.astype(np.float64), b.astype(np.float64), "sigmoid"),
                 np.float64)
    labels = np.array([[0, 1, 0], [1, 0, 0]])
    Z = np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]])
    assert_close(K.softmax_cross_entropy(Z, labels)[0], R.softmax_cross_entropy(Z, labels.astype(float))[0],
                 np.float64)


def test_non_numeric_inputs_raise_type_error():
    with pytest.raises(TypeError, match="A"):
        K.matmul(np.array([["a", "b"]]), np.ones((2, 2)))
    with pytest.raises(TypeError, match="Z"):
        K.activation_forward(np.array([[object()]]), "relu")


def test_inputs_are_not_modified(rng, dtype):
    X, W, b = randn(rng, (7, 13), dtype), randn(rng, (5, 13), dtype), randn(rng, 5, dtype)
    dA = randn(rng, (7, 5), dtype)
    copies = [a.copy() for a in (X, W, b, dA)]
    A = K.dense_forward(X, W, b, "sigmoid")
    A_copy = A.copy()
    K.dense_backward(dA, X, W, A, "sigmoid")
    K.activation_backward(dA, A, "softmax")
    K.loss("squared_error", A, dA)
    for before, after in zip(copies + [A_copy], (X, W, b, dA, A)):
        assert np.array_equal(before, after)


def test_shape_mismatches_raise_value_error():
    with pytest.raises(ValueError):
        K.matmul(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="A"):
        K.matmul(np.ones(3), np.ones((3, 5)))
    with pytest.raises(ValueError, match="b"):
        K.dense_forward(np.ones((2, 3)), np.ones((4, 3)), np.ones(5), "relu")
    with pytest.raises(ValueError, match="T"):
        K.squared_error(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="dA"):
        K.activation_backward(np.ones((2, 4)), np.ones((2, 3)), "tanh")



@pytest.mark.parametrize("dtype", DTYPES)
def test_all_finite_finds_a_nan_or_inf_at_any_position(dtype):
    # Lengths around the vector and four-vector strides of its loops (8 to 64
    # values), with the bad value at every position in turn; the oracle is np.isfinite.
    for n in [0, 1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 200]:
        x = np.linspace(-1e30, 1e30, n).astype(dtype)
        assert _core.all_finite(x) is True
        for position in range(n):
            for bad in (np.nan, np.inf, -np.inf):
                y = x.copy()
                y[position] = bad
                assert _core.all_finite(y) is bool(np.all(np.isfinite(y))) is False


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_fast_path_equals_the_checked_path(dtype):
    """Ready 2-D arrays of one float dtype go to the core untouched (K._as_they_are), with or
    without out; the result is the one the checked path (which makes a Fortran-ordered operand
    C-contiguous first) gives, to the bit, and both match the reference."""
    rng = np.random.default_rng(9)
    A, B = rng.standard_normal((37, 29)).astype(dtype), rng.standard_normal((29, 41)).astype(dtype)
    delta = rng.standard_normal((37, 41)).astype(dtype)
    W = B.T.copy()
    F = np.asfortranarray
    for fast, checked, oracle in (
            (lambda out=None: K.matmul(A, B, out=out), lambda: K.matmul(F(A), B), lambda: R.matmul(A, B)),
            (lambda out=None: K.weight_gradient(delta, A, out=out), lambda: K.weight_gradient(F(delta), A),
             lambda: R.weight_gradient(delta, A)),
            (lambda out=None: K.input_gradient(delta, W, out=out), lambda: K.input_gradient(F(delta), W),
             lambda: R.input_gradient(delta, W))):
        got = fast()
        assert got.dtype == dtype and got.flags.c_contiguous
        into = np.empty_like(got)
        assert fast(into) is into
        np.testing.assert_array_equal(got, into)
        np.testing.assert_array_equal(got, checked())
        assert_close(got, oracle(), dtype)
    assert K._as_they_are(A, B.astype(np.float64 if dtype == np.float32 else np.float32)) is None
    assert K._as_they_are(A[:, ::2], B) is None and K._as_they_are(A.tolist(), B) is None
    assert K._as_they_are(A, B, out=np.empty((37, 41), np.float16)) is None


# ================================================================ differential fuzz (Hypothesis; fuzzing.py draws and checks)
# ---------------------------------------------------------------- GEMM shapes

@FUZZ
@given(data=st.data())
def test_fuzz_matmul(data):
    (da, db), work, (M, Kd, N) = gemm_operands(data, ("M", "K", "N"))
    ta, tb = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
    limit = operand_limit((da, db), work, Kd)
    A = values(data, (Kd, M) if ta else (M, Kd), da, limit, "A")
    B = values(data, (N, Kd) if tb else (Kd, N), db, limit, "B")
    out = out_buffer(data, (M, N), work)
    got = K.matmul(layout(data, A, "A"), layout(data, B, "B"), ta, tb, out=out)
    assert out is None or got is out
    expected = reference(R.matmul, A, B, ta, tb)
    check(got, expected, work, product_scale(op(A, ta), op(B, tb)), terms=Kd)


@FUZZ
@given(data=st.data())
def test_fuzz_weight_gradient(data):
    (dd, dx), work, (batch, n_out, n_in) = gemm_operands(data, ("batch", "n_out", "n_in"))
    limit = operand_limit((dd, dx), work, batch + 1)
    delta = values(data, (batch, n_out), dd, limit, "delta")
    X = values(data, (batch, n_in), dx, limit, "X")
    scale = product_scale(delta.T, X)
    expected = reference(R.weight_gradient, delta, X)
    if data.draw(st.booleans(), label="accumulate"):
        out0 = values(data, (n_out, n_in), work, limit * limit, "out")
        out = out0.copy()
        got = K.weight_gradient(layout(data, delta, "delta"), layout(data, X, "X"), out=out, accumulate=True)
        assert got is out
        check(got, f64(out0) + f64(expected), work, scale + float(np.max(np.abs(f64(out0)), initial=0)),
              terms=batch + 1)
    else:
        out = out_buffer(data, (n_out, n_in), work)
        got = K.weight_gradient(layout(data, delta, "delta"), layout(data, X, "X"), out=out)
        assert out is None or got is out
        check(got, expected, work, scale, terms=batch)


@FUZZ
@given(data=st.data())
def test_fuzz_input_gradient(data):
    (dd, dw), work, (batch, n_out, n_in) = gemm_operands(data, ("batch", "n_out", "n_in"))
    limit = operand_limit((dd, dw), work, n_out)
    delta = values(data, (batch, n_out), dd, limit, "delta")
    W = values(data, (n_out, n_in), dw, limit, "W")
    out = out_buffer(data, (batch, n_in), work)
    got = K.input_gradient(layout(data, delta, "delta"), layout(data, W, "W"), out=out)
    assert out is None or got is out
    check(got, reference(R.input_gradient, delta, W), work, product_scale(delta, W), terms=n_out)


@FUZZ
@given(data=st.data())
def test_fuzz_activation_forward(data):
    dtype = draw_dtype(data)
    name = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    rows, cols = dim(data, "rows"), dim(data, "cols")
    Z = values(data, (rows, cols), dtype, big(dtype) / 4, "Z")
    out = out_buffer(data, (rows, cols), dtype)
    got = K.activation_forward(layout(data, Z, "Z"), name, out=out)
    assert out is None or got is out
    expected = reference(R.activation_forward, Z, name)
    if expected is None:  # softmax of rows without columns: numpy refuses the empty max
        assert name == "softmax" and cols == 0 and got.shape == (rows, 0)
        return
    check(got, expected, dtype, terms=cols if name == "softmax" else 1)
    if name == "softmax" and rows and cols:
        assert np.array_equal(K.softmax(Z), got)
        check(np.sum(f64(got), axis=1), np.ones(rows), dtype, terms=cols, what="row sums", same_dtype=False)


@FUZZ
@given(data=st.data())
def test_fuzz_activation_backward(data):
    dtype = draw_dtype(data)
    name = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    rows, cols = dim(data, "rows"), dim(data, "cols")
    A = activation_outputs(data, name, (rows, cols), dtype, "A")
    degree_limit = {"identity": big(dtype) / 4, "relu": big(dtype) / 4}.get(
        name, (big(dtype) / (16.0 * (cols + 1))) ** (1 / 3))
    dA = values(data, (rows, cols), dtype, degree_limit, "dA")
    out = out_buffer(data, (rows, cols), dtype)
    got = K.activation_backward(layout(data, dA, "dA"), layout(data, A, "A"), name, out=out)
    assert out is None or got is out
    scale = float(np.max(backward_bound(name, dA, A), initial=0.0))
    check(got, reference(R.activation_backward, dA, A, name), dtype, scale,
          terms=cols + 2 if name == "softmax" else 3)


@FUZZ
@given(data=st.data())
def test_fuzz_softmax(data):
    dtype = draw_dtype(data)
    rows, cols = dim(data, "rows"), dim(data, "cols")
    Z = values(data, (rows, cols), dtype, big(dtype) / 4, "Z")
    out = out_buffer(data, (rows, cols), dtype)
    got = K.softmax(layout(data, Z, "Z"), out=out)
    assert out is None or got is out
    expected = reference(R.softmax, Z)
    if expected is None:
        assert cols == 0 and got.shape == (rows, 0)
        return
    check(got, expected, dtype, terms=cols)
    assert np.all(f64(got) >= 0) and np.all(f64(got) <= 1 + 4 * float(np.finfo(dtype).eps))


@FUZZ
@given(data=st.data())
def test_fuzz_softmax_backward(data):
    dtype = draw_dtype(data)
    rows, cols = dim(data, "rows"), dim(data, "cols")
    Y = probability_rows(data, (rows, cols), dtype, "Y")
    dY = values(data, (rows, cols), dtype, big(dtype) / (16.0 * (cols + 1)), "dY")
    out = out_buffer(data, (rows, cols), dtype)
    got = K.softmax_backward(layout(data, dY, "dY"), layout(data, Y, "Y"), out=out)
    assert out is None or got is out
    scale = float(np.max(backward_bound("softmax", dY, Y), initial=0.0))
    check(got, reference(R.softmax_backward, dY, Y), dtype, scale, terms=cols + 2)


# ---------------------------------------------------------------- dense layer

@FUZZ
@given(data=st.data())
def test_fuzz_dense_forward(data):
    dtype = draw_dtype(data)
    (dx, dw), work = operand_dtypes(data, dtype)
    name = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    batch, n_in, n_out = dim(data, "batch"), dim(data, "n_in"), dim(data, "n_out")
    limit = operand_limit((dx, dw), work, n_in + 1)
    X = values(data, (batch, n_in), dx, limit, "X")
    W = values(data, (n_out, n_in), dw, limit, "W")
    b = values(data, (n_out,), dw, limit * limit, "b")
    out = out_buffer(data, (batch, n_out), work)
    got = K.dense_forward(layout(data, X, "X"), layout(data, W, "W"), layout(data, b, "b"), name, out=out)
    assert out is None or got is out
    expected = reference(R.dense_forward, X, W, b, name)
    if expected is None:  # a softmax layer of no units
        assert name == "softmax" and n_out == 0 and got.shape == (batch, 0)
        return
    z_scale = product_scale(X, W.T) + float(np.max(np.abs(f64(b)), initial=0.0))
    check(got, expected, work, LIPSCHITZ[name] * z_scale, terms=n_in + 1 + (n_out if name == "softmax" else 0))


@FUZZ
@given(data=st.data())
def test_fuzz_dense_backward(data):
    dtype = draw_dtype(data)
    name = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    batch, n_in, n_out = dim(data, "batch"), dim(data, "n_in"), dim(data, "n_out")
    need_dx = data.draw(st.booleans(), label="need_dx")
    A = activation_outputs(data, name, (batch, n_out), dtype, "A")
    growth = {"sigmoid": 1e3 * (1 + 1e3), "tanh": 1 + 1e6, "softmax": 1e3 * (1 + n_out * 1e3)}.get(name, 1.0)
    limit = math.sqrt(big(dtype) / (16.0 * (batch + n_out + 1) * growth))
    dA = values(data, (batch, n_out), dtype, limit, "dA")
    X = values(data, (batch, n_in), dtype, limit, "X")
    W = values(data, (n_out, n_in), dtype, limit, "W")
    dX = out_buffer(data, (batch, n_in), dtype, "dX") if need_dx else None
    dW, db = out_buffer(data, (n_out, n_in), dtype, "dW"), out_buffer(data, (n_out,), dtype, "db")
    got = K.dense_backward(layout(data, dA, "dA"), layout(data, X, "X"), layout(data, W, "W"),
                           layout(data, A, "A"), name, need_dx=need_dx, dX=dX, dW=dW, db=db)
    for given_buffer, result in zip((dX, dW, db), got):
        assert given_buffer is None or result is given_buffer
    rdX, rdW, rdb = reference(R.dense_backward, dA, X, W, A, name, need_dx=need_dx)
    bound = backward_bound(name, dA, A)
    terms = batch + n_out + 3
    check(got[1], rdW, dtype, product_scale(bound.T, X), terms, "dW")
    check(got[2], rdb, dtype, float(np.max(np.sum(bound, axis=0), initial=0.0)), terms, "db")
    if need_dx:
        check(got[0], rdX, dtype, product_scale(bound, W), terms, "dX")
    else:
        assert got[0] is None and rdX is None


@FUZZ
@given(data=st.data())
def test_fuzz_loss(data):
    dtype = draw_dtype(data)
    name = data.draw(st.sampled_from(FUZZED_LOSSES), label="loss")
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    batch, n = dim(data, "batch"), dim(data, "n")
    Y, T = draw_loss_inputs(data, name, (batch, n), dtype)
    Yv, Tv = layout(data, Y, "Y"), layout(data, T, "T")
    grad = out_buffer(data, (batch, n), dtype, "grad")
    via_dispatch = data.draw(st.booleans(), label="through loss()")
    call = (lambda: K.loss(name, Yv, Tv, reduction, grad=grad)) if via_dispatch else \
        (lambda: getattr(K, name)(Yv, Tv, reduction, grad=grad))
    if batch == 0:  # documented: an empty batch is refused, naming Y
        with pytest.raises(ValueError, match=r"\bY\b"):
            call()
        return
    value, g = call()
    assert isinstance(value, float) and (grad is None or g is grad)
    expected = reference(getattr(R, name), Y, T, reduction)
    if expected is None:  # softmax cross-entropy of rows without columns: an empty sum
        assert name == "softmax_cross_entropy" and n == 0 and value == 0.0 and g.shape == (batch, 0)
        return
    ref_value, ref_grad = expected
    check(value, ref_value, dtype, loss_value_scale(name, Y, T, reduction), terms=batch * n + n + 2,
          what="value")
    check(g, ref_grad, dtype, terms=n + 2 if name == "softmax_cross_entropy" else 3, what="gradient")


@FUZZ
@given(data=st.data())
def test_fuzz_sgd_update(data):
    dtype = draw_dtype(data)
    shape = param_shape(data)
    lr = lr_value(data)
    param = values(data, shape, dtype, big(dtype) / 8, "param")
    grad = values(data, shape, dtype, big(dtype) / (8 * max(1.0, abs(lr))), "grad")
    native, kind = in_place(data, param, "param")
    if kind:
        return refused(lambda: K.sgd_update(native, grad, lr), [native], [("param", kind)])
    expected = param.copy()
    with np.errstate(all="ignore"):
        R.sgd_update(expected, grad, lr)
    assert K.sgd_update(native, layout(data, grad, "grad"), lr) is None
    check(native, expected, dtype, float(np.max(np.abs(f64(param)) + abs(lr) * np.abs(f64(grad)), initial=0)),
          terms=2)


@FUZZ
@given(data=st.data())
def test_fuzz_sgd_momentum_update(data):
    dtype = draw_dtype(data)
    shape = param_shape(data)
    lr = lr_value(data)
    momentum = data.draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]), label="momentum")
    nesterov = data.draw(st.booleans(), label="nesterov")
    decay = data.draw(st.sampled_from([0.0, 1e-4, 0.01, 0.1]), label="weight_decay")
    limit = big(dtype) ** 0.25 / 10
    param, grad = values(data, shape, dtype, limit, "param"), values(data, shape, dtype, limit, "grad")
    with_velocity = momentum != 0 or data.draw(st.booleans(), label="velocity given")
    velocity = values(data, shape, dtype, limit, "velocity") if with_velocity else None
    p, pk = in_place(data, param, "param")
    v, vk = in_place(data, velocity, "velocity") if with_velocity else (None, None)
    if pk or vk:
        return refused(lambda: K.sgd_momentum_update(p, grad, v, lr, momentum, nesterov, decay),
                       [p] + ([v] if v is not None else []), [("param", pk), ("velocity", vk)])
    steps = data.draw(st.integers(1, 3), label="steps")
    for step in range(steps):  # each step checked from the same state (the reference's) on both sides
        p0, ep, ev = p.astype(np.float64), p.copy(), None if v is None else v.copy()
        with np.errstate(all="ignore"):
            R.sgd_momentum_update(ep, grad, ev, lr, momentum, nesterov, decay)
        g_abs = np.abs(f64(grad)) + decay * np.abs(p0)
        b_abs = momentum * np.abs(f64(v)) + g_abs if v is not None else g_abs
        step_abs = (g_abs + momentum * b_abs if nesterov else b_abs) if momentum else g_abs
        assert K.sgd_momentum_update(p, layout(data, grad, f"grad {step}"), v, lr, momentum, nesterov,
                                     decay) is None
        check(p, ep, dtype, float(np.max(np.abs(p0) + abs(lr) * step_abs, initial=0)),
              terms=4, what=f"param after step {step + 1}")
        p[...] = ep
        if v is not None:
            check(v, ev, dtype, float(np.max(b_abs, initial=0)), terms=3, what=f"velocity after step {step + 1}")
            v[...] = ev


@FUZZ
@given(data=st.data())
def test_fuzz_adam_update(data):
    dtype = draw_dtype(data)
    shape = param_shape(data)
    lr = lr_value(data)
    beta1 = data.draw(st.sampled_from([0.0, 0.5, 0.9, 0.99]), label="beta1")
    beta2 = data.draw(st.sampled_from([0.0, 0.9, 0.999, 0.9999]), label="beta2")
    eps = data.draw(st.sampled_from([1e-8, 1e-6, 1e-3, 1.0]), label="eps")
    decay = data.draw(st.sampled_from([0.0, 0.01, 0.1]), label="weight_decay")
    decoupled = data.draw(st.booleans(), label="decoupled")
    first_step = data.draw(st.one_of(st.integers(1, 5), st.integers(1, 10**6)), label="step")
    limit = big(dtype) ** 0.25 / 10
    param, grad = values(data, shape, dtype, limit, "param"), values(data, shape, dtype, limit, "grad")
    m = values(data, shape, dtype, limit, "m")
    v = values(data, shape, dtype, limit, "v", nonnegative=True)  # a second moment is never negative
    arrays = [in_place(data, a, label) for a, label in ((param, "param"), (m, "m"), (v, "v"))]
    (p, pk), (mm, mk), (vv, vk) = arrays
    if pk or mk or vk:
        return refused(lambda: K.adam_update(p, grad, mm, vv, first_step, lr, beta1, beta2, eps, decay,
                                                   decoupled), [p, mm, vv], [("param", pk), ("m", mk), ("v", vk)])
    for step in range(first_step, first_step + data.draw(st.integers(1, 3), label="steps")):
        p0, ep, em, ev = p.astype(np.float64), p.copy(), mm.copy(), vv.copy()
        with np.errstate(all="ignore"):
            R.adam_update(ep, grad, em, ev, step, lr, beta1, beta2, eps, decay, decoupled)
        assert K.adam_update(p, layout(data, grad, f"grad {step}"), mm, vv, step, lr, beta1, beta2, eps, decay,
                             decoupled) is None
        # Magnitudes each side rounds: g, m, v, and the step lr/(1−β1ᵗ)·|m|/(√v/√(1−β2ᵗ) + ε).
        g_abs = np.abs(f64(grad)) + (0.0 if decoupled else decay * np.abs(p0))
        m_abs = beta1 * np.abs(f64(em)) + (1 - beta1) * g_abs
        step_size = lr / (1.0 - beta1 ** step)
        denominator = np.sqrt(f64(ev)) / math.sqrt(1.0 - beta2 ** step) + eps
        p_abs = np.abs(p0) * (1 + abs(lr * decay)) + abs(step_size) * m_abs / denominator
        check(mm, em, dtype, float(np.max(m_abs, initial=0)), terms=3, what=f"m after step {step}")
        check(vv, ev, dtype, terms=3, what=f"v after step {step}")
        check(p, ep, dtype, float(np.max(p_abs, initial=0)), terms=8, what=f"param after step {step}")
        p[...], mm[...], vv[...] = ep, em, ev


@FUZZ
@given(data=st.data())
def test_fuzz_clip_by_global_norm(data):
    dtype = draw_dtype(data)
    count = data.draw(st.integers(0, 4), label="arrays")
    shapes = [param_shape(data) for _ in range(count)]
    total = sum(int(np.prod(s)) for s in shapes) + 1
    limit = big(dtype) / 4 if dtype == np.float32 else math.sqrt(big(dtype) / (4.0 * total))
    grads = [values(data, s, dtype, limit, f"grads[{i}]") for i, s in enumerate(shapes)]
    max_norm = data.draw(st.one_of(st.sampled_from([0.0, 1e-6, 1e-3, 1.0, 1e3, 1e30]),
                                   st.floats(0, 1e6, allow_nan=False)), label="max_norm")
    natives = [in_place(data, g, f"grads[{i}]") for i, g in enumerate(grads)]
    bad = [(f"grads[{i}]", kind) for i, (_, kind) in enumerate(natives) if kind]
    if bad:
        name = bad[0][0].replace("[", r"\[").replace("]", r"\]")
        before = [a.copy() for a, _ in natives]
        with pytest.raises(ValueError, match=name):
            K.clip_by_global_norm([a for a, _ in natives], max_norm)
        assert all(np.array_equal(a, b) for (a, _), b in zip(natives, before))
        return
    natives = [a for a, _ in natives]
    expected = [g.copy() for g in grads]
    ref_norm = R.clip_by_global_norm(expected, max_norm)
    norm = K.clip_by_global_norm(natives, max_norm)
    assert isinstance(norm, float)
    check(norm, ref_norm, np.float64, terms=total)
    for i, (got, exp, g) in enumerate(zip(natives, expected, grads)):
        check(got, exp, dtype, float(np.max(np.abs(f64(g)), initial=0)), terms=3, what=f"grads[{i}]")


# ---------------------------------------------------------------- overflow (policy 2)

@FUZZ
@given(data=st.data())
def test_overflowing_gemm_agrees_on_which_entries_are_finite(data):
    dtype = draw_dtype(data)
    kernel = data.draw(st.sampled_from(["matmul", "weight_gradient", "input_gradient", "dense_forward"]),
                       label="kernel")
    a, k, b = dim(data, "rows", high=64), dim(data, "inner", low=1, high=64), dim(data, "cols", high=64)
    with np.errstate(all="ignore"):
        if kernel == "matmul":
            ta, tb = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
            A = overflowing(data, (k, a) if ta else (a, k), dtype, "A")
            B = overflowing(data, (b, k) if tb else (k, b), dtype, "B")
            got, expected = K.matmul(layout(data, A, "A"), layout(data, B, "B"), ta, tb), R.matmul(A, B, ta, tb)
        elif kernel == "weight_gradient":
            delta, X = overflowing(data, (k, a), dtype, "delta"), overflowing(data, (k, b), dtype, "X")
            got, expected = K.weight_gradient(delta, layout(data, X, "X")), R.weight_gradient(delta, X)
        elif kernel == "input_gradient":
            delta, W = overflowing(data, (a, k), dtype, "delta"), overflowing(data, (k, b), dtype, "W")
            got, expected = K.input_gradient(layout(data, delta, "delta"), W), R.input_gradient(delta, W)
        else:
            # Z = X·Wᵀ + b against the reference; then the fused activation against the kernel's own
            # activation of that Z (an overflowed sum is +Inf with FMA where it is Inf − Inf = NaN without,
            # and a bounded activation maps the one to a finite value and the other to NaN).
            name = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
            X, W = overflowing(data, (a, k), dtype, "X"), overflowing(data, (b, k), dtype, "W")
            bias = np.zeros(b, dtype)
            got, expected = K.dense_forward(X, W, bias, "identity"), R.dense_forward(X, W, bias, "identity")
            fused = K.dense_forward(layout(data, X, "X"), W, bias, name)
            if name != "softmax" or b:
                same_finiteness(fused, K.activation_forward(got, name), "fused activation")
    note(f"non-finite entries: native {int(np.sum(~np.isfinite(got)))}, "
         f"reference {int(np.sum(~np.isfinite(expected)))} of {got.size}")
    same_finiteness(got, expected)


@FUZZ
@given(data=st.data())
def test_overflowing_elementwise_kernels_agree_on_which_entries_are_finite(data):
    dtype = draw_dtype(data)
    kernel = data.draw(st.sampled_from(["activation_forward", "activation_backward", "sgd_update",
                                        "sgd_momentum_update", "adam_update", "clip_by_global_norm",
                                        "squared_error"]), label="kernel")
    shape = (dim(data, "rows", high=64), dim(data, "cols", high=64))
    x, y = overflowing(data, shape, dtype, "x"), overflowing(data, shape, dtype, "y")
    with np.errstate(all="ignore"):
        if kernel == "activation_forward":
            name = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
            got, expected = K.activation_forward(x, name), reference(R.activation_forward, x, name)
            if expected is None:
                return
        elif kernel == "activation_backward":
            name = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
            got, expected = K.activation_backward(x, y, name), R.activation_backward(x, y, name)
        elif kernel == "sgd_update":
            p, e = x.copy(), x.copy()
            lr = data.draw(st.sampled_from([1.0, 1e10, 1e300]), label="lr")
            K.sgd_update(p, y, lr)
            R.sgd_update(e, y, lr)
            got, expected = p, e
        elif kernel == "sgd_momentum_update":
            p, e, vp, ve = x.copy(), x.copy(), y.copy(), y.copy()
            K.sgd_momentum_update(p, y, vp, 1.0, 0.9, True, 0.1)
            R.sgd_momentum_update(e, y, ve, 1.0, 0.9, True, 0.1)
            same_finiteness(vp, ve, "velocity")
            got, expected = p, e
        elif kernel == "adam_update":
            p, e = x.copy(), x.copy()
            m1, m2, v1, v2 = (np.zeros(shape, dtype) for _ in range(4))
            K.adam_update(p, y, m1, v1, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, False)
            R.adam_update(e, y, m2, v2, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, False)
            same_finiteness(m1, m2, "m")
            same_finiteness(v1, v2, "v")
            got, expected = p, e
        elif kernel == "clip_by_global_norm":
            g1, g2 = [x.copy(), y.copy()], [x.copy(), y.copy()]
            norm, ref_norm = K.clip_by_global_norm(g1, 1.0), R.clip_by_global_norm(g2, 1.0)
            assert math.isfinite(norm) == math.isfinite(ref_norm)
            same_finiteness(g1[0], g2[0], "grads[0]")
            got, expected = g1[1], g2[1]
        else:
            if shape[0] == 0:
                return
            value, got = K.squared_error(x, y, "sum")
            ref_value, expected = R.squared_error(x, y, "sum")
            assert math.isfinite(value) == math.isfinite(ref_value)
    same_finiteness(got, expected)


# ---------------------------------------------------------------- NaN and Inf inputs (policy 3)

@FUZZ
@given(data=st.data())
def test_non_finite_inputs_reach_every_gemm_output_they_feed(data):
    dtype = draw_dtype(data)
    kernel = data.draw(st.sampled_from(["matmul", "weight_gradient", "input_gradient", "dense_forward",
                                        "dense_backward"]), label="kernel")
    a, k, b = dim(data, "rows", high=80), dim(data, "inner", high=80), dim(data, "cols", high=80)
    draw = lambda shape, label: non_finite(data, values(data, shape, dtype, 10.0, label), label)  # noqa: E731
    with np.errstate(all="ignore"):
        if kernel == "matmul":
            ta, tb = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
            A, B = draw((k, a) if ta else (a, k), "A"), draw((b, k) if tb else (k, b), "B")
            got, expected = K.matmul(layout(data, A, "A"), layout(data, B, "B"), ta, tb), R.matmul(A, B, ta, tb)
            mask = dependency_mask(op(A, ta), op(B, tb))
        elif kernel == "weight_gradient":
            delta, X = draw((k, a), "delta"), draw((k, b), "X")
            got, expected = K.weight_gradient(delta, layout(data, X, "X")), R.weight_gradient(delta, X)
            mask = dependency_mask(delta.T, X)
        elif kernel == "input_gradient":
            delta, W = draw((a, k), "delta"), draw((k, b), "W")
            got, expected = K.input_gradient(layout(data, delta, "delta"), W), R.input_gradient(delta, W)
            mask = dependency_mask(delta, W)
        elif kernel == "dense_forward":
            X, W, bias = draw((a, k), "X"), draw((b, k), "W"), draw((b,), "b")
            got, expected = K.dense_forward(X, W, bias, "identity"), R.dense_forward(X, W, bias, "identity")
            mask = dependency_mask(X, W.T) | ~np.isfinite(bias)[None, :]
        else:  # dense_backward with an identity layer: δ = dA, so dW = dAᵀX, dX = dA·W, db = Σ dA
            dA, X, W = draw((a, b), "dA"), draw((a, k), "X"), draw((b, k), "W")
            dX, dW, db = K.dense_backward(dA, X, W, np.zeros((a, b), dtype), "identity")
            rdX, rdW, rdb = R.dense_backward(dA, X, W, np.zeros((a, b), dtype), "identity")
            same_finiteness(dX, rdX, "dX")
            assert np.array_equal(~np.isfinite(dX), dependency_mask(dA, W)), "dX"
            same_finiteness(db, rdb, "db")
            assert np.array_equal(~np.isfinite(db), ~np.all(np.isfinite(dA), axis=0)), "db"
            got, expected, mask = dW, rdW, dependency_mask(dA.T, X)
    finite = np.isfinite(got)
    assert np.array_equal(~finite, mask), f"non-finite at {np.argwhere(~finite != mask)[:5].tolist()}"
    same_finiteness(got, expected)
    both = finite & np.isfinite(expected)  # every input is at most 10 in magnitude
    check(got[both], expected[both], dtype, 100.0 * (k + 1), terms=k + 1)


@FUZZ
@given(data=st.data())
def test_non_finite_inputs_propagate_as_in_the_reference(data):
    dtype = draw_dtype(data)
    kernel = data.draw(st.sampled_from(["activation_forward", "activation_backward", "loss", "sgd_update",
                                        "sgd_momentum_update", "adam_update", "clip_by_global_norm"]),
                       label="kernel")
    shape = (dim(data, "rows", low=1, high=64), dim(data, "cols", low=1, high=64))
    x = non_finite(data, values(data, shape, dtype, 10.0, "x"), "x")
    y = non_finite(data, values(data, shape, dtype, 10.0, "y"), "y")
    with np.errstate(all="ignore"):
        if kernel == "activation_forward":
            name = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
            got, expected = K.activation_forward(x, name), R.activation_forward(x, name)
        elif kernel == "activation_backward":
            name = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
            got, expected = K.activation_backward(x, y, name), R.activation_backward(x, y, name)
        elif kernel == "loss":
            name = data.draw(st.sampled_from(FUZZED_LOSSES), label="loss")
            reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
            value, got = K.loss(name, x, y, reduction)
            ref_value, expected = R.loss(name, x, y, reduction)
            assert math.isfinite(value) == math.isfinite(ref_value), (value, ref_value)
        elif kernel == "sgd_update":
            p, e = x.copy(), x.copy()
            K.sgd_update(p, y, 0.1)
            R.sgd_update(e, y, 0.1)
            got, expected = p, e
        elif kernel == "sgd_momentum_update":
            momentum = data.draw(st.sampled_from([0.0, 0.9]), label="momentum")
            decay = data.draw(st.sampled_from([0.0, 0.1]), label="weight_decay")
            p, e = x.copy(), x.copy()
            vp, ve = (np.zeros(shape, dtype), np.zeros(shape, dtype)) if momentum else (None, None)
            K.sgd_momentum_update(p, y, vp, 0.1, momentum, False, decay)
            R.sgd_momentum_update(e, y, ve, 0.1, momentum, False, decay)
            got, expected = p, e
        elif kernel == "adam_update":
            p, e = x.copy(), x.copy()
            m1, m2, v1, v2 = (np.zeros(shape, dtype) for _ in range(4))
            decoupled = data.draw(st.booleans(), label="decoupled")
            K.adam_update(p, y, m1, v1, 3, 1e-3, 0.9, 0.999, 1e-8, 0.01, decoupled)
            R.adam_update(e, y, m2, v2, 3, 1e-3, 0.9, 0.999, 1e-8, 0.01, decoupled)
            same_finiteness(m1, m2, "m")
            same_finiteness(v1, v2, "v")
            got, expected = p, e
        else:
            g1, g2 = [x.copy(), y.copy()], [x.copy(), y.copy()]
            norm, ref_norm = K.clip_by_global_norm(g1, 1.0), R.clip_by_global_norm(g2, 1.0)
            assert (math.isnan(norm), math.isinf(norm)) == (math.isnan(ref_norm), math.isinf(ref_norm))
            same_finiteness(g1[0], g2[0], "grads[0]")
            got, expected = g1[1], g2[1]
    same_finiteness(got, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_nan_and_inf_through_the_fast_exp(dtype):
    # The fuzz found this under UBSan: float32 exp_fast(NaN) converted NaN to int and shifted
    # INT_MIN + 127 left (undefined behaviour; harmless on x86 only by luck). A row of each
    # non-finite value at every lane position, through every kernel that calls exp_fast.
    bad = [np.nan, np.inf, -np.inf]
    Z = np.tile(np.linspace(-3, 3, 37), (3 * 37, 1)).astype(dtype)
    for r in range(Z.shape[0]):
        Z[r, r % 37] = bad[r // 37]
    T = np.full(Z.shape, 1 / 37, dtype)
    with np.errstate(all="ignore"):
        for name in ("sigmoid", "softmax"):
            same_finiteness(K.activation_forward(Z, name), R.activation_forward(Z, name), name)
            W, b = np.eye(37, dtype=dtype), np.zeros(37, dtype)  # a NaN or Inf spreads over its row (0·Inf)
            same_finiteness(K.dense_forward(Z, W, b, name), R.dense_forward(Z, W, b, name), f"dense_forward {name}")
        for name in ("softmax_cross_entropy", "sigmoid_cross_entropy"):
            value, grad = K.loss(name, Z, T, "sum")
            ref_value, ref_grad = R.loss(name, Z, T, "sum")
            assert math.isfinite(value) == math.isfinite(ref_value)
            same_finiteness(grad, ref_grad, name)
