"""numpy's `@` in a child process whose OpenBLAS was loaded with another core type (see blas_kernel.py).

The parent (NumpyChild) starts this script with OPENBLAS_CORETYPE set and
talks to it in JSON lines on stdin/stdout:

    -> {"op": "case", "case": {...GemmCase fields}, "dtype": ..., "seed": ..., "threads": k, "out": path}
       builds the case's operands as the kernel suite does (gemm_operands.py:
       same seed, same draws), computes numpy's product once and saves it to path (.npy) for
       the parent to check against bpfast's
    <- {"ok": true}
    -> {"op": "time", "n": n}    runs n products in a row, timed here
    <- {"seconds": s}
    -> {"op": "quit"}

On start it says which core type its OpenBLAS runs: {"core_type": ..., "pid": ...}.
An error comes back as {"error": "..."}.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import benchmarks
from benchmarks.workers import json_lines

# `python -m benchmarks.workers.numpy_child` run in the folder that holds the package finds it there
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(benchmarks.__file__)))


# ------------------------------------------------------------------ the parent's side

class NumpyChild:
    """The child process, started with OPENBLAS_CORETYPE=core_type; its pid is watched while timing."""

    def __init__(self, core_type, timeout_s=600.0):
        from benchmarks.harness import timing
        env = dict(os.environ, OPENBLAS_CORETYPE=core_type)
        self.core_type, self.timeout_s = core_type, timeout_s
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.workers.numpy_child"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env, cwd=PACKAGE_PARENT)
        self.lock = threading.Lock()
        self.case_key = None
        hello = self._read()
        self.reported = hello.get("core_type")
        timing.WATCHED_PIDS.add(self.process.pid)

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the numpy child (OPENBLAS_CORETYPE={self.core_type}) ended unexpectedly")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"numpy child: {answer['error']}")
        return answer

    def ask(self, **request):
        with self.lock:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            return self._read()

    def runs_requested_kernel(self):
        return (self.reported or "").lower() == self.core_type.lower()

    def set_case(self, case, dtype, seed, threads, out):
        """Make ``case`` the one timed; its numpy product is written to ``out`` (.npy)."""
        self.ask(op="case", case=case.__dict__, dtype=dtype, seed=seed, threads=threads, out=out)
        self.case_key = (case, dtype, seed, threads)

    def time_calls(self, n):
        return float(self.ask(op="time", n=int(n))["seconds"])

    def close(self):
        from benchmarks.harness import timing
        timing.WATCHED_PIDS.discard(self.process.pid)
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()
                self.process.wait()


# ------------------------------------------------------------------ the child's side

def _serve():
    import numpy as np

    from benchmarks.harness import optional
    from benchmarks.suites import gemm_operands
    from benchmarks.suites.cases import GemmCase
    from benchmarks.workers import blas_kernel

    threadpoolctl = optional.load("threadpoolctl")
    types = blas_kernel.openblas_core_types(threadpoolctl.threadpool_info()) if threadpoolctl else []

    say = json_lines.replier(sys.stdout)
    say({"core_type": ", ".join(types) or "unknown", "pid": os.getpid()})
    state = {"fn": None, "limits": None}  # the case's product, and the BLAS thread limit in force

    def case(request):
        if state["limits"] is not None:
            state["limits"].restore_original_limits()
        if threadpoolctl is not None:
            state["limits"] = threadpoolctl.threadpool_limits(limits=request["threads"], user_api="blas")
        A, B, expression = gemm_operands.operands(GemmCase(**request["case"]), request["dtype"], request["seed"])
        state["fn"] = gemm_operands.product(A, B, expression)
        np.save(request["out"], state["fn"]())
        return {"ok": True}

    def time_products(request):
        fn = state["fn"]
        start = time.perf_counter()
        for _ in range(request["n"]):
            fn()
        return {"seconds": time.perf_counter() - start}

    json_lines.serve(sys.stdin, {"case": case, "time": time_products}, say)


if __name__ == "__main__":
    # Ctrl-C at the terminal reaches this child too: it ends quietly, and the parent reports the run.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _serve()
