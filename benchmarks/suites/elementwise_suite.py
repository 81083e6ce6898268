"""The non-GEMM kernels: activations (forward and backward), softmax and losses.

bpfast.kernels against its numpy twin bpfast.reference, function for
function: activation_forward(Z, name), activation_backward(dA, A, name)
(softmax's backward is the Jacobian-vector product), and the losses
softmax_cross_entropy(Z, T) (from the logits) and squared_error(Y, T), each
returning (value, gradient). bpfast writes into buffers made once before
timing (out=, grad=); the reference allocates its results on every call.
These kernels are memory-bound, so no GFLOP/s is given.

Check: max |difference| / max(1, max |bpfast|) of the output (and of the
loss value and its gradient) is within 1e-5 in float32 and 1e-12 in float64,
the tolerances of the unit tests.
"""

import numpy as np

from bpfast import _precision, kernels, reference

from benchmarks.suites.cases import elementwise_cases
from benchmarks.harness.competitor import Competitor, Verdict, relative_error

NAME = "kernels"
TABLE = "elementwise"
TITLE = "Activation, softmax and loss kernels"
NOTE = ("One call is one kernel on the whole array: forward A = act(Z), backward dZ from (dA, A), or a loss "
        "(value and gradient) against dense targets. bpfast writes into buffers allocated once (out=, grad=); "
        "the numpy reference allocates on every call.")
EXPLANATION = (
    "One call is one element-wise kernel of `bpfast.kernels` on a whole array, against its numpy twin in "
    "`bpfast.reference`: `activation_forward(Z, name)` for relu, sigmoid, tanh and (row-wise) softmax; "
    "`activation_backward(dA, A, name)`, which for softmax is the Jacobian-vector product; and the losses "
    "`softmax_cross_entropy(Z, T)` (from the logits) and `squared_error(Y, T)`, each returning the value and "
    "the gradient. A case named `(256, 1024)` works on a 256×1024 array. bpfast writes into buffers made once "
    "before timing; the reference makes new arrays on every call. These kernels move memory more than they "
    "compute, so there is no GFLOP/s. Check: the largest difference from bpfast's output, divided by "
    "max(1, largest |value|), is at most 1e-5 in float32 (1e-12 in float64).")
TOLERANCE = {p.name: p.rtol for p in _precision.PRECISIONS}  # the unit tests' kernel tolerance

cases = elementwise_cases


def notes():
    return []


def _operands(case, dtype, seed):
    rng = np.random.default_rng([seed, 3, case.rows, case.cols])
    shape = (case.rows, case.cols)
    Z = rng.standard_normal(shape).astype(dtype)
    if case.kind == "forward":
        return (Z,)
    if case.kind == "backward":
        A = reference.activation_forward(Z, case.name)
        return rng.standard_normal(shape).astype(dtype), A
    if case.name == "softmax_cross_entropy":
        T = np.zeros(shape, dtype=dtype)
        T[np.arange(case.rows), rng.integers(0, case.cols, size=case.rows)] = 1  # one-hot labels
        return Z, T
    return Z, rng.standard_normal(shape).astype(dtype)


def _functions(case, dtype, seed):
    """(bpfast callable, reference callable)."""
    operands = _operands(case, dtype, seed)
    out = np.empty((case.rows, case.cols), dtype=dtype)
    if case.kind == "forward":
        (Z,) = operands
        return (lambda: kernels.activation_forward(Z, case.name, out=out),
                lambda: reference.activation_forward(Z, case.name))
    if case.kind == "backward":
        dA, A = operands
        return (lambda: kernels.activation_backward(dA, A, case.name, out=out),
                lambda: reference.activation_backward(dA, A, case.name))
    if case.kind == "loss":
        Y, T = operands
        native, numpy_twin = getattr(kernels, case.name), getattr(reference, case.name)
        return (lambda: native(Y, T, grad=out)), (lambda: numpy_twin(Y, T))
    raise ValueError(f"unknown kernel kind {case.kind!r}")


def _snapshot(result):
    """A copy that later calls cannot overwrite (bpfast reuses its out buffers)."""
    if isinstance(result, tuple):
        return tuple(_snapshot(r) for r in result)
    if isinstance(result, np.ndarray):
        return result.copy()
    return float(result)


def competitors(case, dtype, seed, threads):
    bpfast_fn, reference_fn = _functions(case, dtype, seed)
    return [Competitor("bpfast", lambda: _snapshot(bpfast_fn()), lambda: bpfast_fn),
            Competitor("reference", lambda: _snapshot(reference_fn()), lambda: reference_fn)]


def compare(case, dtype, base, value):
    tol = TOLERANCE[dtype]
    if case.kind == "loss":
        (v0, g0), (v1, g1) = base, value
        value_err, grad_err = relative_error(v1, v0), relative_error(g1, g0)
        err = max(value_err, grad_err)
        detail = f"loss {v1:.6g} vs {v0:.6g}, value err {value_err:.1e}, gradient err {grad_err:.1e} (tol {tol:.0e})"
    else:
        err = relative_error(value, base)
        detail = f"max err {err:.1e} (tol {tol:.0e})"
    ok = bool(np.isfinite(err) and err <= tol)
    return Verdict(ok, detail, err)
