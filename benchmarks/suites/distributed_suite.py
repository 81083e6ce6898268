"""The distributed suite: fit over MPI ranks (bpfast.distributed) against one process.

Each case runs twice in fresh processes (distributed_scaling.py's worker):
bpfast in one process without MPI, with as many threads as the case has
ranks, through the global batches of ranks × batch rows; and fit(comm=...)
under ``mpiexec -n ranks`` with one thread per rank and batch rows per rank.
Both run a warm-up epoch and then time `repeats` epochs of `steps` global
steps, unshuffled; reported: seconds per global step. Check: the weights
after the warm-up epoch must agree with the one-process run (they take the
same steps) to TOLERANCE relative (later epochs would let float32 rounding
grow). Needs mpi4py and mpiexec (the mpi extra); without
them only the one-process row is given, and a note says why.
"""

import os
import shutil
import sys

from bpfast import _precision

from benchmarks.suites.cases import distributed_cases
from benchmarks.harness.competitor import Verdict, relative_error, status_of
from benchmarks.workers import distributed_scaling
from benchmarks.harness import optional

NAME = "distributed"
TABLE = "distributed"
TITLE = "Fit over MPI ranks"
TIMED = True  # runner.py passes the repeats to run_case
METHOD = "fresh processes per case: one without MPI, then the ranks under mpiexec"  # whatever --method says
MARKDOWN_LAYOUT = "long"
EXTRA_COLUMNS = [("sum share", "sum_share")]  # one sum of the gradients alone, as a share of a step
NOTE = ("Time per global step (ranks x batch rows). bpfast = one process with as many threads as ranks; "
        "'N ranks' = fit(comm=...) under mpiexec, one thread per rank; ratio = N ranks / one process.")
EXPLANATION = (
    "Data-parallel training over MPI (`bpfast.distributed`), each run in fresh processes. The baseline is "
    "bpfast in one process without MPI, with as many threads as the case has ranks, stepping through the "
    "global batches (ranks × batch rows); the competitor is `fit(comm=...)` under `mpiexec -n ranks` with "
    "one thread per rank and batch rows per rank and step. Both run a warm-up epoch, then time the repeats, "
    "epochs of a few unshuffled global steps; the figure is seconds per global step. The check: after the "
    "warm-up epoch the ranks' weights agree with the one-process run to 1e-4 (float32) or 1e-10 (float64) "
    "relative, since both take the same steps. A case named `784-1024-1024-10 b=256/rank, 2 ranks (weak)` is "
    "that net with 256 rows per rank and step on 2 ranks; weak cases keep the rows per rank as the ranks grow, "
    "strong ones split a global batch of 256 rows over them. On the large net the ranks are also timed with "
    "`BPFAST_OVERLAP=1` (each layer's sum started as soon as its backward pass ends), and the check column "
    "gives the time of one sum of the gradients alone and the 'sum share' column its share of a step. "
    "[SCALING.md](SCALING.md) reads these figures.")
TOLERANCE = {p.name: p.trajectory_rtol for p in _precision.PRECISIONS}  # the tests' many-steps tolerance

cases = distributed_cases


def _mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def _missing():
    """Why the ranks cannot run, or None."""
    if not optional.importable("mpi4py"):
        return optional.missing_note("mpi4py", "no MPI rows in the distributed suite (pip install '.[mpi]')")
    if _mpiexec() is None:
        return "mpiexec was not found (pip install mpich): no MPI rows in the distributed suite"
    return None


def notes():
    missing = _missing()
    return [missing] if missing else []


def compare(case, dtype, base, value):
    import numpy as np
    err = relative_error(value, base)
    ok = bool(np.all(np.isfinite(value)) and err <= TOLERANCE[dtype])
    return Verdict(ok, f"weights: largest rel err {err:.1e} (tol {TOLERANCE[dtype]:.0e})", err)


def _row(case, dtype, name, status, detail, seconds):
    import numpy as np
    row = {"suite": NAME, "table": TABLE, "dtype": dtype, "case": case.label, "params": case.params(),
           "flops": case.flops, "competitor": name, "status": status, "check": detail, "measure": "time per step",
           "sum_share": None,
           "inner": None, "times": [], "median": None, "min": None, "max": None, "spread": None, "ratio": None,
           "gflops": None, "foreign_cores": None, "attempts": 1, "disturbed": False}
    if seconds:
        median = float(np.median(seconds))
        row.update(times=list(seconds), median=median, min=min(seconds), max=max(seconds),
                   spread=max(seconds) / min(seconds))
    return row


def _reduction_share(record):
    """'; sum 2.1 ms = 4% of a step': one Allreduce of the gradients alone against the step's median."""
    import numpy as np
    if not record.get("allreduce_s") or not record.get("step_s"):
        return ""
    share = record["allreduce_s"] / float(np.median(record["step_s"]))
    return f"; sum of gradients {record['allreduce_s'] * 1e3:.2f} ms = {share:.0%} of a step"


def run_case(case, dtype, seed, progress, position, perturb=None, repeats=5):
    """Rows for one process (the baseline) and for the ranks (and, with perturb, a wrong copy)."""
    spec = {"sizes": list(case.sizes), "batch": case.batch, "ranks": case.ranks, "steps": case.steps,
            "repeats": repeats, "dtype": dtype}
    records, errors = {}, {}
    runs = [("bpfast", False)]
    if not _missing():
        runs.append((f"{case.ranks} ranks", True))
        if case.overlap:
            runs.append((f"{case.ranks} ranks, overlap", True))
    for name, mpi in runs:
        progress.show(f"[{NAME} {position}] {case.label}: {name}")
        env = {"BPFAST_OVERLAP": "1" if name.endswith("overlap") else "0"}
        try:
            records[name] = distributed_scaling.launch({**spec, "mpi": mpi}, _mpiexec(), env=env)
        except Exception as error:  # a failed launch is an ERROR row, not a failed run
            errors[name] = f"{type(error).__name__}: {error}"
    if perturb is not None and "bpfast" in records:
        records["wrong"] = {**records["bpfast"], "weights": perturb(records["bpfast"]["weights"])}
    rows, base = [], records.get("bpfast")
    for name, _ in runs + ([("wrong", None)] if "wrong" in records else []):
        record = records.get(name)
        status, detail = status_of(name, errors, base is not None,
                                   lambda: compare(case, dtype, base["weights"], record["weights"]))
        if status in ("ok", "WRONG"):
            detail += _reduction_share(record)
        rows.append(_row(case, dtype, name, status, detail, None if record is None else record["step_s"]))
        if record is not None and record.get("allreduce_s") and record.get("step_s"):
            rows[-1]["sum_share"] = record["allreduce_s"] / rows[-1]["median"]
    base_median = rows[0]["median"] if rows[0]["status"] == "baseline" else None
    for row in rows:
        if row["status"] in ("baseline", "ok") and row["median"] is not None:
            row["gflops"] = case.flops / row["median"] / 1e9
            if base_median is not None:
                row["ratio"] = row["median"] / base_median
    return rows
