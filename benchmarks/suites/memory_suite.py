"""The memory suite: peak resident memory of a fit, against the size of parameters and data.

Each (case, implementation) runs in a fresh Python process (memory_probe.py),
so that nothing else the runner has loaded or allocated counts. That process
imports numpy and bpfast, makes synthetic data (standard normal X in the
working dtype, integer labels), notes its resident set size (the baseline),
then builds the net and runs fit (relu, softmax with cross-entropy, SGD,
shuffled) and reads the peak resident set size since the baseline (see
memory_probe.py for how). Reported: baseline, peak, growth = peak − baseline,
parameters + data bytes, growth / (parameters + data), and the ratio of the
competitor's growth to bpfast's (>1: bpfast needs less).

Competitors: bpfast.Network.fit and bpfast.reference.Network.fit. Both
build the same net from the same seed and shuffle with the same generator,
so they take the same steps; check: the loss of every epoch must match
bpfast's to TOLERANCE (relative).
"""

import json
import subprocess
import sys

from benchmarks.harness.competitor import Verdict, status_of
from benchmarks.suites.cases import memory_cases
from benchmarks.workers import memory_probe

NAME = "memory"
TABLE = "memory"
TITLE = "Peak memory of fit"
NOTE = ("Each fit runs in a fresh process. baseline = resident memory after import and data; peak = the most "
        "resident memory during fit; growth = peak - baseline; ratio = competitor growth / bpfast growth.")
EXPLANATION = (
    "Each fit runs in a fresh Python process, so nothing else counts. The process imports numpy and bpfast, "
    "makes synthetic data (standard normal X in the working dtype, integer labels), and notes its resident "
    "memory: the baseline. Then it builds the net and runs `fit` (relu, softmax with cross-entropy, SGD with "
    "lr 0.01, shuffled) and reads the peak resident memory since the baseline (on Linux `VmHWM` after a reset "
    "of the mark at the baseline; `ru_maxrss` elsewhere). growth = peak − baseline: what the fit itself needs "
    "(weights, gradients, per-batch buffers, copies). It is set beside the bytes of the parameters and of the "
    "data; ratio = the competitor's growth / bpfast's, above 1 meaning bpfast needs less. `bpfast.Network.fit` "
    "is compared with `bpfast.reference.Network.fit`; both take the same steps, and the check is that their "
    "per-epoch losses agree (relative error at most 1e-3 in float32, 1e-9 in float64). A case named "
    "`784-256-10 n=10000 b=32` is that net fitted on 10000 samples in batches of 32.")
TOLERANCE = {"float32": 1e-3, "float64": 1e-9}
PROBE = memory_probe.__file__  # run by its path: it imports nothing of this package
TIMEOUT_S = 300
METHOD = "a fresh process per case and competitor"  # the row's and the JSON's "method", whatever --method says

cases = memory_cases


def notes():
    return []


def measure(case, impl, dtype, seed):
    """The probe's JSON record for one fit in a fresh process (raises RuntimeError when it fails)."""
    spec = {"impl": impl, "dtype": dtype, "seed": seed, **case.params()}
    done = subprocess.run([sys.executable, PROBE, json.dumps(spec)], capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"the memory probe exited with {done.returncode}: {tail[0]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(case, dtype, base, value):
    tol = TOLERANCE[dtype]
    l0, l1 = base["losses"], value["losses"]
    if len(l0) != len(l1):
        return Verdict(False, f"{len(l1)} epoch losses != {len(l0)}", float("inf"))
    errors = [abs(a - b) / max(1.0, abs(b)) for a, b in zip(l1, l0)]
    err = max(errors) if errors else 0.0
    finite = all(x == x and abs(x) != float("inf") for x in l1)
    ok = bool(finite and err <= tol)
    last = f"last epoch loss {l1[-1]:.6g} vs {l0[-1]:.6g}, " if l0 else ""
    return Verdict(ok, f"{last}largest rel err {err:.1e} (tol {tol:.0e})", err)


def _row(case, dtype, name, status, detail, record):
    row = {"suite": NAME, "table": TABLE, "dtype": dtype, "case": case.label, "params": case.params(),
           "flops": None, "competitor": name, "status": status, "check": detail, "measure": "peak RSS growth",
           "inner": None, "times": [], "median": None, "min": None, "max": None, "ratio": None, "gflops": None,
           "foreign_cores": None, "attempts": 0, "disturbed": False}
    for key in ("baseline_rss", "rss_after_build", "peak_rss", "delta", "param_bytes", "data_bytes", "fit_s", "method",
                "ru_maxrss_after_import", "ru_maxrss_after_fit", "losses"):
        row[key] = None if record is None else record.get(key)
    row["delta_per_byte"] = None
    if record is not None and record["param_bytes"] + record["data_bytes"] > 0:
        row["delta_per_byte"] = record["delta"] / (record["param_bytes"] + record["data_bytes"])
    return row


def run_case(case, dtype, seed, progress, position, perturb=None):
    """Rows for bpfast and the reference (and, with ``perturb``, a deliberately wrong copy of bpfast)."""
    records, errors = {}, {}
    for impl in ("bpfast", "reference"):
        progress.show(f"[{NAME} {position}] {case.label}: {impl} in a fresh process")
        try:
            records[impl] = measure(case, impl, dtype, seed)
        except Exception as error:  # a failed probe is an ERROR row, not a failed run
            errors[impl] = f"{type(error).__name__}: {error}"
    if perturb is not None and "bpfast" in records:
        wrong = dict(records["bpfast"])
        wrong["losses"] = perturb(wrong["losses"])
        records["wrong"] = wrong

    rows = []
    base = records.get("bpfast")
    for name in ["bpfast", "reference"] + (["wrong"] if "wrong" in records else []):
        record = records.get(name)
        status, detail = status_of(name, errors, base is not None, lambda: compare(case, dtype, base, record))
        row = _row(case, dtype, name, status, detail, record if name not in errors else None)
        if status in ("baseline", "ok") and base is not None and base["delta"] > 0:
            row["ratio"] = record["delta"] / base["delta"]
        rows.append(row)
    return rows
