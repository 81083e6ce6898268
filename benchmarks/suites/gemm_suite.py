"""The kernel suite: GEMM throughput of bpfast.kernels against numpy's `@` and PyTorch's `@`.

Square products A@B, and the three products of a dense layer: the forward
X@W.T (bpfast.kernels.matmul with trans_b=True), the weight gradient d.T@X
(bpfast.kernels.weight_gradient) and the input gradient d@W
(bpfast.kernels.input_gradient). bpfast writes into an output buffer
allocated once before timing (out=), so the kernel alone is measured; numpy's
and PyTorch's `@` allocate their result on every call. No transpose is copied
on any side: X@W.T and d.T@X hand numpy and PyTorch transposed views (PyTorch
gets tensors sharing numpy's memory, and torch.set_num_threads(threads): as
many threads as bpfast). PyTorch joins when it can be imported; its `@` runs
MKL or oneDNN, whichever it picks for the shape.

Where the CPU has AVX-512 but numpy's OpenBLAS runs an AVX2-class core type,
numpy is timed a second time, in a child process whose OpenBLAS was loaded
with OPENBLAS_CORETYPE=SkylakeX (blas_kernel.py, numpy_child.py): the
competitor "numpy SkylakeX". Its products are checked like the others; the
child times its calls itself, in turn with the other competitors, and the
wait before each timed repeat watches its threads too.

Check: the relative Frobenius-norm difference from bpfast's product must be
within a few units of rounding times the inner dimension k.

With --dtype mixed_bfloat16 (benchmarks/suites/mixed.py) bpfast runs its
products with compute="bfloat16" on float32 operands, and the case also
times "bpfast float32" (the same call computing in float32), numpy and
PyTorch in float32, "torch autocast" (`@` on the float32 tensors under
torch.autocast("cpu", dtype=torch.bfloat16): the conversion to bfloat16 is
timed, as bpfast's rounding is; the result is bfloat16) and "torch bf16"
(`@` on bfloat16 copies made once before timing; result bfloat16). No numpy
child runs. The check then allows 4 bfloat16 epsilons (2**-8) plus the
float32 term.
"""

import atexit
import os
import shutil
import tempfile

import numpy as np

from bpfast import kernels

from benchmarks.workers import blas_kernel
from benchmarks.harness import optional
from benchmarks.suites import gemm_operands, mixed
from benchmarks.suites.cases import gemm_cases
from benchmarks.harness.competitor import Competitor, Verdict

NAME = "kernels"
TITLE = "GEMM kernels"
NOTE = ("One call is one matrix product; GFLOP/s counts 2·m·n·k. bpfast writes into a buffer "
        "allocated once (out=); numpy's and PyTorch's `@` allocate their result on every call.")
TOLERANCE_ULPS = 8  # tolerance = TOLERANCE_ULPS · eps · k, relative, normwise
MIXED_ULPS = 4  # a mixed run adds MIXED_ULPS · the bfloat16 epsilon (operand rounding, independent of k)
MIXED = True  # takes --dtype mixed_bfloat16

TABLE = "gemm"
EXPLANATION = (
    "One call is one matrix product. `bpfast.kernels.matmul`, `weight_gradient` and `input_gradient` are "
    "compared with numpy's `@` (which is what `bpfast.reference` calls) and, when it can be imported, "
    "PyTorch's `@` on tensors sharing numpy's memory (MKL or oneDNN, with as many threads as bpfast) on "
    "square matrices (`A@B n=512`) and "
    "on the three products of a dense layer: the forward pass `X@W.T`, the weight gradient `d.T@X` and the "
    "input gradient `d@W`. A case named `b=64 784->1024` is a layer with 784 inputs and 1024 outputs on a "
    "batch of 64. bpfast writes into an output buffer made once before timing; numpy's and PyTorch's `@` "
    "make a new result array on every call, so its times include that allocation. GFLOP/s counts 2·m·n·k. Check: "
    "the relative (Frobenius-norm) difference from bpfast's product is at most 8·eps·k. With `--dtype "
    "mixed_bfloat16`, `bpfast` passes `compute=\"bfloat16\"` (float32 operands rounded to bfloat16, float32 "
    "sums), `bpfast float32` is the same call in float32, `torch autocast` is PyTorch's `@` on the float32 "
    "tensors under `torch.autocast(\"cpu\", dtype=torch.bfloat16)` (conversion timed, bfloat16 result) and "
    "`torch bf16` its `@` on bfloat16 tensors converted once before timing; the check allows 4·2⁻⁸ more.")

cases = gemm_cases
TORCH = "torch"


_best = None    # (core type to try or None, why): blas_kernel.decide(), once
_child = None   # the NumpyChild, started on first use
_scratch = None  # a directory for the child's products


def best_kernel():
    global _best
    if _best is None:
        _best = blas_kernel.decide()
    return _best


_best_numpy = []  # finish()'s line on which numpy was faster, for notes()


def notes():
    out = [] if optional.torch() is not None else [optional.missing_note("torch", "no torch column")]
    target, why = best_kernel()
    if target is not None:
        out.append(f"numpy's best BLAS kernel: {why} (column numpy {target}); the faster of the two is numpy on "
                   "its best kernel, and the summary takes it into account")
    return out + _best_numpy


def finish(rows):
    """Say which numpy was faster, case by case, when a child on another core type ran."""
    import math
    _best_numpy.clear()
    target, _ = best_kernel()
    if target is None:
        return rows
    child = f"numpy {target}"
    pairs = {}
    for row in rows:
        if row["competitor"] in ("numpy", child) and row["status"] == "ok" and row.get("median"):
            pairs.setdefault(row["case"], {})[row["competitor"]] = row["median"]
    both = [p for p in pairs.values() if len(p) == 2]
    if both:
        wins = sum(p[child] < p["numpy"] for p in both)
        mean = math.exp(sum(math.log(p[child] / p["numpy"]) for p in both) / len(both))
        _best_numpy.append(f"numpy on its best BLAS kernel: {child} was the faster numpy in {wins} of {len(both)} "
                           f"cases; geometric mean of the times {child} / numpy: {mean:.2f}")
    return rows


def _numpy_child(target):
    global _child, _scratch
    if _child is None:
        from benchmarks.workers.numpy_child import NumpyChild
        _scratch = tempfile.mkdtemp(prefix="bpfast-bench-")
        _child = NumpyChild(target)
        atexit.register(_close_child)
    return _child


def _close_child():
    global _child
    if _child is not None:
        _child.close()
        _child = None
    if _scratch is not None:
        shutil.rmtree(_scratch, ignore_errors=True)


class _ChildCalls:
    """The callable the runner times for the child: it runs and times its calls itself."""

    def __init__(self, child):
        self.child = child

    def __call__(self):
        self.child.time_calls(1)

    def time_calls(self, n):
        return self.child.time_calls(n)


def _child_competitor(case, dtype, seed, threads, target):
    """numpy's `@` in the child process with OPENBLAS_CORETYPE=target."""

    def ready():
        child = _numpy_child(target)
        if not child.runs_requested_kernel():
            raise RuntimeError(f"the child's OpenBLAS runs {child.reported}, not {target}: "
                               "OPENBLAS_CORETYPE was not taken")
        if child.case_key != (case, dtype, seed, threads):
            child.set_case(case, dtype, seed, threads, os.path.join(_scratch, "product.npy"))
        return child

    def check():
        ready()
        return np.load(os.path.join(_scratch, "product.npy"))

    return Competitor(f"numpy {target}", check, lambda: _ChildCalls(ready()))


def _operands(case, dtype, seed):
    """{name: callable} for bpfast, numpy and (when importable) torch, operands drawn from a seeded Generator;
    in a mixed run also bpfast float32, torch autocast and torch bf16."""
    bpfast_fn, numpy_fn, operands, expression = _products(case, dtype, seed)
    fns = {"bpfast": bpfast_fn}
    if mixed.is_mixed(dtype):
        fns[mixed.FLOAT32_TWIN] = _products(case, mixed.float_dtype(dtype), seed)[0]
    fns["numpy"] = numpy_fn
    torch = optional.torch()
    if torch is not None:
        fns[TORCH] = _torch_product(torch, operands, expression)
        if mixed.is_mixed(dtype):
            fns[mixed.AUTOCAST] = _torch_product(torch, operands, expression, autocast=True)
            fns[mixed.TORCH_BF16] = _torch_product(torch, operands, expression, convert=True)
    return fns


def _torch_product(torch, operands, expression, autocast=False, convert=False):
    """PyTorch's `@` on tensors that share the operands' memory; the result comes back as an array.
    autocast: under torch.autocast("cpu", dtype=torch.bfloat16), the result a bfloat16 tensor; convert: on
    bfloat16 copies made here, once (the result a bfloat16 tensor). A bfloat16 result is returned as the
    tensor (timed without a conversion) and made a float32 array by the check (_competitor)."""
    A, B = (torch.from_numpy(x) for x in operands)
    if convert:
        A, B = A.to(torch.bfloat16), B.to(torch.bfloat16)
    product = gemm_operands.product(A, B, expression)
    if autocast:
        def under_autocast():
            with mixed.autocast(torch):
                return product()
        return under_autocast
    if convert:
        return product
    return lambda: product().numpy()


def _products(case, dtype, seed):
    """(bpfast callable, numpy callable, (first, second operand), expression) for the case."""
    A, B, expression = gemm_operands.operands(case, mixed.storage(dtype), seed)
    out = np.empty((case.m, case.n), dtype=mixed.storage(dtype))
    compute = mixed.net_kwargs(dtype)["compute"]
    bpfast_fn = {"square": lambda: kernels.matmul(A, B, compute=compute, out=out),
                 "forward": lambda: kernels.matmul(A, B, trans_b=True, compute=compute, out=out),
                 "weight_grad": lambda: kernels.weight_gradient(A, B, compute=compute, out=out),
                 "input_grad": lambda: kernels.input_gradient(A, B, compute=compute, out=out)}[case.op]
    return bpfast_fn, gemm_operands.product(A, B, expression), (A, B), expression


def _as_array(result):
    """A product as a float array of its own (a bfloat16 tensor made float32)."""
    if not isinstance(result, np.ndarray):
        result = mixed.to_numpy(result)
    return np.array(result, copy=True)


def _competitor(name, fn):
    # The result is copied: bpfast's out buffer is overwritten by the timed calls.
    return Competitor(name, lambda: _as_array(fn()), lambda: fn)


def competitors(case, dtype, seed, threads):
    torch = optional.torch()
    if torch is not None:
        torch.set_num_threads(threads)
    found = [_competitor(name, fn) for name, fn in _operands(case, dtype, seed).items()]
    target, _ = best_kernel() if not mixed.is_mixed(dtype) else (None, None)
    if target is not None:
        found.insert(2, _child_competitor(case, dtype, seed, threads, target))
    return found


def precision_of(name, dtype):
    """The precision competitor `name` computes in (a float32 one in a mixed_bfloat16 run)."""
    return mixed.precision_of(name, dtype)


def compare(case, dtype, base, value):
    tol = TOLERANCE_ULPS * np.finfo(mixed.storage(dtype)).eps * case.k
    if mixed.is_mixed(dtype):
        tol += MIXED_ULPS * mixed.BF16_EPS
    if value.shape != base.shape:
        return Verdict(False, f"shape {value.shape} != {base.shape}", float("inf"))
    base64, value64 = base.astype(np.float64), value.astype(np.float64)
    err = float(np.linalg.norm(value64 - base64) / max(np.linalg.norm(base64), 1e-300))
    ok = bool(np.isfinite(err) and err <= tol)
    return Verdict(ok, f"rel err {err:.1e} (tol {tol:.1e})", err)
