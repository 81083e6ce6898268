"""The draws and checks of the differential fuzz in test_kernels.py (its test_fuzz_* tests and the
overflow and NaN/Inf tests after them): every native kernel of bpfast.kernels against its numpy
twin in bpfast.reference.

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
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st

from bpfast import reference as R
from conftest import DTYPES, tolerance

EXAMPLES = int(os.environ.get("BPFAST_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("BPFAST_FUZZ_RANDOM") != "1",
                database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# The losses whose inputs draw_loss_inputs draws (test_kernels.LOSSES lists every loss).
FUZZED_LOSSES = ("squared_error", "log_loss", "binary_cross_entropy", "softmax_cross_entropy", "sigmoid_cross_entropy")
LIPSCHITZ = {"identity": 1.0, "relu": 1.0, "tanh": 1.0, "sigmoid": 0.25, "softmax": 2.0}
REGIMES = ("normal", "scaled", "wide", "special", "constant", "sparse", "integers")
LAYOUTS = ("C", "F", "strided", "reversed", "misaligned")
# Dimensions: 0, 1, micro-kernel tiles (4x8, 6x8, 6x16 and their AVX-512 widths) and the GEMM's
# blocking (MC = 72; KC = 256, one L1 of B panel) with their neighbours, or anything up to 300.
# (.ci/run also runs test_kernels.py under BPFAST_GEMM_BLOCKS=8,48,64, where these span many blocks.)
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


def gemm_operands(data, labels):
    """A GEMM-shaped kernel's draws: its two inputs' dtypes, its working dtype and its dimensions (labels)."""
    dtypes, work = operand_dtypes(data, draw_dtype(data))
    return dtypes, work, [dim(data, label) for label in labels]


def operand_limit(dtypes, work, terms):
    """gemm_limit for inputs of these dtypes: float32's if either input is float32."""
    return gemm_limit(np.float32 if np.float32 in dtypes else work, terms)


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


# ---------------------------------------------------------------- losses

def draw_loss_inputs(data, name, shape, dtype):
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
