"""One competitor timed in a process of its own (the runner's "alone" method; see harness/alone.py).

The parent (AloneChild) starts this module once per competitor and suite,
naming the suite module and the optional packages the process must treat
as missing (PyTorch, except in a PyTorch competitor's process, and those of
--pretend-missing), and talks to it in JSON lines:

    <- {"pid": ..., "ready": true}    once the suite module is imported
    -> {"op": "prepare", "case": <the case, pickled, base64>, "dtype": ..., "seed": ..., "threads": k}
       makes the suite's competitors for that case once, so that what they import and load (scikit-learn,
       a data set) is in place before any timing; the parent sends it to every child of a suite at once,
       so that their imports overlap
    <- {"ok": true}
    -> {"op": "time", "case": <the case, pickled, base64>, "competitor": name, "builds": name,
        "dtype": ..., "seed": ..., "threads": k, "repeats": r, "settle": s, "target": t, "watch": [pids]}
       builds the competitor `builds` of the suite's list for that case (inside the suite's case_context,
       when it has one), times it alone with timing.interleaved (calibration, a warm-up repeat, r repeats,
       each after waiting for this process's threads and those of `watch` to go idle)
    <- {"inner": n, "times": [...], "settle_timeouts": k, "digest": {...} or null, "pid": ...,
        "helpers": [pids]}
    -> {"op": "quit"}

`builds` differs from `competitor` only for --inject-wrong's competitor, which is timed with bpfast's
callable. digest is harness/digest.py's fingerprint of the first call's result; helpers are the
processes the competitor itself started to do its work (the numpy child of the GEMM suite), which the
parent counts as the run's own and the child keeps watching. An error comes back as {"error": "..."}.
The protocol travels on a copy of the original stdout; the child's fd 1 is pointed at stderr, so that
nothing a library prints can break a reply.
"""

import base64
import contextlib
import importlib
import json
import os
import pickle
import signal
import subprocess
import sys
import threading

import benchmarks
from benchmarks.workers import json_lines

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(benchmarks.__file__)))


# ------------------------------------------------------------------ the parent's side

class AloneChild:
    """The process that times one competitor of one suite; start() launches it, ready() waits for it."""

    def __init__(self, suite_module, competitor, missing=()):
        self.suite_module, self.competitor, self.missing = suite_module, competitor, sorted(missing)
        self.process, self.pid = None, None
        self.lock = threading.Lock()

    def start(self):
        """Launch the process (it imports the suite meanwhile; call ready() before the first request)."""
        command = [sys.executable, "-m", "benchmarks.workers.alone_child", self.suite_module]
        if self.missing:
            command += ["--missing", ",".join(self.missing)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        cwd=PACKAGE_PARENT)
        return self

    def ready(self):
        """Wait for the child's greeting; returns its pid."""
        if self.pid is None:
            self.pid = self._read()["pid"]
        return self.pid

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the process timing {self.competitor} alone ended unexpectedly "
                               f"(exit status {self.process.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"timing {self.competitor} alone: {answer['error']}")
        return answer

    def ask(self, **request):
        with self.lock:
            self.ready()
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            return self._read()

    def send_prepare(self, case, dtype, seed, threads):
        """Ask the child to make the case's competitors once (see the module docstring), without waiting:
        call ready() and then take_prepared() for the answer."""
        with self.lock:
            self.process.stdin.write(json.dumps({"op": "prepare", "case": _encoded(case), "dtype": dtype,
                                                 "seed": seed, "threads": threads}) + "\n")
            self.process.stdin.flush()

    def take_prepared(self):
        """The answer to send_prepare (raises the child's error, if it had one)."""
        with self.lock:
            return self._read()

    def time(self, case, builds, dtype, seed, threads, repeats, settle, target, watch):
        """The child's answer to one timing request (see the module docstring)."""
        return self.ask(op="time", case=_encoded(case), competitor=self.competitor, builds=builds, dtype=dtype,
                        seed=seed, threads=threads, repeats=repeats, settle=settle, target=target,
                        watch=sorted(watch))

    def close(self):
        """Ask the child to quit (kill it if it does not); safe to call twice, or after it died."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.flush()
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
            self.process.wait()


def _encoded(case):
    """A case (a frozen dataclass of suites/cases.py) as text for a JSON request."""
    return base64.b64encode(pickle.dumps(case)).decode("ascii")


# ------------------------------------------------------------------ the child's side

def _case_of(request):
    return pickle.loads(base64.b64decode(request["case"]))


def _prepare(suite, request):
    """Make the suite's competitors for the case once (their imports, their data); nothing is built."""
    case = _case_of(request)
    context = getattr(suite, "case_context", None)
    with (context(case) if context is not None else contextlib.nullcontext()):
        suite.competitors(case, request["dtype"], request["seed"], request["threads"])
    return {"ok": True}


_watch_given = set()  # the pids the parent last asked this child to watch (its helpers are the rest)


def _time_request(suite, request):
    """Build the requested competitor in this process and time it alone; the reply's fields."""
    from benchmarks.harness import timing
    from benchmarks.harness.digest import result_digest

    case = _case_of(request)
    timing.WATCHED_PIDS.difference_update(_watch_given)
    _watch_given.clear()
    _watch_given.update(int(pid) for pid in request["watch"])
    timing.WATCHED_PIDS.update(_watch_given)
    context = getattr(suite, "case_context", None)
    with (context(case) if context is not None else contextlib.nullcontext()):
        found = {c.name: c for c in suite.competitors(case, request["dtype"], request["seed"], request["threads"])}
        if request["builds"] not in found:
            raise LookupError(f"the suite offers no competitor {request['builds']!r} here "
                              f"(it offers {', '.join(found)})")
        fn = found[request["builds"]].build()
        firsts = {}
        timed = timing.interleaved({request["competitor"]: fn}, request["repeats"], settle=request["settle"],
                                   target=request["target"],
                                   on_first=lambda name, result: firsts.update({name: result_digest(result)}))
    result = timed[request["competitor"]]
    return {"inner": result.inner, "times": result.times, "settle_timeouts": result.settle_timeouts,
            "digest": firsts.get(request["competitor"]), "pid": os.getpid(),
            "helpers": sorted(timing.WATCHED_PIDS - _watch_given)}


def _serve(suite_module, missing):
    replies = os.fdopen(os.dup(1), "w")  # the protocol's channel; fd 1 now carries only stray prints
    os.dup2(2, 1)
    say = json_lines.replier(replies)

    from benchmarks.harness import optional
    optional.pretend_missing.update(missing)
    try:
        suite = importlib.import_module(suite_module)
    except Exception as error:
        say({"error": f"importing {suite_module}: {type(error).__name__}: {error}"})
        return
    say({"pid": os.getpid(), "ready": True})
    json_lines.serve(sys.stdin, {"time": lambda request: _time_request(suite, request),
                                 "prepare": lambda request: _prepare(suite, request)}, say)


if __name__ == "__main__":
    # Ctrl-C at the terminal reaches this child too: it ends quietly, and the parent reports the run.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    arguments = sys.argv[1:]
    _serve(arguments[0], arguments[2].split(",") if arguments[1:2] == ["--missing"] else [])
