"""Differential fuzz: every native kernel of bpfast.kernels against its numpy twin in bpfast.reference.

Hypothesis draws the shapes (dimensions 0, 1, tile and blocking edges, odd
sizes up to 300), both dtypes (and, for the GEMM-shaped kernels, mixed
float32/float64 inputs), the memory layout of every input (C order, F order,
strided with NaN in the gaps, negative strides, a view at an odd byte offset of
a uint8 buffer), whether an ``out`` buffer (pre-filled with NaN, so that a
kernel that read it instead of overwriting it is caught) is passed, the
hyper-parameters of the updates, and a "regime" for the values of each array:
standard normal, one scale anywhere from subnormal to the limit below,
magnitudes spread over that whole range inside one array, special values
(±0, ±1, eps, the smallest subnormal, the smallest normal, ±limit), one
constant (ties everywhere), mostly zeros, or small integers. The values come
from a numpy generator seeded by a drawn integer, so that arrays of 90,000
values cost one draw; a failure prints the draws that reproduce it.

The oracle is the reference run on the same values in C order. Tolerance:
conftest's per-dtype rtol (1e-12 for float64, 1e-5 for float32), on the
maximum absolute error divided by a scale that is at least max(1, max|expected|)
and, where a result is a sum that can cancel, the magnitude of the terms
either side rounds (for a GEMM, max(|op(A)|·|op(B)|); for a loss value, the sum
of the absolute terms; for an update, |θ| plus the size of the step), since
neither side can be closer than that to the exact result. For a result
summed from n terms the rtol is raised to n·eps when that is larger (γ_n, the
worst-case bound of a dot product of length n, which exceeds 1e-5 in float32
for n > 84). After an activation, the pre-activation scale is multiplied by
the activation's Lipschitz constant (1/4 for sigmoid, 1 for tanh, relu and
identity, 2 for softmax), so that an ill-conditioned output (logits of 1e17
whose difference decides a softmax) is held only to what its input decides.

Policy for values near overflow, in three classes:

1. Finite (the differential check above): every input is finite and bounded
   by a limit per kernel and dtype chosen so that the reference's result and
   intermediates stay finite: a product of two operands summed over n terms
   has operands below sqrt(max/(16·(n+1))); an elementwise formula of degree d
   has operands below (max/16)^(1/d); probabilities for the clamped losses
   may be anything in [-limit, limit] (the clamp is part of the contract).
   Both results must then be finite and agree to the tolerance.
2. Overflow: inputs whose exact results overflow by a wide margin. Every
   entry is either moderate (|x| <= 1) or huge (|x| >= 4·sqrt(max)), so a
   product overflows exactly when both its factors are huge, and a sum with
   an overflowing product is non-finite whatever the summation order or FMA
   contraction. Native and reference must agree, entry by entry, on which
   results are finite. NaN and ±Inf are not told apart, as they legitimately
   differ: fma(a, b, +Inf) with a·b = −1e60 is +Inf where Inf + round(a·b) is
   NaN, and the reference forms 0·Inf where the native SGD skips a zero weight
   decay. So dense_forward's pre-activation is compared with the reference and
   its fused activation with the kernel's own activation of that
   pre-activation (sigmoid maps +Inf to 1 and NaN to NaN).
3. Non-finite inputs: NaN or ±Inf at random positions. The kernels promise
   IEEE propagation (the network's FloatingPointError guard relies on it): a
   GEMM output is non-finite exactly when row i of op(A) or column j of op(B)
   holds a non-finite value (checked against that dependency mask), and every
   kernel agrees with the reference, entry by entry, on which results are
   finite (a clamped probability of −Inf is finite on both sides; relu of NaN
   is NaN; relu's derivative at a NaN output is 0 on both sides).

Zero-size dimensions follow the documented behaviour: a GEMM with an empty
inner dimension gives zeros (or leaves an accumulated ``out`` as it was), an
empty outer dimension an empty result; a loss of an empty batch raises
ValueError naming Y. Where numpy's reference raises on an empty reduction
(softmax or softmax cross-entropy of rows with no columns) the kernel returns
the empty result, or 0 for the loss (an empty sum).

``BPFAST_FUZZ_EXAMPLES`` sets the examples per test (default 100) and
``BPFAST_FUZZ_RANDOM=1`` draws afresh on every run (the default is
derandomized, so that CI is reproducible).
"""

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from bpfast import kernels as K
from bpfast import reference as R
from conftest import DTYPES, tolerance

EXAMPLES = int(os.environ.get("BPFAST_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("BPFAST_FUZZ_RANDOM") != "1",
                database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "softmax")
LOSSES = ("squared_error", "log_loss", "binary_cross_entropy", "softmax_cross_entropy", "sigmoid_cross_entropy")
REDUCTIONS = ("mean", "sum")
LIPSCHITZ = {"identity": 1.0, "relu": 1.0, "tanh": 1.0, "sigmoid": 0.25, "softmax": 2.0}
REGIMES = ("normal", "scaled", "wide", "special", "constant", "sparse", "integers")
LAYOUTS = ("C", "F", "strided", "reversed", "misaligned")
# Dimensions: 0, 1, micro-kernel tiles (4x8, 6x8, 6x16 and their AVX-512 widths) and the GEMM's
# blocking (MC = 72; KC = 256, one L1 of B panel) with their neighbours, or anything up to 300.
# (.ci/run also runs this file under BPFAST_GEMM_BLOCKS=8,48,64, where these span many blocks.)
EDGE_DIMS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 71, 72, 73,
             255, 256, 257, 300)
MAX_DIM = 300


def dim(data, label, low=0, high=MAX_DIM):
    edges = [d for d in EDGE_DIMS if low <= d <= high]
    return data.draw(st.one_of(st.sampled_from(edges), st.integers(low, min(high, 40)), st.integers(low, high)),
                     label=label)


def big(dtype):
    return float(np.finfo(dtype).max)


# ---------------------------------------------------------------- values

def values(data, shape, dtype, limit, label, regimes=REGIMES, nonnegative=False):
    """A finite array of dtype, |x| <= limit, in a drawn regime (see the module docstring)."""
    regime = data.draw(st.sampled_from(regimes), label=f"{label}: regime")
    seed = data.draw(st.integers(0, 2**32 - 1), label=f"{label}: seed")
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    limit = min(float(limit), float(info.max))
    lo, hi = math.log10(float(info.smallest_subnormal)), math.log10(limit)
    with np.errstate(all="ignore"):
        if regime == "normal":
            x = rng.standard_normal(shape)
        elif regime == "scaled":
            x = rng.standard_normal(shape) * 10.0 ** rng.uniform(lo, hi - 1)
        elif regime == "wide":
            x = rng.standard_normal(shape) * 10.0 ** rng.uniform(lo, hi - 1, shape)
        elif regime == "special":
            table = np.array([0.0, -0.0, 1.0, -1.0, 0.5, float(info.eps), float(info.smallest_subnormal),
                              float(info.tiny), -float(info.tiny), limit, -limit, 1 - float(info.epsneg)])
            x = rng.choice(table, size=shape)
        elif regime == "constant":
            x = np.full(shape, rng.standard_normal() * 10.0 ** rng.uniform(lo, hi - 1))
        elif regime == "sparse":
            x = rng.standard_normal(shape) * (rng.random(shape) < 0.05)
        else:
            x = rng.integers(-3, 4, size=shape).astype(np.float64)
        x = np.clip(x, -limit, limit).astype(dtype)
    if nonnegative:
        x = np.abs(x)
    note(f"{label}: {regime}, shape {shape}, max|x| {np.max(np.abs(x), initial=0.0):.3g}")
    return x


def probability_rows(data, shape, dtype, label):
    """Rows in [0, 1] summing to 1 (softmax of drawn logits), exact 0s and 1s included."""
    Z = values(data, shape, np.float64, 1e3, label)
    with np.errstate(all="ignore"):
        P = R.softmax(Z) if shape[1] else Z
    return P.astype(dtype)


def overflowing(data, shape, dtype, label, signs=True):
    """Entries either moderate (|x| <= 1) or huge (|x| >= 4·sqrt(max)): see policy 2."""
    seed = data.draw(st.integers(0, 2**32 - 1), label=f"{label}: seed")
    share = data.draw(st.sampled_from([0.05, 0.3, 1.0]), label=f"{label}: share of huge entries")
    rng = np.random.default_rng(seed)
    huge = 4 * math.sqrt(big(dtype)) * 10.0 ** rng.uniform(0, 2, shape)
    x = np.where(rng.random(shape) < share, np.minimum(huge, big(dtype) / 2), rng.uniform(-1, 1, shape))
    if signs:
        x = x * rng.choice([-1.0, 1.0], shape)
    return x.astype(dtype)


def non_finite(data, array, label):
    """A copy of array with NaN, +Inf or -Inf at a few drawn positions (policy 3)."""
    x = array.copy()
    if x.size == 0:
        return x
    seed = data.draw(st.integers(0, 2**32 - 1), label=f"{label}: seed")
    rng = np.random.default_rng(seed)
    count = data.draw(st.sampled_from([0, 1, 2, 5]), label=f"{label}: non-finite count")
    flat = x.reshape(-1)
    for position in rng.integers(0, x.size, count):
        flat[position] = rng.choice([np.nan, np.inf, -np.inf])
    return x


# ---------------------------------------------------------------- layouts

def layout(data, array, label, layouts=LAYOUTS):
    """A view of the same values in a drawn memory layout."""
    kind = data.draw(st.sampled_from(layouts), label=f"{label}: layout")
    return to_layout(array, kind)


def to_layout(array, kind):
    ndim, dtype = array.ndim, array.dtype
    if kind == "C":
        view = array.copy()
    elif kind == "F":
        view = np.asfortranarray(array)
    elif kind == "strided":
        wide = np.full(tuple(2 * s + 1 for s in array.shape), np.nan, dtype)
        view = wide[(slice(1, None, 2),) * ndim]
        view[...] = array
    elif kind == "reversed":  # negative strides (and gaps) over a buffer filled with NaN
        wide = np.full(tuple(2 * s for s in array.shape), np.nan, dtype)
        view = wide[(slice(None, None, -2),) * ndim]
        view[...] = array
    elif kind == "misaligned":
        buffer = np.zeros(array.nbytes + 1, np.uint8)
        view = buffer[1:].view(dtype).reshape(array.shape)
        view[...] = array
        assert array.size == 0 or not view.flags.aligned
    else:
        raise AssertionError(kind)
    assert view.shape == array.shape and view.dtype == dtype
    return view


def out_buffer(data, shape, dtype, label="out"):
    """Either None (the kernel allocates) or a C-contiguous buffer full of NaN that must be overwritten."""
    if data.draw(st.booleans(), label=f"{label} given"):
        return np.full(shape, np.nan, dtype)
    return None


def draw_dtype(data):
    return np.dtype(data.draw(st.sampled_from(DTYPES), label="dtype"))


def operand_dtypes(data, dtype):
    """(dtype of each of two inputs, working dtype): mixed float32/float64 inputs work in float64."""
    if data.draw(st.integers(0, 9), label="mixed dtypes") == 0:
        first = data.draw(st.booleans(), label="which is float32")
        return (np.dtype(np.float32), np.dtype(np.float64)) if first else \
            (np.dtype(np.float64), np.dtype(np.float32)), np.dtype(np.float64)
    return (dtype, dtype), dtype


# ---------------------------------------------------------------- oracle comparisons

def f64(x):
    return np.asarray(x, dtype=np.float64)


def rtol_for(dtype, terms=1):
    """conftest's tolerance, raised to γ_n = n·eps for a sum of n terms when that is larger."""
    return max(tolerance(dtype), terms * float(np.finfo(dtype).eps))


def check(got, expected, dtype, scale=0.0, terms=1, what="result", same_dtype=True):
    """got matches the reference's expected: shape, dtype, finite, and within tolerance of scale."""
    got_a, exp_a = np.asarray(got), np.asarray(expected)
    assert got_a.shape == exp_a.shape, f"{what}: shape {got_a.shape} != {exp_a.shape}"
    if same_dtype and isinstance(got, np.ndarray):
        assert got.dtype == dtype, f"{what}: dtype {got.dtype} != {dtype}"
    exp64, got64 = f64(exp_a), f64(got_a)
    assert np.all(np.isfinite(exp64)), f"{what}: the reference is not finite (the generator broke its policy)"
    assert np.all(np.isfinite(got64)), f"{what}: not finite at {np.argwhere(~np.isfinite(got64))[:5].tolist()}"
    if exp64.size == 0:
        return
    scale = max(1.0, float(np.max(np.abs(exp64))), float(scale))
    err = float(np.max(np.abs(got64 - exp64))) / scale
    rtol = rtol_for(dtype, terms)
    where = np.unravel_index(int(np.argmax(np.abs(got64 - exp64))), exp64.shape)
    assert err <= rtol, (f"{what}: relative error {err:.3e} > {rtol:.1e} (scale {scale:.3g}) at {where}: "
                         f"got {got64[where]!r}, expected {exp64[where]!r}")


def same_finiteness(got, expected, what="result"):
    """Entry by entry, got and expected agree on which values are finite (policies 2 and 3)."""
    got_mask, exp_mask = np.isfinite(f64(got)), np.isfinite(f64(expected))
    assert got_mask.shape == exp_mask.shape, what
    differ = np.argwhere(got_mask != exp_mask)
    assert differ.size == 0, (f"{what}: finite in one and not the other at {differ[:5].tolist()}: "
                              f"native {f64(got)[tuple(differ[0])]!r}, reference {f64(expected)[tuple(differ[0])]!r}")


def reference(fn, *args, **kwargs):
    """The reference's result, or None where numpy refuses an empty reduction (see the docstring)."""
    with np.errstate(all="ignore"):
        try:
            return fn(*args, **kwargs)
        except ValueError as error:
            if "zero-size array" not in str(error):
                raise
            return None


def product_scale(A, B):
    """max(|A|·|B|) in float64: the magnitude a GEMM's rounding is relative to."""
    if A.size == 0 or B.size == 0:
        return 0.0
    with np.errstate(over="ignore"):
        return float(np.max(np.abs(f64(A)) @ np.abs(f64(B)), initial=0.0))


def gemm_limit(dtype, terms):
    return math.sqrt(big(dtype) / (16.0 * (terms + 1)))


def op(A, trans):
    return A.T if trans else A


def dependency_mask(A, B):
    """Which entries of A·B must be non-finite: row i of A or column j of B holds NaN or ±Inf."""
    rows = ~np.all(np.isfinite(A), axis=1) if A.shape[1] else np.zeros(A.shape[0], bool)
    cols = ~np.all(np.isfinite(B), axis=0) if B.shape[0] else np.zeros(B.shape[1], bool)
    return rows[:, None] | cols[None, :]


# ---------------------------------------------------------------- GEMM shapes

@FUZZ
@given(data=st.data())
def test_matmul(data):
    dtype = draw_dtype(data)
    (da, db), work = operand_dtypes(data, dtype)
    M, Kd, N = dim(data, "M"), dim(data, "K"), dim(data, "N")
    ta, tb = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
    limit = gemm_limit(np.float32 if np.float32 in (da, db) else work, Kd)
    A = values(data, (Kd, M) if ta else (M, Kd), da, limit, "A")
    B = values(data, (N, Kd) if tb else (Kd, N), db, limit, "B")
    out = out_buffer(data, (M, N), work)
    got = K.matmul(layout(data, A, "A"), layout(data, B, "B"), ta, tb, out=out)
    assert out is None or got is out
    expected = reference(R.matmul, A, B, ta, tb)
    check(got, expected, work, product_scale(op(A, ta), op(B, tb)), terms=Kd)


@FUZZ
@given(data=st.data())
def test_weight_gradient(data):
    dtype = draw_dtype(data)
    (dd, dx), work = operand_dtypes(data, dtype)
    batch, n_out, n_in = dim(data, "batch"), dim(data, "n_out"), dim(data, "n_in")
    limit = gemm_limit(np.float32 if np.float32 in (dd, dx) else work, batch + 1)
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
def test_input_gradient(data):
    dtype = draw_dtype(data)
    (dd, dw), work = operand_dtypes(data, dtype)
    batch, n_out, n_in = dim(data, "batch"), dim(data, "n_out"), dim(data, "n_in")
    limit = gemm_limit(np.float32 if np.float32 in (dd, dw) else work, n_out)
    delta = values(data, (batch, n_out), dd, limit, "delta")
    W = values(data, (n_out, n_in), dw, limit, "W")
    out = out_buffer(data, (batch, n_in), work)
    got = K.input_gradient(layout(data, delta, "delta"), layout(data, W, "W"), out=out)
    assert out is None or got is out
    check(got, reference(R.input_gradient, delta, W), work, product_scale(delta, W), terms=n_out)


# ---------------------------------------------------------------- activations

def activation_outputs(data, name, shape, dtype, label):
    """A as the backward pass sees it: the activation of drawn Z (mostly), or arbitrary values."""
    if data.draw(st.integers(0, 3), label=f"{label}: arbitrary") == 0:
        return values(data, shape, dtype, 1e3 if name in ("sigmoid", "tanh", "softmax") else big(dtype) / 16,
                      label)
    Z = values(data, shape, dtype, big(dtype) / 4, label)
    with np.errstate(all="ignore"):
        A = R.activation_forward(Z, name) if (name != "softmax" or shape[1]) else Z
    return A.astype(dtype)


def backward_bound(name, dA, A):
    """|δ| bound per entry, in float64, for δ = dA ⊙ σ'(A) (softmax: its Jacobian-vector product)."""
    dA, A = np.abs(f64(dA)), np.abs(f64(A))
    with np.errstate(over="ignore"):
        if name == "sigmoid":
            return dA * A * (1 + A)
        if name == "tanh":
            return dA * (1 + A * A)
        if name == "softmax":
            return A * (dA + np.sum(dA * A, axis=1, keepdims=True))
        return dA


@FUZZ
@given(data=st.data())
def test_activation_forward(data):
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
def test_activation_backward(data):
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
def test_softmax(data):
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
def test_softmax_backward(data):
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
def test_dense_forward(data):
    dtype = draw_dtype(data)
    (dx, dw), work = operand_dtypes(data, dtype)
    name = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    batch, n_in, n_out = dim(data, "batch"), dim(data, "n_in"), dim(data, "n_out")
    limit = gemm_limit(np.float32 if np.float32 in (dx, dw) else work, n_in + 1)
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
def test_dense_backward(data):
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


# ---------------------------------------------------------------- losses

def loss_inputs(data, name, shape, dtype):
    """(Y or Z, T) for the loss, inside the finite policy: see the module docstring."""
    size = shape[0] * shape[1] + 1
    t_kind = data.draw(st.sampled_from(["one_hot", "binary", "probabilities", "any"]), label="T kind")
    if name in ("log_loss", "binary_cross_entropy"):
        t_limit = big(dtype) * float(np.finfo(dtype).eps) / 16
    elif name == "squared_error":
        t_limit = min(big(dtype) / 8, math.sqrt(1e307 / size))
    else:
        t_limit = 1e6
    if t_kind == "one_hot" and shape[1]:
        T = np.zeros(shape, dtype)
        T[np.arange(shape[0]), data.draw(st.integers(0, shape[1] - 1), label="hot column")] = 1
    elif t_kind == "binary":
        T = (values(data, shape, np.float64, 1, "T", regimes=("normal",)) > 0).astype(dtype)
    elif t_kind == "probabilities" and shape[1]:
        T = probability_rows(data, shape, dtype, "T")
    else:
        T = values(data, shape, dtype, t_limit, "T")
    if name == "squared_error":
        Y = values(data, shape, dtype, t_limit, "Y")
    elif name in ("log_loss", "binary_cross_entropy"):
        if data.draw(st.booleans(), label="Y probabilities"):
            Y = probability_rows(data, shape, dtype, "Y") if shape[1] else np.zeros(shape, dtype)
        else:  # anything: the clamp to [eps, 1 − eps] is part of the contract
            Y = values(data, shape, dtype, big(dtype) / 4, "Y")
    else:  # logits; t·(lse − z) and z·t stay finite in double
        Y = values(data, shape, dtype, min(big(dtype) / 4, 1e300 / (16.0 * size * max(1.0, t_limit))), "Z")
    return Y, T


def loss_value_scale(name, Y, T, reduction):
    """s·Σ|terms| in float64: what the value's rounding is relative to, either side."""
    s = 1.0 / Y.shape[0] if reduction == "mean" else 1.0
    y, t = f64(Y), f64(T)
    eps = float(np.finfo(Y.dtype).eps)
    with np.errstate(all="ignore"):
        if name == "squared_error":
            terms = 0.5 * (y - t) ** 2
        elif name == "log_loss":
            terms = np.abs(t * np.log(np.maximum(y, eps)))
        elif name == "binary_cross_entropy":
            yc = np.clip(y, eps, 1 - eps)
            terms = np.abs(t * np.log(yc)) + np.abs((1 - t) * np.log(1 - yc))
        elif name == "softmax_cross_entropy":
            m = y.max(axis=1, keepdims=True)
            lse = m + np.log(np.exp(y - m).sum(axis=1, keepdims=True))
            terms = np.abs(t) * (np.abs(y) + np.abs(lse))
        else:
            terms = np.maximum(y, 0) + np.abs(y * t) + np.log1p(np.exp(-np.abs(y)))
    return s * float(np.sum(terms))


@FUZZ
@given(data=st.data())
def test_loss(data):
    dtype = draw_dtype(data)
    name = data.draw(st.sampled_from(LOSSES), label="loss")
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    batch, n = dim(data, "batch"), dim(data, "n")
    Y, T = loss_inputs(data, name, (batch, n), dtype)
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


# ---------------------------------------------------------------- optimizer updates

def in_place(data, array, label):
    """The array as an in-place argument: C-contiguous (mostly), or a refused layout (a tenth of draws)."""
    if data.draw(st.integers(0, 9), label=f"{label}: refused layout") or array.size < 2:
        return array.copy(), None
    kind = data.draw(st.sampled_from(["strided", "reversed", "misaligned"] + (["F"] if array.ndim == 2
                                                                            and min(array.shape) > 1 else [])),
                     label=f"{label}: layout")
    return to_layout(array, kind), kind


def param_shape(data):
    if data.draw(st.booleans(), label="1-D"):
        return (dim(data, "n", high=4000),)
    return (dim(data, "rows"), dim(data, "cols"))


def lr_value(data, label="lr"):
    return data.draw(st.one_of(st.sampled_from([0.0, 1e-3, 0.1, 1.0, 10.0]),
                               st.floats(-10, 10, allow_nan=False, allow_subnormal=False)), label=label)


def refused(call, arrays, label_kinds):
    """With a refused in-place layout the call raises ValueError naming the argument and changes nothing."""
    name, kind = next((n, k) for n, k in label_kinds if k)
    before = [a.copy() for a in arrays]
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()
    for a, b in zip(arrays, before):
        assert np.array_equal(a, b, equal_nan=True)


@FUZZ
@given(data=st.data())
def test_sgd_update(data):
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
def test_sgd_momentum_update(data):
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
def test_adam_update(data):
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
def test_clip_by_global_norm(data):
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
            name = data.draw(st.sampled_from(LOSSES), label="loss")
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
