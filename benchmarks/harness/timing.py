"""How one case is timed: calibration, warm-up and interleaved repeats.

Every competitor of a case is a callable that does one call (one training
step, one matrix product). For each callable an inner iteration count is
chosen so that one repeat (that many calls in a row, timed together with
time.perf_counter) lasts about TARGET_REPEAT_S. After one warm-up repeat per
competitor, the repeats are interleaved: A B A B ... so that a burst of noise
on the machine hits every competitor alike rather than one of them. Each
repeat gives one time per call (repeat time / inner count); the median of
those is the figure reported, with the min and max beside it. The garbage
collector is paused while repeats run. Under the runner's default method
(alone.py) each competitor's process calls interleaved() with that one
competitor, so its repeats follow one another.

Before each timed repeat the process waits until its other threads are
idle: on Linux it reads every thread's time on a CPU and time waiting for one
(/proc/self/task/*/schedstat; also the threads of helper processes listed in
WATCHED_PIDS, such as the numpy child of gemm_suite) and goes on once
QUIET_WINDOWS windows in a row show less than a tenth of a core used or
wanted by threads other than the caller, or after SETTLE_S. Counting the
time a thread spends waiting for a CPU matters on a busy machine: a spinning
pool thread that other processes keep off the CPU uses little CPU time in a
window, yet will spin again as soon as it gets a core. Elsewhere it falls
back to the process's CPU time (all threads together). Thread pools spin for a while after a call (OpenBLAS's workers
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
import os
import statistics
import threading
import time
from dataclasses import dataclass, field

TARGET_REPEAT_S = 0.03    # aim for one repeat of about 30 ms (20-50 ms)
CALIBRATION_FLOOR_S = 0.006  # calibrate on runs at least this long
SETTLE_S = 0.5  # longest wait for this process's threads to go idle before a repeat
SETTLE_WINDOW_S = 0.006
QUIET_WINDOWS = 2  # windows in a row that must be quiet
WATCHED_PIDS = set()  # helper processes whose threads must be idle too (gemm_suite's numpy child)
SPREAD_LIMIT = 3.0  # slowest repeat / fastest repeat above which a case counts as disturbed


def time_calls(fn, n):
    """Seconds taken by n calls of fn in a row; a callable that runs elsewhere (a child process) and has
    a time_calls(n) method times them itself."""
    remote = getattr(fn, "time_calls", None)
    if remote is not None:
        return remote(n)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - start


def inner_iterations(fn, target=TARGET_REPEAT_S, on_first=None):
    """How many calls of fn make one repeat of about ``target`` seconds (at least 1).

    fn is called once first, outside any measurement, to get first-call costs
    (allocations, lazy set-up, cold caches) out of the way; on_first, when
    given, receives that call's result.
    """
    first = fn()
    if on_first is not None:
        on_first(first)
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
    settle_timeouts: int = 0  # repeats that began with other threads still busy (the wait gave up)

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


def _schedstat(path):
    """(seconds on a CPU, seconds waiting for one) of one thread, from its schedstat file."""
    with open(path) as f:
        on_cpu, waiting = f.read().split()[:2]
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def thread_times(pids=None):
    """{(pid, tid): (seconds on a CPU, seconds waiting for one)} of every thread of this process and of
    the processes in ``pids`` (WATCHED_PIDS by default); None where Linux's schedstat is not readable."""
    found = {}
    for pid in ["self"] + sorted(WATCHED_PIDS if pids is None else pids):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            if pid == "self":
                return None
            continue  # a helper that has ended
        for tid in tids:
            try:
                found[(pid, tid)] = _schedstat(f"/proc/{pid}/task/{tid}/schedstat")
            except (OSError, ValueError):
                if pid == "self" and tid == str(threading.get_native_id()):
                    return None  # no schedstat here at all
    return found


def others_busy(before, after, wall, caller=None):
    """Cores that threads other than ``caller`` (a (pid, tid) key) used or waited for between two
    thread_times() readings ``wall`` seconds apart."""
    total = 0.0
    for key, (on_cpu, waiting) in after.items():
        if key == caller:
            continue
        on_cpu0, waiting0 = before.get(key, (0.0, 0.0))  # a thread born meanwhile counts from zero
        total += (on_cpu - on_cpu0) + (waiting - waiting0)
    return total / max(wall, 1e-9)


def wait_until_idle(max_wait, window=SETTLE_WINDOW_S, quiet_windows=QUIET_WINDOWS):
    """Wait until the other threads of this process (and of WATCHED_PIDS) use or want under a tenth of a
    core for ``quiet_windows`` windows in a row, at most max_wait s. Returns whether they went idle."""
    deadline = time.perf_counter() + max_wait
    caller = ("self", str(threading.get_native_id()))
    calm = 0
    while True:
        before, cpu, wall = thread_times(), time.process_time(), time.perf_counter()
        time.sleep(window)
        after, elapsed = thread_times(), max(time.perf_counter() - wall, 1e-9)
        if before is not None and after is not None:
            busy = others_busy(before, after, elapsed, caller)
        else:  # all threads together, the caller's sleep included
            busy = (time.process_time() - cpu) / elapsed
        calm = calm + 1 if busy < 0.1 else 0
        if calm >= quiet_windows:
            return True
        if time.perf_counter() >= deadline:
            return False


def interleaved(fns, repeats, warmup_repeats=1, settle=SETTLE_S, target=TARGET_REPEAT_S, on_first=None):
    """Time the callables of ``fns`` (name -> callable) in interleaved repeats.

    Returns name -> Timing, in the order of ``fns``. ``settle`` and ``target``
    are shrunk only by the runner's testing mode (--tiny). on_first(name,
    result), when given, receives each callable's first result (its untimed
    first call), so that a caller can tell what was timed without calling again.
    """
    def first_of(name):
        return None if on_first is None else (lambda result: on_first(name, result))

    timings = {name: Timing(inner_iterations(fn, target, first_of(name))) for name, fn in fns.items()}
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
                if settle and not wait_until_idle(settle):
                    timing.settle_timeouts += 1
                timing.times.append(time_calls(fn, timing.inner) / timing.inner)
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings
