"""Peak memory of one fit, measured inside a fresh process (run by memory_suite.py).

    python benchmarks/workers/memory_probe.py '{"impl": "bpfast", "sizes": [784, 256, 10], "samples": 10000, ...}'

Prints one JSON object. Steps: import numpy and bpfast; make the synthetic
data (float X drawn directly in the working dtype, so that no temporary copy
inflates the peak; int64 labels); note the resident set size (the baseline);
reset the kernel's peak-RSS mark; build the net and fit it; read the peak.
The growth (peak − baseline) thus includes building the net: its weights, and
the float64 draw of the initial weights, which is cast and freed at once.

Where the peak comes from: on Linux, VmHWM in /proc/self/status, after
writing 5 to /proc/self/clear_refs at the baseline, so that it is the peak
from the baseline on. resource.getrusage(RUSAGE_SELF).ru_maxrss is recorded
too, but it is not used there: a process started by subprocess inherits its
parent's peak in ru_maxrss (the kernel carries the pre-exec peak over), so
in a child of the benchmark runner it reports the runner's size. Elsewhere
(no /proc) ru_maxrss after import and after fit are the baseline and the peak.
"""

import json
import resource
import sys
import time


def _status_kib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _ru_maxrss_bytes():
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024  # bytes on macOS, KiB on Linux


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main(spec):
    import numpy as np
    import bpfast  # bpfast.reference comes with it, so both implementations start from the same imports

    dtype = np.dtype(spec["dtype"])
    sizes = spec["sizes"]
    rng = np.random.default_rng([spec["seed"], 6])
    X = rng.standard_normal((spec["samples"], sizes[0]), dtype=dtype)
    labels = rng.integers(0, sizes[-1], size=spec["samples"])

    ru_after_import = _ru_maxrss_bytes()
    rss = _status_kib("VmRSS")
    reset = rss is not None and _reset_peak()
    if reset:
        method, baseline = "VmHWM after a clear_refs reset", rss * 1024
    else:
        method, baseline = "ru_maxrss", ru_after_import

    cls = bpfast.Network if spec["impl"] == "bpfast" else bpfast.reference.Network
    start = time.perf_counter()
    net = cls(sizes, activation="relu", output="softmax", loss="cross_entropy", dtype=dtype, seed=spec["seed"])
    after_build = _status_kib("VmRSS")
    history = net.fit(X, labels, epochs=spec["epochs"], batch_size=spec["batch"], lr=spec["lr"], shuffle=True)
    fit_s = time.perf_counter() - start

    peak = _status_kib("VmHWM") * 1024 if reset else _ru_maxrss_bytes()
    param_bytes = sum(p.nbytes for p in net.parameters())
    return {
        "impl": spec["impl"], "method": method,
        "baseline_rss": baseline, "peak_rss": peak, "delta": max(0, peak - baseline),
        "rss_after_build": None if after_build is None else after_build * 1024,
        "param_bytes": param_bytes, "data_bytes": X.nbytes + labels.nbytes,
        "ru_maxrss_after_import": ru_after_import, "ru_maxrss_after_fit": _ru_maxrss_bytes(),
        "fit_s": fit_s, "losses": [float(v) for v in history],
        "threads": bpfast.get_num_threads(),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
