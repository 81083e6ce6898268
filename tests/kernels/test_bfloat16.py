"""The bfloat16 products (compute="bfloat16") of bpfast.kernels against closed forms and the reference.

round_to_bfloat16 is checked against values whose rounding is known by hand (exact bfloat16 values,
ties to even, overflow to Inf, Inf and NaN) and bitwise against the reference's bit arithmetic.

Every GEMM shape is checked against the reference that rounds the same operands the same way
(bpfast.reference rounds with R.round_to_bfloat16 and sums in float64). The tolerance is derived,
not tuned. bfloat16 has an 8-bit significand, so the product of two bfloat16 values has at most 16
significant bits and is exact in float32: with identical rounded operands A_r, B_r the only error
left is the float32 summation of K exact products. Each of the at most K additions (FMA or
VDPBF16PS/TDPBF16PS step) rounds once with unit roundoff u = 2**-24, so elementwise

    |C − A_r·B_r| ≤ γ_K · (|A_r|·|B_r|),   γ_K = K·u / (1 − K·u)        (Higham, Thm 3.1)

whatever the summation order or blocking. We allow a factor 2 (BOUND_FACTOR) for the final add of
a partial sum into C (blocked depth, accumulate=True) and the bias of dense_forward's epilogue, and
compare against the reference's float32 result, itself within u·|A_r·B_r| of the exact sum.

Separately, against the unrounded product each operand carries a relative rounding error of at most
u_bf16 = 2**-8 (round to nearest with an 8-bit significand, 7 bits stored: half a spacing of
2**(e-7) relative to |x| ≥ 2**e), so

    |C − A·B| ≤ ((1 + u_bf16)**2 − 1)·(|A|·|B|) + 2γ_K·(|A_r|·|B_r|)  ≈ 2·2**-8·(|A|·|B|),

and, to show the operands really are rounded, C must not equal the float32 product of the
unrounded operands (random data puts nearly every operand off the bfloat16 grid, and the γ_K bound
above is far smaller than the up to 2**-8 relative change rounding makes for the larger K).

The GEMM data is normal-scale (no subnormals): rounding turns a float32 subnormal into a zero of its
sign everywhere (the reference too, as VCVTNE2PS2BF16 does), but VDPBF16PS and the AMX tiles also
flush subnormal sums, which the reference does not model.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bpfast import _core
from bpfast import kernels as K
from bpfast import reference as R

U = 2.0 ** -24        # float32 unit roundoff
U_BF16 = 2.0 ** -8    # bfloat16 unit roundoff: 8-bit significand (7 stored), round to nearest
BOUND_FACTOR = 2.0    # the final add into C (blocked depth, accumulate) and the epilogue's bias
F32 = np.float32


def gamma(k):
    """γ_k = k·u / (1 − k·u) for float32."""
    return k * U / (1 - k * U)


def rounded64(M):
    """M's bfloat16 rounding (the reference's), exactly, in float64."""
    return R.round_to_bfloat16(np.asarray(M, F32)).astype(np.float64)


def bits(x):
    return np.asarray(x, F32).view(np.uint32)


# ---------------------------------------------------------------- round_to_bfloat16

def test_exact_bfloat16_values_are_unchanged():
    # values whose low 16 bits are zero are bfloat16 values already
    values = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 3.0, 1 + 2 ** -7, -(1 + 2 ** -7), 255.0, 2.0 ** -126,
                       2.0 ** 127, float.fromhex("0x1.fep127")], F32)
    assert np.all((bits(values) & 0xFFFF) == 0)
    got = K.round_to_bfloat16(values)
    assert got.dtype == F32 and got.shape == values.shape
    assert np.array_equal(bits(got), bits(values))  # -0.0 keeps its sign


def test_float32_subnormals_become_zeros_of_their_sign():
    # As VCVTNE2PS2BF16 rounds them (it reads a denormal input as zero), so that the packers with
    # and without that instruction, and the reference, give every value the same bits.
    subnormals = np.array([0x00000001, 0x00400000, 0x007FFFFF, 0x80000001, 0x807FFFFF], np.uint32).view(F32)
    got = K.round_to_bfloat16(subnormals)
    assert np.array_equal(bits(got), np.array([0, 0, 0, 0x80000000, 0x80000000], np.uint32))
    assert np.array_equal(bits(R.round_to_bfloat16(subnormals)), bits(got))
    # the smallest normal float32 is a bfloat16 and stays
    assert np.array_equal(bits(K.round_to_bfloat16(np.array([2.0 ** -126, -(2.0 ** -126)], F32))),
                          np.array([0x00800000, 0x80800000], np.uint32))


def test_halfway_cases_tie_to_even():
    # 1 + 2**-8 lies halfway between 1 (even: last kept bit 0) and 1 + 2**-7 (odd): to 1.
    # 1 + 3·2**-8 lies halfway between 1 + 2**-7 (odd) and 1 + 2**-6 (even): to 1 + 2**-6.
    cases = {1 + 2 ** -8: 1.0, 1 + 3 * 2 ** -8: 1 + 2 ** -6,
             -(1 + 2 ** -8): -1.0, -(1 + 3 * 2 ** -8): -(1 + 2 ** -6),
             # just off the halfway points: to nearest
             float(np.nextafter(F32(1 + 2 ** -8), F32(2))): 1 + 2 ** -7,
             float(np.nextafter(F32(1 + 2 ** -8), F32(0))): 1.0,
             # ties in [2, 4), where the spacing is 2**-6: 3 (significand ends in 0) is even, 3 + 2**-6 odd
             3 + 2 ** -7: 3.0, 3 + 3 * 2 ** -7: 3 + 2 ** -5,
             # below half: down; above: up
             1 + 2 ** -9: 1.0, 1 + 2 ** -8 + 2 ** -10: 1 + 2 ** -7}
    x = np.array(list(cases), F32)
    expected = np.array(list(cases.values()), F32)
    assert np.array_equal(K.round_to_bfloat16(x), expected)


def test_negative_values_round_as_their_magnitude():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(4096) * 10.0 ** rng.integers(-30, 30, 4096).astype(float)).astype(F32)
    assert np.array_equal(K.round_to_bfloat16(-x), -K.round_to_bfloat16(x))
    # the closed form: the nearest bfloat16 is within half a bfloat16 spacing: |r − x| ≤ u_bf16·|x|
    r = K.round_to_bfloat16(x).astype(np.float64)
    assert np.all(np.abs(r - x) <= U_BF16 * np.abs(x.astype(np.float64)))
    assert np.all((bits(r.astype(F32)) & 0xFFFF) == 0)


def test_overflow_inf_and_nan():
    big = np.finfo(F32).max  # 0x7f7fffff: halfway rounding up past the largest bfloat16 (0x7f7f0000)
    largest_bf16 = float.fromhex("0x1.fep127")
    below_half = np.array([0x7F7F7FFF], np.uint32).view(F32)[0]  # just below the halfway point: rounds down
    x = np.array([big, -big, np.inf, -np.inf, largest_bf16, below_half], F32)
    got = K.round_to_bfloat16(x)
    assert got[0] == np.inf and got[1] == -np.inf
    assert got[2] == np.inf and got[3] == -np.inf
    assert got[4] == F32(largest_bf16) and got[5] == F32(largest_bf16)
    nans = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF, 0xFFFFFFFF, 0x7F80FFFF], np.uint32).view(F32)
    assert np.all(np.isnan(K.round_to_bfloat16(nans)))


def test_native_equals_reference_bitwise_on_random_float32():
    rng = np.random.default_rng(2)
    n = 1 << 18
    # every bit pattern is a float32: normals, subnormals, zeros, Inf, NaN
    x = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32).view(F32)
    subnormals = rng.integers(1, 1 << 23, 4096, dtype=np.uint32).view(F32) * np.where(rng.random(4096) < .5, 1, -1)
    ties = ((rng.integers(0, 1 << 16, 4096, dtype=np.uint64) << 16) | 0x8000).astype(np.uint32).view(F32)  # exact halfway points
    x = np.concatenate([x, subnormals.astype(F32), ties, np.array([0.0, -0.0], F32)])
    got, expected = K.round_to_bfloat16(x), R.round_to_bfloat16(x)
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(bits(got)[~nan], bits(expected)[~nan])
    # the shape is kept (2-D, non-contiguous input converted)
    X = x[: 64 * 64].reshape(64, 64)[:, ::2]
    assert np.array_equal(bits(K.round_to_bfloat16(X))[~np.isnan(X)], bits(R.round_to_bfloat16(X))[~np.isnan(X)])


# ---------------------------------------------------------------- GEMM shapes

# (M, K, N): unit dimensions; odd K (the pair padding of VDPBF16PS and AMX); K not a multiple of 32
# (AMX pads its depth to 16 pairs); M, N not multiples of the tiles (8x32, 4x16, 4x8, 32x32); few
# columns with many rows; and a large case that spans several blocks.
SHAPES = [
    (1, 1, 1), (1, 37, 1), (1, 64, 33), (45, 64, 1), (7, 1, 13),
    (9, 3, 17), (33, 33, 65), (17, 31, 31), (31, 47, 33), (5, 49, 9),
    (64, 100, 10), (129, 65, 10), (40, 16, 40), (33, 96, 97),
    (300, 1000, 257),
]


def randn(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(F32)


def check_product(C, A, B, expected_ref, extra=None, extra_abs=None, name="C"):
    """C (M, N), computed from the float32 operands A (M, K) and B (K, N) by the bfloat16 path,
    against the reference's expected_ref (the same rounding, summed in float64, stored in float32).
    extra: a float32 term added to the product (accumulate's C0 or the bias row), exact in the bound."""
    k = A.shape[1]
    Ar, Br = rounded64(A), rounded64(B)
    exact = Ar @ Br
    magnitude = np.abs(Ar) @ np.abs(Br)
    if extra is not None:
        exact = exact + extra
        magnitude = magnitude + np.abs(extra)
    C64 = C.astype(np.float64)
    # the same rounding: only float32 summation error (the reference's own float32 result adds u·|exact|)
    bound = BOUND_FACTOR * gamma(k + 1) * magnitude
    err = np.abs(C64 - exact)
    assert np.all(err <= bound), f"{name}: max excess {np.max(err - bound):.3e} over the γ_K bound"
    assert np.all(np.abs(C64 - expected_ref.astype(np.float64)) <= bound + 2 * U * magnitude), \
        f"{name}: differs from the reference by more than the γ_K bound"
    # against the unrounded product: each operand off by at most u_bf16 relative
    unrounded = A.astype(np.float64) @ B.astype(np.float64) + (0 if extra is None else extra)
    plain_mag = np.abs(A.astype(np.float64)) @ np.abs(B.astype(np.float64))
    rounding_bound = ((1 + U_BF16) ** 2 - 1) * plain_mag + bound
    assert np.all(np.abs(C64 - unrounded) <= rounding_bound), f"{name}: past the operand rounding bound"
    # and the operands really were rounded: not the float32 product of the unrounded operands
    # (unless every product is zero, as a relu's masked δ can make it)
    assert not np.any(magnitude) or not np.array_equal(C, unrounded.astype(F32)), f"{name}: the bfloat16 path did not round its operands"


@pytest.mark.parametrize("trans_b", [False, True], ids=["B", "Bt"])
@pytest.mark.parametrize("trans_a", [False, True], ids=["A", "At"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul(shape, trans_a, trans_b):
    m, k, n = shape
    rng = np.random.default_rng([m, k, n, trans_a, trans_b])
    A = randn(rng, (k, m) if trans_a else (m, k))
    B = randn(rng, (n, k) if trans_b else (k, n))
    C = K.matmul(A, B, trans_a, trans_b, compute="bfloat16")
    assert C.dtype == F32 and C.shape == (m, n)
    expected = R.matmul(A, B, trans_a, trans_b, compute="bfloat16")
    check_product(C, A.T if trans_a else A, B.T if trans_b else B, expected)
    # into an out buffer, and through the checked path (a non-contiguous operand): the same bits
    out = np.full((m, n), np.nan, F32)
    assert K.matmul(A, B, trans_a, trans_b, compute="bfloat16", out=out) is out
    assert np.array_equal(out, C)
    strided = np.repeat(A, 2, axis=1)[:, ::2]
    assert np.array_equal(K.matmul(strided, B, trans_a, trans_b, compute="bfloat16"), C)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_weight_gradient(shape):
    n_out, batch, n_in = shape  # dW (n_out, n_in) = δᵀ (n_out, batch) · X (batch, n_in)
    rng = np.random.default_rng([n_out, batch, n_in, 1])
    delta, X = randn(rng, (batch, n_out)), randn(rng, (batch, n_in))
    dW = K.weight_gradient(delta, X, compute="bfloat16")
    assert dW.shape == (n_out, n_in)
    check_product(dW, delta.T, X, R.weight_gradient(delta, X, compute="bfloat16"), name="dW")
    # accumulate=True: dW += δᵀ·X onto what the buffer held
    C0 = randn(rng, (n_out, n_in))
    out = C0.copy()
    assert K.weight_gradient(delta, X, compute="bfloat16", out=out, accumulate=True) is out
    check_product(out, delta.T, X, C0 + R.weight_gradient(delta, X, compute="bfloat16"),
                  extra=C0.astype(np.float64), name="dW accumulated")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_input_gradient(shape):
    batch, n_out, n_in = shape  # dX (batch, n_in) = δ (batch, n_out) · W (n_out, n_in)
    rng = np.random.default_rng([batch, n_out, n_in, 2])
    delta, W = randn(rng, (batch, n_out)), randn(rng, (n_out, n_in))
    dX = K.input_gradient(delta, W, compute="bfloat16")
    assert dX.shape == (batch, n_in)
    check_product(dX, delta, W, R.input_gradient(delta, W, compute="bfloat16"), name="dX")


ACTIVATIONS = ("identity", "relu", "sigmoid", "tanh", "softmax")
# The activation's own float32 evaluation, held to the float32 row's kernel rtol (tests/kernels/test_kernels.py
# checks the activations alone to it).
ACTIVATION_RTOL = 1e-5


def activation64(Z, name):
    return R.activation_forward(Z, name)  # the reference's numpy activations, here on float64


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", [s for s in SHAPES if s[0] * s[1] * s[2] < 10 ** 7] + [(256, 300, 65)],
                         ids=lambda s: "x".join(map(str, s)))
def test_dense_forward(shape, activation):
    batch, n_in, n_out = shape
    rng = np.random.default_rng([batch, n_in, n_out, 3])
    X, W, b = randn(rng, (batch, n_in)), randn(rng, (n_out, n_in), 1 / np.sqrt(n_in)), randn(rng, (n_out,))
    A = K.dense_forward(X, W, b, activation, compute="bfloat16")
    assert A.dtype == F32 and A.shape == (batch, n_out)
    expected = R.dense_forward(X, W, b, activation, compute="bfloat16")
    if activation == "identity":
        check_product(A, X, W.T, expected, extra=b.astype(np.float64), name="Z")
        return
    # Z = X_r·W_rᵀ + b within the γ bound; the activations are 1-Lipschitz (sigmoid ¼), the softmax moves each
    # output by at most 2·max_j |ΔZ_j| of its row; then the activation's own float32 evaluation
    Xr, Wr = rounded64(X), rounded64(W)
    Z = Xr @ Wr.T + b
    dz = BOUND_FACTOR * gamma(n_in + 1) * (np.abs(Xr) @ np.abs(Wr).T + np.abs(b))
    if activation == "softmax":
        dz = 2 * np.max(dz, axis=1, keepdims=True)
    A_exact = activation64(Z, activation)
    bound = dz + ACTIVATION_RTOL * np.maximum(1.0, np.abs(A_exact))
    err = np.abs(A.astype(np.float64) - A_exact)
    assert np.all(err <= bound), f"max excess {np.max(err - bound):.3e}"
    # the reference is within the same bound of the exact values (its Z is off by at most 2u·|X_r||W_r|ᵀ + |b|)
    assert np.all(np.abs(A.astype(np.float64) - expected) <= 2 * bound)


def delta_error(dA, A, activation):
    """A bound on |δ − δ_exact| for δ = dA ⊙ σ'(A) evaluated in float32 (by the native or the reference,
    in any order of its few operations), δ_exact its value in exact arithmetic from the same float32 dA, A.
    sigmoid: dA·A·(1−A), each of 1−A, the two products rounding once (1−A exact for A ≥ ½): ≤ 4u·|δ|.
    tanh: dA·(1−A²): A² rounds (error u·A², which 1−A² does not shrink near |A| = 1), then 1−A² and the
    product: ≤ 4u·|dA|·(A² + |1−A²|)."""
    dA, A = dA.astype(np.float64), A.astype(np.float64)
    if activation == "sigmoid":
        return 4 * U * np.abs(dA * A * (1 - A))
    if activation == "tanh":
        return 4 * U * np.abs(dA) * (A * A + np.abs(1 - A * A))
    return np.zeros_like(dA)  # identity, relu: δ is dA or 0, no arithmetic


def rounding_spread(delta, error):
    """For each float32 δ known to within ±error: how far apart the bfloat16 roundings of two values in that
    interval can be (zero where the whole interval rounds to one bfloat16 value). Rounding is monotone, so
    it is the distance between the roundings of the interval's ends (widened by one float32 rounding)."""
    d = delta.astype(np.float64)
    lo = (d - error - U * np.abs(d)).astype(F32)
    hi = (d + error + U * np.abs(d)).astype(F32)
    return np.abs(rounded64(hi) - rounded64(lo))


@pytest.mark.parametrize("activation", ACTIVATIONS[:4])
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 33, 9), (33, 1, 65), (9, 31, 17), (64, 65, 10), (97, 33, 65),
                                   (256, 300, 257)], ids=lambda s: "x".join(map(str, s)))
def test_dense_backward(shape, activation):
    """δ = dA ⊙ σ'(A) is computed in float32 before it is rounded to bfloat16. For identity and relu it is dA or
    0, the reference's operand exactly, and the products meet the γ bound of check_product. For sigmoid and
    tanh the native and the reference may evaluate δ a few float32 roundings apart (delta_error), and where
    that interval straddles a bfloat16 rounding midpoint the rounded operand can differ by one bfloat16 spacing
    (rounding_spread): that term, times the other operand, is added to the bound."""
    batch, n_in, n_out = shape
    rng = np.random.default_rng([batch, n_in, n_out, 4])
    X, W = randn(rng, (batch, n_in)), randn(rng, (n_out, n_in), 1 / np.sqrt(n_in))
    A = R.dense_forward(X, W, randn(rng, (n_out,)), activation, compute="bfloat16")
    dA = randn(rng, (batch, n_out))
    dX, dW, db = K.dense_backward(dA, X, W, A, activation, compute="bfloat16")
    rdX, rdW, rdb = R.dense_backward(dA, X, W, A, activation, compute="bfloat16")
    delta = R.activation_backward(dA, A, activation)  # float32, as the native computes it
    error = delta_error(dA, A, activation)
    if activation in ("identity", "relu"):
        check_product(dX, delta, W, rdX, name="dX")
        check_product(dW, delta.T, X, rdW, name="dW")
    else:
        # the reference's δ is itself within error of exact, so the native's is within 2·error of it
        spread = rounding_spread(delta, 2 * error)
        for got, left, right, fl, name in ((dX, delta, W, spread, "dX"), (dW, delta.T, X, spread.T, "dW")):
            Lr, Rr = rounded64(left), rounded64(right)
            k = left.shape[1]
            bound = BOUND_FACTOR * gamma(k + 1) * (np.abs(Lr) @ np.abs(Rr)) + fl @ np.abs(Rr)
            err = np.abs(got.astype(np.float64) - Lr @ Rr)
            assert np.all(err <= bound), f"{name}: max excess {np.max(err - bound):.3e}"
        # the flips are rare: most of the products match the reference to the γ bound alone
        assert np.count_nonzero(spread) <= max(2, spread.size // 20)
    # db = Σ_rows δ in float32 (no bfloat16 rounding there): the sum's γ bound and each δ's 2·error
    d64 = np.abs(delta.astype(np.float64))
    bound = BOUND_FACTOR * gamma(batch) * d64.sum(axis=0) + 2 * error.sum(axis=0)
    assert np.all(np.abs(db.astype(np.float64) - delta.astype(np.float64).sum(axis=0)) <= bound)
    assert np.all(np.abs(db - rdb) <= bound + U * np.abs(rdb))
    # need_dx=False: no dX, the same dW and db
    none, dW2, db2 = K.dense_backward(dA, X, W, A, activation, need_dx=False, compute="bfloat16")
    assert none is None and np.array_equal(dW2, dW) and np.array_equal(db2, db)


def test_compute_needs_float32_operands():
    A = np.ones((3, 4))
    with pytest.raises(ValueError, match="dtype"):
        K.matmul(A, A.T, compute="bfloat16")  # float64 operands
    with pytest.raises(ValueError, match="dtype"):
        K.dense_forward(A, A, np.ones(3), "relu", compute="bfloat16")
    with pytest.raises(ValueError, match="compute"):
        K.matmul(A.astype(F32), A.T.astype(F32), compute="float16")


def test_compute_float32_is_the_float32_product():
    # compute="float32" (or None) on float32 operands is the float32 path: no rounding
    rng = np.random.default_rng(5)
    A, B = randn(rng, (33, 65)), randn(rng, (65, 17))
    assert np.array_equal(K.matmul(A, B, compute="float32"), K.matmul(A, B))
    assert not np.array_equal(K.matmul(A, B, compute="bfloat16"), K.matmul(A, B))


# ---------------------------------------------------------------- threads

def test_same_bits_on_one_and_two_threads():
    rng = np.random.default_rng(6)
    A, B = randn(rng, (256, 512)), randn(rng, (512, 512))
    delta, X = randn(rng, (512, 256)), randn(rng, (512, 300))
    before = _core.get_num_threads()
    try:
        results = {}
        for threads in (1, 2):
            _core.set_num_threads(threads)
            assert _core.get_num_threads() == threads
            results[threads] = (K.matmul(A, B, compute="bfloat16"), K.matmul(A, B, trans_b=True, compute="bfloat16"),
                                K.weight_gradient(delta, X, compute="bfloat16"))
    finally:
        _core.set_num_threads(before)
    for one, two in zip(results[1], results[2]):
        assert np.array_equal(one, two)
    check_product(results[2][0], A, B, R.matmul(A, B, compute="bfloat16"))


# ---------------------------------------------------------------- each instruction-set path

EXPECTED_KERNEL = {
    "avx512_bf16": "avx512_bf16_8x32",
    "avx512": "avx512_bf16emulated_8x32",
    "avx2": "avx2_bf16emulated_4x16",
    "generic": "generic_bf16_4x8",
    "amx_model": "amx_model_bf16_32x32",
    "amx_model_bf16_packers": "amx_model_bf16_32x32_vcvt",  # the AMX unit's packers, on the model's tiles
}
# The kernels with bfloat16 instructions: no warning that the products are emulated.
NATIVE_BF16 = ("amx_bf16_32x32", "avx512_bf16_8x32")

ISA_PROGRAM = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    import bpfast
    from bpfast import kernels as K, reference as R
    U = 2.0 ** -24
    def gamma(k):
        return k * U / (1 - k * U)
    shapes = json.loads(sys.argv[1])
    failures = []
    rng = np.random.default_rng(7)
    for m, k, n in shapes:
        for ta in (False, True):
            for tb in (False, True):
                A = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
                B = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
                C = K.matmul(A, B, ta, tb, compute="bfloat16").astype(np.float64)
                Ar = R.round_to_bfloat16(A.T if ta else A).astype(np.float64)
                Br = R.round_to_bfloat16(B.T if tb else B).astype(np.float64)
                bound = 2 * gamma(k + 1) * (np.abs(Ar) @ np.abs(Br))
                err = np.abs(C - Ar @ Br)
                if not np.all(err <= bound):
                    failures.append([m, k, n, ta, tb, float(np.max(err - bound))])
                ref = R.matmul(A, B, ta, tb, compute="bfloat16").astype(np.float64)
                if not np.all(np.abs(C - ref) <= bound + U * np.abs(ref)):
                    failures.append([m, k, n, ta, tb, "reference"])
    X = rng.standard_normal((9, 33)).astype(np.float32)
    W = rng.standard_normal((17, 33)).astype(np.float32)
    b = rng.standard_normal(17).astype(np.float32)
    Z = K.dense_forward(X, W, b, "identity", compute="bfloat16").astype(np.float64)
    Xr, Wr = R.round_to_bfloat16(X).astype(np.float64), R.round_to_bfloat16(W).astype(np.float64)
    if not np.all(np.abs(Z - (Xr @ Wr.T + b)) <= 2 * gamma(34) * (np.abs(Xr) @ np.abs(Wr).T + np.abs(b))):
        failures.append("dense_forward")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = bpfast.Network([4, 3, 2], compute="bfloat16", seed=0)
    warned = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    print(json.dumps({"isa": K.isa(), "kernel": bpfast.show_config(mode="dicts")["gemm_kernel"]["bfloat16"],
                      "failures": failures, "warned": warned}))
""")

# Small products (K odd, K = 33, M = 33, N = 65) for every path; amx_model is a scalar model of
# the tile instructions, so its products stay small.
ISA_SHAPES = [(1, 1, 1), (5, 7, 3), (33, 33, 65), (9, 31, 17), (17, 64, 40)]
ISA_SHAPES_WIDE = ISA_SHAPES + [(64, 257, 10), (100, 129, 97)]


def available_isas():
    return {name for name, present in _core.build_info()["isas"] if present}


@pytest.mark.slow
@pytest.mark.parametrize("isa", list(EXPECTED_KERNEL))
def test_each_isa_path(isa):
    if isa not in available_isas():
        pytest.skip(f"this CPU has no {isa} (bpfast._core.build_info()['isas'])")
    shapes = ISA_SHAPES if isa.startswith("amx_model") else ISA_SHAPES_WIDE
    env = {**os.environ, "BPFAST_ISA": isa}
    done = subprocess.run([sys.executable, "-c", ISA_PROGRAM, json.dumps(shapes)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["isa"] == isa
    assert result["kernel"] == EXPECTED_KERNEL[isa]
    assert result["failures"] == []
    # the one-time RuntimeWarning: exactly when the products have no bfloat16 instructions
    if result["kernel"] in NATIVE_BF16:
        assert result["warned"] == []
    else:
        assert len(result["warned"]) == 1 and result["kernel"] in result["warned"][0]
