#!/usr/bin/env python3
"""Every GEMM micro-kernel candidate of this CPU's instruction set, timed on the same products.

    python benchmarks/workers/gemm_candidates.py                      # A@B n=1024, 1 and 2 threads
    python benchmarks/workers/gemm_candidates.py --n 512,1024 --threads 1 --layers

The figures bpfast.tune() chooses from, on larger products: each candidate runs the whole GEMM
(bpfast._core.time_gemm_kernel: blocking, packing, threads) in rounds that visit every candidate
in turn, so that a slow spell of the machine falls on all of them; the table shows the fastest
repeat of each (a peak: noise only slows a run down) and the median, in GF/s. All candidates
give the same bits (tests/kernels/test_tuning.py), so only the speed differs. --layers adds a
layer's X·Wᵀ at batch 16, 64 and 256 (784→1024). Not part of run.py's suites.
"""

import argparse
import statistics

from bpfast import _core

DTYPES = ("float32", "float64")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="1024", help="square sizes, comma-separated (default 1024)")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the candidates (default 3)")
    parser.add_argument("--layers", action="store_true", help="also X·Wᵀ at batch 16, 64, 256, 784→1024")
    args = parser.parse_args()
    shapes = [(n, n, n, False) for n in map(int, args.n.split(","))]
    if args.layers:
        shapes += [(batch, 1024, 784, True) for batch in (16, 64, 256)]
    threads = [int(t) for t in args.threads.split(",")]
    seconds = {}
    for _ in range(args.rounds):
        for shape in shapes:
            for t in threads:
                for dtype in DTYPES:
                    for name in _core.gemm_kernels(dtype):
                        reps = max(1, min(20, int(2e8 / (2 * shape[0] * shape[1] * shape[2]))))
                        seconds.setdefault((shape, t, dtype, name), []).extend(
                            _core.time_gemm_kernel(dtype, name, *shape, reps, t))
    print(f"isa {_core.isa}; GF/s, best (median) of {args.rounds} rounds; the first kernel of each dtype is the default")
    for shape in shapes:
        m, n, k, trans_b = shape
        label = f"A@B n={m}" if not trans_b else f"X·Wᵀ {m}×{k}→{n}"
        for dtype in DTYPES:
            print(f"\n{label} {dtype}")
            print(f"  {'kernel':28s}" + "".join(f"{str(t) + ' thread' + ('s' if t > 1 else ''):>22s}" for t in threads))
            for name in _core.gemm_kernels(dtype):
                cells = []
                for t in threads:
                    times = seconds[shape, t, dtype, name]
                    flops = 2.0 * m * n * k
                    cells.append(f"{flops / min(times) / 1e9:10.1f} ({flops / statistics.median(times) / 1e9:6.1f})")
                print(f"  {name:28s}" + "".join(f"{c:>22s}" for c in cells))


if __name__ == "__main__":
    main()
