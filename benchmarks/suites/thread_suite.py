"""The threads suite: how bpfast scales from 1 thread to every core.

Two workloads, each run with 1, 2, 4, ... threads up to os.cpu_count(): a
large square GEMM (A@B, 1024×1024 by default) and one training step of the
784-1024-1024-10 net on a batch of 256. Each (workload, thread count) is a
case, timed like any other: bpfast with bpfast.set_num_threads(k); beside it
numpy's BLAS (`@` for the GEMM, bpfast.reference.Network for the step) limited
to k threads through threadpoolctl when that is importable (otherwise numpy
keeps its default thread count and the table says so), and PyTorch with
torch.set_num_threads(k) when importable. The thread counts are restored
after each case.

Reported besides the usual columns: speed-up = time at 1 thread / time at k
threads, for the same competitor, and parallel efficiency = speed-up / k.
Check: the same as the kernels and steps suites.
"""

import contextlib

import bpfast

from benchmarks.suites import gemm_suite
from benchmarks.harness import optional
from benchmarks.suites import step_suite
from benchmarks.suites.cases import GemmCase, thread_cases

NAME = "threads"
MARKDOWN_LAYOUT = "long"
TABLE = "threads"
TITLE = "Thread scaling"
NOTE = ("The same work on 1, 2, 4, ... threads up to the core count. speed-up = time on 1 thread / time on k "
        "threads (same competitor); efficiency = speed-up / k. ratio = competitor / bpfast at the same k.")
EXPLANATION = (
    "Each workload runs with 1, 2, 4, ... threads up to the machine's core count (`os.cpu_count()`): a "
    "1024×1024 matrix product `A@B` and one training step of the 784-1024-1024-10 net on a batch of 256. "
    "bpfast's thread count is set with `bpfast.set_num_threads(k)`. numpy's BLAS (under `numpy` for the "
    "product and `reference` for the step) is limited to the same k threads through threadpoolctl when it is "
    "installed; without it numpy keeps its default and the note under the table says so. PyTorch, when "
    "installed, gets `torch.set_num_threads(k)`. speed-up = the competitor's time on 1 thread / its time on k "
    "threads; efficiency = speed-up / k, so 100% means perfect scaling. The ratio compares competitor and "
    "bpfast at the same thread count.")
EXTRA_COLUMNS = [("speed-up", "speedup"), ("efficiency", "efficiency")]

cases = thread_cases
_blas = None


def _blas_threads():
    global _blas
    if _blas is None:
        _blas = optional.BlasThreads()
    return _blas


def notes():
    out = []
    if not _blas_threads().controlled:
        out.append(optional.missing_note("threadpoolctl", "numpy's BLAS ran at its default thread count in "
                                                          "every case; its speed-up column means nothing"))
    if optional.torch() is None:
        out.append(optional.missing_note("torch", "no torch column"))
    return out


@contextlib.contextmanager
def case_context(case):
    """Every library on case.threads threads while the case is checked and timed (bpfast's steps
    without their adaptive thread count, which could run a step of the 2-thread row on one)."""
    torch = optional.torch()
    before_bpfast = bpfast.get_num_threads()
    adaptive = bpfast.get_adaptive_threads()
    before_torch = torch.get_num_threads() if torch is not None else None
    blas = _blas_threads()
    try:
        bpfast.set_num_threads(case.threads)
        bpfast.set_adaptive_threads(False)
        blas.set(case.threads)
        if torch is not None:
            torch.set_num_threads(case.threads)
        yield
    finally:
        bpfast.set_num_threads(before_bpfast)
        bpfast.set_adaptive_threads(adaptive)
        blas.restore()
        if torch is not None:
            torch.set_num_threads(before_torch)


def _gemm_case(case):
    return GemmCase("square", case.n, case.n, case.n)


def competitors(case, dtype, seed, threads):
    """The kernels suite's competitors for the GEMM (PyTorch's `@` among them), the steps suite's for the step."""
    if case.workload == "gemm":
        return gemm_suite.competitors(_gemm_case(case), dtype, seed, case.threads)
    return step_suite.competitors(case.step, dtype, seed, case.threads)


def compare(case, dtype, base, value):
    if case.workload == "gemm":
        return gemm_suite.compare(_gemm_case(case), dtype, base, value)
    return step_suite.compare(case.step, dtype, base, value)


def finish(rows):
    """Add speed-up over the same competitor's 1-thread time, and parallel efficiency."""
    one = {}
    for row in rows:
        if row["params"]["threads"] == 1 and row["median"] is not None and row["status"] in ("baseline", "ok"):
            one[(row["params"]["workload"], row["competitor"])] = row["median"]
    blas_controlled = _blas_threads().controlled
    for row in rows:
        k = row["params"]["threads"]
        row["threads"] = k
        if row["competitor"] in ("numpy", "reference"):
            row["threads_controlled"] = blas_controlled
        base = one.get((row["params"]["workload"], row["competitor"]))
        if base is not None and row["median"] is not None and row["status"] in ("baseline", "ok"):
            row["speedup"] = base / row["median"]
            row["efficiency"] = row["speedup"] / k
        else:
            row["speedup"] = row["efficiency"] = None
    return rows
