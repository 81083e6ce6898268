"""The kernel suite: GEMM throughput of bpfast.kernels against numpy's `@`.

Square products A@B, and the three products of a dense layer: the forward
X@W.T (bpfast.kernels.matmul with trans_b=True), the weight gradient d.T@X
(bpfast.kernels.weight_gradient) and the input gradient d@W
(bpfast.kernels.input_gradient). bpfast writes into an output buffer
allocated once before timing (out=), so the kernel alone is measured; numpy's
`@` allocates its result on every call. No transpose is copied on either
side: X@W.T and d.T@X hand numpy transposed views.

Check: the relative Frobenius-norm difference from bpfast's product must be
within a few units of rounding times the inner dimension k.
"""

import numpy as np

from bpfast import kernels

from cases import gemm_cases
from competitor import Competitor, Verdict

NAME = "kernels"
TITLE = "GEMM kernels"
NOTE = ("One call is one matrix product; GFLOP/s counts 2·m·n·k. bpfast writes into a buffer "
        "allocated once (out=); numpy's `@` allocates its result on every call.")
TOLERANCE_ULPS = 8  # tolerance = TOLERANCE_ULPS · eps · k, relative, normwise

TABLE = "gemm"
EXPLANATION = (
    "One call is one matrix product. `bpfast.kernels.matmul`, `weight_gradient` and `input_gradient` are "
    "compared with numpy's `@` (which is what `bpfast.reference` calls) on square matrices (`A@B n=512`) and "
    "on the three products of a dense layer: the forward pass `X@W.T`, the weight gradient `d.T@X` and the "
    "input gradient `d@W`. A case named `b=64 784->1024` is a layer with 784 inputs and 1024 outputs on a "
    "batch of 64. bpfast writes into an output buffer made once before timing; numpy's `@` makes a new "
    "result array on every call, so its times include that allocation. GFLOP/s counts 2·m·n·k. Check: "
    "the relative (Frobenius-norm) difference from bpfast's product is at most 8·eps·k.")

cases = gemm_cases


def notes():
    return []


def _operands(case, dtype, seed):
    """(bpfast callable, numpy callable) for the case, operands drawn from a seeded Generator."""
    rng = np.random.default_rng([seed, case.m, case.n, case.k])

    def draw(*shape):
        return rng.standard_normal(shape).astype(dtype)

    out = np.empty((case.m, case.n), dtype=dtype)
    if case.op == "square":
        A, B = draw(case.m, case.k), draw(case.k, case.n)
        return (lambda: kernels.matmul(A, B, out=out)), (lambda: A @ B)
    if case.op == "forward":
        X, W = draw(case.batch, case.n_in), draw(case.n_out, case.n_in)
        return (lambda: kernels.matmul(X, W, trans_b=True, out=out)), (lambda: X @ W.T)
    if case.op == "weight_grad":
        d, X = draw(case.batch, case.n_out), draw(case.batch, case.n_in)
        return (lambda: kernels.weight_gradient(d, X, out=out)), (lambda: d.T @ X)
    if case.op == "input_grad":
        d, W = draw(case.batch, case.n_out), draw(case.n_out, case.n_in)
        return (lambda: kernels.input_gradient(d, W, out=out)), (lambda: d @ W)
    raise ValueError(f"unknown GEMM op {case.op!r}")


def _competitor(name, fn):
    # The result is copied: bpfast's out buffer is overwritten by the timed calls.
    return Competitor(name, lambda: np.array(fn(), copy=True), lambda: fn)


def competitors(case, dtype, seed, threads):
    bpfast_fn, numpy_fn = _operands(case, dtype, seed)
    return [_competitor("bpfast", bpfast_fn), _competitor("numpy", numpy_fn)]


def compare(case, dtype, base, value):
    tol = TOLERANCE_ULPS * np.finfo(dtype).eps * case.k
    if value.shape != base.shape:
        return Verdict(False, f"shape {value.shape} != {base.shape}", float("inf"))
    base64, value64 = base.astype(np.float64), value.astype(np.float64)
    err = float(np.linalg.norm(value64 - base64) / max(np.linalg.norm(base64), 1e-300))
    ok = bool(np.isfinite(err) and err <= tol)
    return Verdict(ok, f"rel err {err:.1e} (tol {tol:.1e})", err)
