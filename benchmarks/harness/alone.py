"""The two timing methods, and the "alone" one: each competitor timed in a process of its own.

interleaved  every competitor of a case in the runner's process, their repeats taking turns
             (A B A B ..., timing.interleaved). A burst of noise hits all of them alike, but they share
             one process: its caches, its allocator, and the thread pools every library has loaded. On a
             2-core Intel Xeon that made PyTorch up to 2x slower than it runs on its own.
alone        (the default) every competitor in its own child process (workers/alone_child.py), one
             process per competitor and suite, kept for the suite's cases and ended with it. Only a
             PyTorch competitor's process imports PyTorch. The processes take turns: one times its
             competitor (calibration, a warm-up repeat, then every repeat) while the others wait, idle,
             for their next request; before each repeat it waits until its own threads, the runner's and
             the other children's have gone idle, so that none inherits another's spinning pool.

In both methods the runner checks every competitor's result against bpfast's in its own process first,
and the rows, medians, ratios and % of peak are made from the timings the same way; each row says which
method timed it ("method") and in which process ("timed_in", a pid), and carries the fingerprint of the
first timed call's result ("first_result", digest.py), so that the two methods can be compared.
"""

import os

ALONE = "alone"
INTERLEAVED = "interleaved"
METHODS = (ALONE, INTERLEAVED)
DEFAULT = ALONE
DESCRIPTIONS = {
    ALONE: "each competitor alone, in a process of its own (one per competitor and suite), one after another",
    INTERLEAVED: "every competitor in the runner's process, their repeats interleaved (A B A B ...)",
}
TORCH_PREFIX = "torch"  # competitors named so (torch, torch autocast, torch bf16) are PyTorch's


def needs_torch(name):
    """Whether competitor `name` is PyTorch's: only its process imports PyTorch."""
    return name == TORCH_PREFIX or name.startswith(TORCH_PREFIX + " ")


def missing_in(name):
    """The optional packages the process of competitor `name` treats as missing: those the run does
    (--pretend-missing), and PyTorch unless the competitor is PyTorch's."""
    from benchmarks.harness import optional
    return set(optional.pretend_missing) | (set() if needs_torch(name) else {"torch"})


class ChildPool:
    """The child processes of one suite, one per competitor, started on first need and ended by close()."""

    def __init__(self, suite):
        self.suite_module = suite.__name__
        self.children = {}
        self.helpers = set()  # processes the children started (a numpy child), counted as the run's own

    def start(self, names, case=None, settings=None):
        """Start the children of `names` that are not running (yet, or any more: one that died is replaced),
        all at once (their imports overlap), and wait until each is ready; with a case, each also makes the
        suite's competitors for it once, all at the same time (what they import and load). Returns
        name -> error text for those that failed."""
        from benchmarks.harness import timing
        from benchmarks.workers.alone_child import AloneChild
        failed, new = {}, []
        for name in names:
            running = self.children.get(name)
            if running is not None and running.process.poll() is None:
                continue
            if running is not None:  # it died (the error was reported with the case it died in): a new one
                timing.WATCHED_PIDS.discard(running.pid)
                del self.children[name]
            child = AloneChild(self.suite_module, name, missing_in(name))
            try:
                child.start()
                if case is not None:
                    child.send_prepare(case, settings.dtype, settings.seed, settings.threads)
            except Exception as error:
                failed[name] = f"starting its process: {type(error).__name__}: {error}"
                child.close()
                continue
            self.children[name] = child
            new.append(child)
        for child in new:
            try:
                timing.WATCHED_PIDS.add(child.ready())  # its CPU time is the run's own, not another process's
                if case is not None:
                    child.take_prepared()
            except Exception as error:
                failed[child.competitor] = f"{type(error).__name__}: {error}"
                child.close()
                del self.children[child.competitor]
        return failed

    def time(self, builds, case, settings, on_first=None):
        """Time each competitor of `builds` (name -> the name of the competitor whose callable it runs) in
        its own process, one after another. Returns (name -> timing.Timing, name -> error text, name -> pid);
        a competitor whose process failed is in the errors, not the timings. on_first(name, digest)
        receives the fingerprint of each one's first call."""
        from benchmarks.harness import timing
        timings, pids = {}, {}
        errors = self.start(list(builds), case, settings)
        for name, built_from in builds.items():
            if name in errors:
                continue
            try:
                child = self.children[name]
                # the runner and its other children must be idle meanwhile
                watch = ({os.getpid()} | timing.WATCHED_PIDS) - {child.pid}
                answer = child.time(case, built_from, settings.dtype, settings.seed, settings.threads,
                                    settings.repeats, settings.settle, settings.target, watch)
            except Exception as error:
                errors[name] = f"{type(error).__name__}: {error}"
                continue
            timings[name] = timing.Timing(answer["inner"], list(answer["times"]), answer["settle_timeouts"])
            self.helpers.update(answer["helpers"])
            timing.WATCHED_PIDS.update(answer["helpers"])
            pids[name] = answer["pid"]
            if on_first is not None:
                on_first(name, answer["digest"])
        return timings, errors, pids

    def close(self):
        """End every child (each is asked to quit, and killed if it does not)."""
        from benchmarks.harness import timing
        for child in self.children.values():
            child.close()
            timing.WATCHED_PIDS.discard(child.pid)
        timing.WATCHED_PIDS.difference_update(self.helpers)
        self.children.clear()
        self.helpers.clear()
