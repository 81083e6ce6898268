"""bpfast's benchmarks, as a package in layers.

    run.py, cli.py   the command (`python benchmarks/run.py`) and the run as a whole
    suites/          what is measured: one module per table; the cases (cases.py)
                     and a GEMM case's operands (gemm_operands.py)
    workers/         the work done outside the timing loop: child processes
                     (numpy_child, memory_probe, distributed_scaling), the FMA
                     and BLAS probes, the plain numpy competitor
    harness/         timing, contention, the machine record, the estimate, the
                     report and the plot, the competitor record, optional
                     packages, and the runner that checks and times a case

The command uses the suites, the suites use the workers and the harness, the
workers use the harness; cases.py and gemm_operands.py are plain descriptions
that any layer reads (the estimate counts the cases, the numpy child draws a
case's operands). No two modules import each other, and nothing edits sys.path:
a child process runs a worker by its file path when the worker imports nothing
of this package, else as `python -m benchmarks.workers.NAME` in the folder that
holds the package.
"""
