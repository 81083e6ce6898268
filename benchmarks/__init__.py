"""bpfast's benchmarks, in layers; each layer imports only the ones below it.

    run.py, cli.py   the command (`python benchmarks/run.py`) and the run as a whole
    suites/          what is measured: one module per table, the cases (cases.py)
    workers/         the code that does the work outside the timing loop: child
                     processes (numpy_child, memory_probe, distributed_scaling),
                     the FMA and BLAS probes, the plain numpy competitor
    harness/         timing, contention, the machine record, the estimate, the
                     report and the plot, the competitor record, optional packages

Child processes start a worker by its file path when it imports nothing of
this package, else with `python -m benchmarks.workers.NAME` in the folder that
holds the package.
"""
