"""Other processes on a shared machine: measuring them, and waiting for them to stop.

On Linux, /proc/stat says how much CPU time all processes used and
os.times() how much this process used (all its threads, numpy's BLAS threads
included; with the helper processes of timing.WATCHED_PIDS added); the difference over a stretch of wall time is the number of cores
other processes kept busy meanwhile ("foreign" cores). A case timed while
they exceeded FOREIGN_LIMIT cores is re-timed after waiting for quiet, and
marked as disturbed if it never got a quiet window.
"""

import os
import time

FOREIGN_LIMIT = 0.25  # cores used by other processes before a case counts as disturbed


def _system_cpu_seconds():
    """(busy, total) CPU seconds summed over all cores since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def _own_cpu_seconds():
    """CPU seconds of this process and of the helper processes it times (timing.WATCHED_PIDS)."""
    from benchmarks.harness import timing
    t = os.times()
    total = t.user + t.system
    for pid in list(timing.WATCHED_PIDS):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        except (OSError, ValueError, IndexError):
            pass
    return total


class ForeignLoad:
    """Cores other processes kept busy between start() and stop() (None where unknown)."""

    def start(self):
        try:
            self._busy0 = _system_cpu_seconds()[0]
        except (OSError, ValueError, IndexError, AttributeError):
            self._busy0 = None
        self._own0, self._wall0 = _own_cpu_seconds(), time.perf_counter()
        return self

    def stop(self):
        if self._busy0 is None:
            return None
        try:
            busy = _system_cpu_seconds()[0] - self._busy0
        except (OSError, ValueError, IndexError):
            return None
        own = _own_cpu_seconds() - self._own0
        wall = time.perf_counter() - self._wall0
        return max(0.0, (busy - own) / max(wall, 1e-9))


def cpu_busy(seconds=0.5):
    """The fraction of all cores' time spent busy over the next ``seconds`` (None off Linux)."""
    try:
        busy0, total0 = _system_cpu_seconds()
        time.sleep(seconds)
        busy1, total1 = _system_cpu_seconds()
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return (busy1 - busy0) / max(total1 - total0, 1e-9)


def wait_for_quiet(max_wait_s, window_s=0.5, quiet_windows=2):
    """Sleep until other processes use under FOREIGN_LIMIT cores for ``quiet_windows``
    windows in a row, or until max_wait_s has passed. Returns the seconds waited."""
    start = time.perf_counter()
    calm = 0
    cores = os.cpu_count() or 1
    while time.perf_counter() - start < max_wait_s:
        busy = cpu_busy(window_s)  # this process sleeps meanwhile, so all of it is foreign
        if busy is None:
            break
        calm = calm + 1 if busy * cores < FOREIGN_LIMIT else 0
        if calm >= quiet_windows:
            break
    return time.perf_counter() - start


class WaitBudget:
    """The total time a run may spend waiting for quiet, so that a busy machine cannot stall it."""

    def __init__(self, seconds):
        self.left = float(seconds)

    def wait(self, at_most_s):
        waited = wait_for_quiet(min(at_most_s, self.left)) if self.left > 0 else 0.0
        self.left -= waited
        return waited
