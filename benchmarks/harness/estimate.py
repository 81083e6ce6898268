"""How long a run will take, said before it starts.

The figures are seconds per case, measured with this suite on a shared
2-core machine (AMD EPYC, Zen 4; full, --quick and --quick --dtype float64
runs) with every optional package installed and then without PyTorch and
scikit-learn: the part a competitor adds is the difference. A case of a
suite costs its base plus the parts of the optional competitors that are
importable; float64 multiplies a suite by FLOAT64; --repeats scales a timed
case by (repeats + 3) / (default + 3) (calibration and warm-up cost about
three repeats). START_S covers the imports, the machine record and the
first check for quiet. The waits for quiet come on top, up to --max-wait
seconds, and so do the retries of disturbed cases, up to runner.RETRY_SHARE of
the estimate. A faster machine takes a little less (most of a case is a
fixed number of repeats of about 30 ms each), a busier one more. The parts
added with the stronger anchors (numpy plain in the steps, PyTorch's `@` in
the GEMM table, the FMA probe at the start) are first estimates from runs on
the same machine while other processes kept it busy; a numpy child on another
OpenBLAS core type (blas_kernel.py), where there is one, adds about what
numpy's column costs and is not counted. The scikit-learn suite (whole fits,
which only run with scikit-learn) comes from three runs of `--only sklearn` on
the same machine, two of them in float64.

Those figures were measured with every competitor timed in the runner's
process (--method interleaved). The default method, alone, times each one in
a process of its own, started once per suite: ALONE_START_S adds what
starting those processes costs per table (their imports, PyTorch's and
scikit-learn's above all, overlapped on 2 cores), measured on the same kind
of machine with every optional package installed; it is counted once per
suite, whatever the number of cases.
"""

import os

from benchmarks.suites import cases
from benchmarks.harness import alone, optional

# table -> ((full, quick, tiny) seconds per case without optional competitors,
#           {optional package: (full, quick, tiny) seconds it adds}).
# Medians of the seconds per timing attempt over the runs of the 2-core machine named above (waits for
# quiet and retries left out: the run bounds those separately).
SECONDS_BY_TABLE = {
    "steps": ((2.6, 1.35, 0.35), {"torch": (1.5, 0.85, 0.1)}),
    "gemm": ((2.8, 1.15, 0.2), {"torch": (0.9, 0.5, 0.1)}),
    "elementwise": ((1.15, 0.66, 0.2), {}),
    "fit": ((2.3, 0.92, 0.2), {"sklearn": (0.5, 0.2, 0.05), "torch": (1.2, 0.45, 0.05)}),
    "sklearn": ((0.0, 0.0, 0.0), {"sklearn": (10.5, 3.7, 0.5)}),
    "threads": ((2.8, 1.0, 0.15), {"torch": (0.9, 0.4, 0.05)}),
    "memory": ((3.0, 0.6, 0.2), {}),
    "distributed": ((8.0, 4.0, 0.8), {}),
}
# mode -> table -> (seconds per case without optional competitors, {optional package: seconds it adds})
PER_CASE_S = {mode: {table: (base[i], {package: seconds[i] for package, seconds in extras.items()})
                     for table, (base, extras) in SECONDS_BY_TABLE.items()}
              for i, mode in enumerate(cases.MODES)}
FLOAT64 = {"steps": 1.3, "gemm": 1.05, "elementwise": 1.05, "fit": 1.3, "sklearn": 1.2, "threads": 1.6,
           "memory": 1.8, "distributed": 1.6}
START_S = {"torch": 2.0, "sklearn": 0.5, None: 4.5}  # imports, the machine record, the FMA probe, the first check for quiet
DEFAULT_REPEATS = {"full": 11, "quick": 5, "tiny": 2}
UNTIMED = {"memory"}  # suites that measure memory, not time: --repeats does not touch them
# table -> seconds to start its competitors' processes under the alone method (every optional package present)
ALONE_START_S = {"steps": 3.0, "gemm": 2.0, "elementwise": 0.3, "fit": 5.0, "sklearn": 3.1, "threads": 2.7}

SUITE_TABLES = {"steps": ["steps"], "kernels": ["gemm", "elementwise"], "fit": ["fit"], "sklearn": ["sklearn"],
                "threads": ["threads"], "memory": ["memory"], "distributed": ["distributed"]}
TITLES = {"steps": "steps", "gemm": "GEMM", "elementwise": "element-wise kernels", "fit": "fit",
          "sklearn": "scikit-learn estimators",
          "threads": "threads", "memory": "memory",
          "distributed": "distributed"}


def case_count(table, mode, have_sklearn, cores=None):
    """How many cases a table has in this mode (the scikit-learn suite has none without scikit-learn)."""
    finder = {"steps": cases.step_cases, "gemm": cases.gemm_cases, "elementwise": cases.elementwise_cases,
              "fit": lambda m: cases.fit_cases(m, have_sklearn),
              "sklearn": lambda m: cases.sklearn_cases(m, have_sklearn),
              "threads": lambda m: cases.thread_cases(m, cores),
              "memory": cases.memory_cases,
              "distributed": lambda m: cases.distributed_cases(m, cores)}[table]
    return len(finder(mode))


def estimate(suite_names, mode, dtype, present, repeats=None, cores=None, method=alone.DEFAULT):
    """(total seconds, [(table, seconds)]) for a run of these suites.

    present: the optional competitors that will join in (a subset of {"torch", "sklearn"}); method:
    alone.ALONE adds the start of each table's processes (ALONE_START_S), for a table with cases.
    """
    parts = []
    for name in suite_names:
        for table in SUITE_TABLES[name]:
            base, extras = PER_CASE_S[mode][table]
            per_case = base + sum(seconds for package, seconds in extras.items() if package in present)
            if table not in UNTIMED:
                if repeats is not None:
                    per_case *= (repeats + 3) / (DEFAULT_REPEATS[mode] + 3)
            if dtype == "float64":
                per_case *= FLOAT64[table]
            count = case_count(table, mode, "sklearn" in present, cores)
            start = ALONE_START_S.get(table, 0.0) if method == alone.ALONE and count else 0.0
            parts.append((table, start + per_case * count))
    start = START_S[None] + sum(START_S[p] for p in present if p in START_S)
    return start + sum(seconds for _, seconds in parts), parts


def present_competitors():
    """The optional competitors that will join in, found without importing them."""
    return {name for name in ("torch", "sklearn") if optional.importable(name)}


def fmt_seconds(seconds):
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def line(suite_names, mode, dtype, present, repeats=None, max_wait=0.0, retry_s=0.0, cores=None,
         method=alone.DEFAULT):
    """The sentence printed at the start of a run."""
    total, parts = estimate(suite_names, mode, dtype, present, repeats, cores or os.cpu_count(), method)
    shown = ", ".join(f"{TITLES[table]} {fmt_seconds(seconds)}" for table, seconds in parts)
    missing = [optional.PACKAGES[p][0] for p in ("torch", "sklearn") if p not in present]
    without = f"; without {' and '.join(missing)}" if missing else ""
    extra = [f"{fmt_seconds(max_wait)} waiting for other processes to go quiet"] if max_wait else []
    extra += [f"{fmt_seconds(retry_s)} re-timing disturbed cases"] if retry_s else []
    more = f", plus up to {' and '.join(extra)}" if extra else ""
    return (f"expected duration: about {fmt_seconds(total)} ({shown}; start-up included{without}){more}. "
            "Approximate: measured on a shared 2-core machine; other processes' load stretches it.")
