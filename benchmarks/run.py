#!/usr/bin/env python3
"""bpfast benchmark suite: bpfast against numpy, PyTorch and scikit-learn.

    python benchmarks/run.py                      # every suite, float32 (it says how long first)
    python benchmarks/run.py --quick              # a subset, under a minute
    python benchmarks/run.py --only fit --dtype float64 --json out.json --markdown out.md --plot out.png

Suites (--only NAME runs one):
  steps    one training step (train_step) of several nets
  kernels  GEMM (matmul, weight and input gradient) against numpy's `@`, and the
           activation, softmax and loss kernels against bpfast.reference
  fit      one training epoch (fit) on the digits, against a Python loop over
           train_step, the reference, scikit-learn and PyTorch
  sklearn  whole fits of bpfast.sklearn's MLPClassifier and MLPRegressor against
           scikit-learn's, with their test scores (needs scikit-learn)
  threads  thread scaling from 1 thread to every core
  memory   peak resident memory of a fit, in a fresh process per case
  distributed  fit over MPI ranks against one process with as many threads
           (needs mpi4py and mpiexec: the mpi extra)

For each timed case every competitor's result is first checked against
bpfast's (a mismatch marks the competitor WRONG and keeps it out of the
ratios); then each competitor is warmed up and timed in repeats (see
timing.py), by default alone: in a process of its own, one per competitor and
suite, the processes taking turns (--method alone; harness/alone.py). With
--method interleaved they are timed in this process, their repeats taking
turns. The output, the machine record and every JSON row say which method
timed them. Reported per competitor: median, min and max time per call,
the ratio competitor median / bpfast median (>1 means bpfast is faster) and
GFLOP/s where a FLOP count is defined. Needs only the standard library and
numpy; PyTorch, scikit-learn, threadpoolctl, matplotlib and tqdm join in when
they can be imported, and the output says what was left out without them.

The run first prints how long it expects to take (estimate.py, from durations
measured on a 2-core machine), then, on stderr, a line per finished case: its
name, how long it took, the ratios in brief, and whether it was retried. A
case is disturbed when other processes kept more than a quarter of a core
busy while it was timed, or when some competitor's slowest repeat took more
than 3 times its fastest; a disturbed case is timed again (--retries), and
the cleanest attempt is reported, with a line under its table saying so.

Ctrl-C ends the run at once: it says where it was interrupted, prints the tables
and the summary of the cases that finished, and writes them to --json, --markdown
and --plot (exit status 130).

Testing options, hidden from --help: --tiny (a few tiny cases, 2 repeats, no
settle pause, no waiting: checks the machinery in seconds, not the speed),
--inject-wrong (adds a competitor "wrong" to every case that returns bpfast's
result perturbed and is timed with bpfast's callable: it must come out WRONG
with no ratio) and --pretend-missing NAMES (treat these optional packages,
comma-separated, as not installed).
"""


import importlib.util
import os
import sys


def import_package():
    """Import this folder as the package `benchmarks`, from where this file is.

    `python benchmarks/run.py` puts benchmarks/ itself on the module path, not
    the folder above it, so `import benchmarks` could not find the package (or
    would find another one of that name); its location is this file's folder.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("benchmarks", os.path.join(here, "__init__.py"))
    package = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = package
    spec.loader.exec_module(package)


if __name__ == "__main__":
    if not __package__:  # run as a file; `python -m benchmarks.run` has the package already
        import_package()
    from benchmarks.cli import main
    sys.exit(main())
