"""How one case is timed: calibration, warm-up and interleaved repeats.

Every competitor of a case is a callable that does one call (one training
step, one matrix product). For each callable an inner iteration count is
chosen so that one repeat (that many calls in a row, timed together with
time.perf_counter) lasts about TARGET_REPEAT_S. After one warm-up repeat per
competitor, the repeats are interleaved: A B A B ... so that a burst of noise
on the machine hits every competitor alike rather than one of them. Each
repeat gives one time per call (repeat time / inner count); the median of
those is the figure reported, with the min and max beside it. The garbage
collector is paused while repeats run.

Before each timed repeat the process waits until its own threads are idle:
it samples its CPU time (all threads together) over short windows and goes
on once a window shows less than a tenth of a core busy, or after
SETTLE_MAX_S. Thread pools spin for a while after a call (OpenBLAS's workers
for about 2^28 cycles, OpenMP pools for their block time), and a spinning
pool would hold a core while the next competitor runs; on a 2-core machine
that halves a multithreaded competitor's speed. Every competitor gets the
same treatment, so none inherits another's spinning threads.

The spread of a competitor's repeats is its slowest repeat over its fastest.
On a quiet machine it stays under about 1.3; a case where some competitor's
spread exceeds SPREAD_LIMIT was disturbed (another process, or a thread pool
that lost a core for whole time slices), and the runner times it again.
"""

import gc
import statistics
import time
from dataclasses import dataclass, field

TARGET_REPEAT_S = 0.03    # aim for one repeat of about 30 ms (20-50 ms)
CALIBRATION_FLOOR_S = 0.006  # calibrate on runs at least this long
SETTLE_S = 0.5  # longest wait for this process's threads to go idle before a repeat
SETTLE_WINDOW_S = 0.01
SPREAD_LIMIT = 3.0  # slowest repeat / fastest repeat above which a case counts as disturbed


def time_calls(fn, n):
    """Seconds taken by n calls of fn in a row."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - start


def inner_iterations(fn, target=TARGET_REPEAT_S):
    """How many calls of fn make one repeat of about ``target`` seconds (at least 1).

    fn is called once first, outside any measurement, to get first-call costs
    (allocations, lazy set-up, cold caches) out of the way.
    """
    fn()
    n = 1
    floor = min(CALIBRATION_FLOOR_S, target / 4)
    while True:
        elapsed = time_calls(fn, n)
        if elapsed >= floor or n >= 1 << 24:
            return max(1, round(n * target / max(elapsed, 1e-9)))
        n *= 4


@dataclass
class Timing:
    """Per-call times of one competitor on one case, one entry per repeat (seconds)."""

    inner: int
    times: list = field(default_factory=list)

    @property
    def median(self):
        return statistics.median(self.times)

    @property
    def min(self):
        return min(self.times)

    @property
    def max(self):
        return max(self.times)

    @property
    def spread(self):
        """Slowest repeat / fastest repeat (1.0 for a single repeat)."""
        return self.max / self.min if self.min > 0 else float("inf")


def wait_until_idle(max_wait, window=SETTLE_WINDOW_S):
    """Wait until this process's threads use under a tenth of a core (at most max_wait s)."""
    deadline = time.perf_counter() + max_wait
    while True:
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(window)
        busy = (time.process_time() - cpu) / max(time.perf_counter() - wall, 1e-9)
        if busy < 0.1 or time.perf_counter() >= deadline:
            return


def interleaved(fns, repeats, warmup_repeats=1, settle=SETTLE_S, target=TARGET_REPEAT_S):
    """Time the callables of ``fns`` (name -> callable) in interleaved repeats.

    Returns name -> Timing, in the order of ``fns``. ``settle`` and ``target``
    are shrunk only by the runner's testing mode (--tiny).
    """
    timings = {name: Timing(inner_iterations(fn, target)) for name, fn in fns.items()}
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(warmup_repeats):
            for name, fn in fns.items():
                time_calls(fn, timings[name].inner)
        for _ in range(repeats):
            for name, fn in fns.items():
                timing = timings[name]
                if settle:
                    wait_until_idle(settle)
                timing.times.append(time_calls(fn, timing.inner) / timing.inner)
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings
