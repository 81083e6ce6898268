#!/usr/bin/env python3
"""Data-parallel scaling of fit over MPI (bpfast.distributed), against one process.

    python benchmarks/workers/distributed_scaling.py                    # 1 and 2 ranks (up to the cores)
    python benchmarks/workers/distributed_scaling.py --ranks 1,2,4 --markdown scaling.md

For each net and each rank count N it launches ``mpiexec -n N`` (one thread
per rank) and times fit over N·steps·batch rows, batch rows per rank and
step: the time of a global step (N·batch rows). The baseline is one process
without MPI, with N threads (the same cores), stepping through the same
global batches in batches of N·batch rows. Each run's weights after the
warm-up epoch are compared with the baseline's (max |difference| / max(1, max |baseline|)):
the same training, so the figure is rounding only. The Allreduce column is
the time of one sum of the gradients alone (what overlap could hide).

Needs mpi4py and an mpiexec (pip install ".[mpi]"). Not part of run.py's
suites yet.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

CASES = [((784, 1024, 1024, 10), 256), ((784, 256, 10), 64), ((784, 128, 10), 32)]
TIMEOUT_S = 600


def data(n_rows, n_in, n_out, dtype):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n_rows, n_in)).astype(dtype), rng.integers(0, n_out, n_rows)


def global_order(ranks, steps, batch):
    """Row indices of the global batches, step by step: each rank's block of steps·batch rows
    gives its batch-th slice in rank order (what fit(comm=...) without shuffling takes)."""
    block = steps * batch
    return np.concatenate([np.arange(r * block + s * batch, r * block + (s + 1) * batch)
                           for s in range(steps) for r in range(ranks)])


def run_fits(net, X, labels, batch, repeats, fit_options, weights_to):
    """Seconds per epoch: a warm-up epoch, whose weights are saved to weights_to (the check: later
    epochs would let float32 rounding grow), then `repeats` timed ones."""
    net.fit(X, labels, epochs=1, batch_size=batch, shuffle=False, **fit_options)
    np.save(weights_to, net._engine.flat_parameters())
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        net.fit(X, labels, epochs=1, batch_size=batch, shuffle=False, **fit_options)
        seconds.append(time.perf_counter() - started)
    return seconds


def worker(spec):
    """One measurement, printed as JSON (by rank 0 under MPI)."""
    import bpfast
    sizes, batch, ranks, steps, repeats, dtype = (spec[k] for k in ("sizes", "batch", "ranks", "steps",
                                                                    "repeats", "dtype"))
    X, labels = data(ranks * steps * batch, sizes[0], sizes[-1], dtype)
    net = bpfast.Network(sizes, output="softmax", dtype=dtype, seed=0)
    record = {}
    if spec["mpi"]:
        from mpi4py import MPI
        from bpfast import distributed
        comm = MPI.COMM_WORLD
        bpfast.set_num_threads(1)
        mine = distributed.shard(X, labels, comm)
        seconds = run_fits(net, *mine, batch, repeats, {"comm": comm}, spec["weights_to"])
        group = net._group_for(comm)
        reduce_s = []
        for _ in range(5):
            comm.Barrier()
            started = time.perf_counter()
            group.reduce(net._engine, 0.0, 1.0, False)
            reduce_s.append(time.perf_counter() - started)
        record["allreduce_s"] = float(np.median(reduce_s))
        if comm.Get_rank() != 0:
            return
    else:
        bpfast.set_num_threads(ranks)
        order = global_order(ranks, steps, batch)
        seconds = run_fits(net, X[order], labels[order], ranks * batch, repeats, {}, spec["weights_to"])
    record["step_s"] = [s / steps for s in seconds]
    print(json.dumps(record))


def launch(spec, mpiexec, env=None):
    """The worker's record for spec, under mpiexec -n ranks or as one plain process: step_s (seconds
    per global step of each timed epoch), weights (the flat parameters after the warm-up epoch)
    and, under MPI, allreduce_s. env: variables to set for the run (BPFAST_OVERLAP, say)."""
    with tempfile.TemporaryDirectory() as folder:
        spec = {**spec, "weights_to": os.path.join(folder, "weights.npy")}
        command = [sys.executable] + (["-m", "mpi4py"] if spec["mpi"] else []) + [__file__, "--worker",
                                                                                 json.dumps(spec)]
        if spec["mpi"]:
            command = [mpiexec, "-n", str(spec["ranks"])] + command
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                              env=None if env is None else {**os.environ, **env})
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:4])} ... failed ({done.returncode}): {done.stderr[-2000:]}")
        record = json.loads(done.stdout.strip().splitlines()[-1])
        record["weights"] = np.load(spec["weights_to"])
    return record


def main(argv=None):
    from bpfast import _precision
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default=None, help="rank counts, comma-separated (default: 1, 2, ... up to the cores)")
    parser.add_argument("--steps", type=int, default=8, help="global steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per run (after one warm-up)")
    parser.add_argument("--dtype", choices=_precision.NAMES, default=_precision.NAMES[0])
    parser.add_argument("--markdown", metavar="PATH", help="write the table here as markdown")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("needs mpiexec: pip install '.[mpi]'")
    cores = os.cpu_count() or 1
    ranks = [int(r) for r in args.ranks.split(",")] if args.ranks else list(range(1, cores + 1))
    header = ("| net | batch/rank | ranks | step, 1 process (N threads) | step, N ranks | speed-up | "
              "Allreduce | weights vs 1 process |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    print(header)
    for sizes, batch in CASES:
        for n in ranks:
            spec = {"sizes": list(sizes), "batch": batch, "ranks": n, "steps": args.steps,
                    "repeats": args.repeats, "dtype": args.dtype}
            one = launch({**spec, "mpi": False}, mpiexec)
            many = launch({**spec, "mpi": True}, mpiexec)
            base, got = np.array(one["weights"]), np.array(many["weights"])
            error = float(np.max(np.abs(got - base)) / max(1.0, float(np.max(np.abs(base)))))
            t1, tn = np.median(one["step_s"]), np.median(many["step_s"])
            line = (f"| {'-'.join(map(str, sizes))} | {batch} | {n} | {t1 * 1e3:.2f} ms | {tn * 1e3:.2f} ms | "
                    f"{t1 / tn:.2f}x | {many['allreduce_s'] * 1e3:.2f} ms | {error:.1e} |")
            print(line, flush=True)
            lines.append(line)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
