#!/usr/bin/env python3
"""Training steps in float32 and in mixed precision (bfloat16 products), side by side, per net.

    python benchmarks/workers/mixed_precision_steps.py                        # every net, one thread
    python benchmarks/workers/mixed_precision_steps.py --nets digits,h100 --threads 2 --optimizer adam

The figures behind SmallNetBackend::bf16_forward_flops_limit: for each net, the two nets (same
seed) take turns in one process, each timing a loop of train_step on one batch, and the table shows
the median loop per step, the ratio float32 / bfloat16 (above 1: mixed precision is faster) and
the path mixed precision took at that batch (the small-network path, or the blocked GEMM's
bfloat16 kernels) with the batch's forward flops. To see the other path of a net, build with the
limit changed. Not part of run.py's suites (which time each competitor alone).
"""

import argparse
import statistics
import time
import warnings

import numpy as np

import bpfast

NETS = {  # name: (sizes, batch, output)
    "tiny": ([32, 64, 64, 1], 16, "identity"),
    "s64": ([64, 64, 64, 10], 64, "softmax"),
    "digits": ([64, 100, 10], 200, "softmax"),
    "h100": ([100, 100, 10], 200, "softmax"),
    "m128": ([784, 128, 10], 32, "softmax"),
    "b64": ([784, 256, 10], 64, "softmax"),
    "m256": ([784, 256, 128, 10], 128, "softmax"),
}


def optimizer(name):
    return bpfast.optim.Adam(1e-4) if name == "adam" else bpfast.optim.SGD(1e-3)


def time_net(sizes, batch, output, opt, rounds):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    T = rng.integers(0, sizes[-1], batch) if output == "softmax" else rng.standard_normal((batch, 1)).astype(np.float32)
    nets = {compute: bpfast.Network(sizes, output=output, compute=compute, seed=0, optimizer=optimizer(opt))
            for compute in ("float32", "bfloat16")}
    flops = 2.0 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    steps = max(20, int(4e7 / flops))  # about 10-40 ms a loop
    times = {compute: [] for compute in nets}
    for _ in range(rounds):
        for compute, net in nets.items():
            net.train_step(X, T)
            start = time.perf_counter()
            for _ in range(steps):
                net.train_step(X, T)
            times[compute].append((time.perf_counter() - start) / steps)
    engine = nets["bfloat16"]._engine
    path = "small" if engine.uses_small_net(batch) or engine.row_chunks(batch) > 1 else "GEMM"
    return {compute: statistics.median(t) for compute, t in times.items()}, path, flops


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default=",".join(NETS), help=f"comma-separated, of {', '.join(NETS)}")
    parser.add_argument("--threads", type=int, default=1, help="bpfast's thread count (default 1)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--rounds", type=int, default=7, help="timed loops per precision (default 7)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # the one-time note that bfloat16 is emulated here
    bpfast.set_num_threads(args.threads)
    print(f"ISA {bpfast._core.isa}, {args.threads} thread(s), {args.optimizer}, medians of {args.rounds}")
    print(f"{'net':8s} {'batch':>5s} {'fwd Mflop':>9s} {'float32':>10s} {'bfloat16':>10s} {'f32/bf16':>8s}  path")
    for name in args.nets.split(","):
        sizes, batch, output = NETS[name]
        median, path, flops = time_net(sizes, batch, output, args.optimizer, args.rounds)
        print(f"{name:8s} {batch:5d} {flops / 1e6:9.2f} {median['float32'] * 1e6:8.1f}us "
              f"{median['bfloat16'] * 1e6:8.1f}us {median['float32'] / median['bfloat16']:8.2f}  {path}")


if __name__ == "__main__":
    main()
