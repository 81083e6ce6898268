"""A short fingerprint of what a timed call returned, to tell that two processes timed the same thing.

A competitor timed in its own process (alone.py) returns no result to the
runner, only times. Its first call's result, reduced to a count of numbers
and their sum, says which operation it ran: the loss of the first step of a
fresh net, a matrix product, a kernel's output. The same fingerprint taken
in the runner's own process (the interleaved method) must agree with it.
"""

import math


def _numbers(result):
    """The result as a flat float64 numpy array, or None for a result that holds no numbers we can read."""
    import numpy as np
    if result is None or isinstance(result, (str, bytes)):
        return None
    if isinstance(result, (bool, int, float)):
        return np.array([float(result)])
    if isinstance(result, (tuple, list)):
        parts = [p for p in (_numbers(r) for r in result) if p is not None]
        return np.concatenate(parts) if parts else None
    if isinstance(result, dict):
        return _numbers([result[key] for key in sorted(result, key=str)])
    if hasattr(result, "detach"):  # a PyTorch tensor (bfloat16 ones too)
        return result.detach().float().numpy().astype(np.float64).ravel()
    if isinstance(result, np.ndarray) or isinstance(result, np.generic):
        return np.asarray(result, dtype=np.float64).ravel() if np.asarray(result).dtype.kind in "fiub" else None
    return None


def result_digest(result):
    """{"values": how many numbers, "sum": their sum in float64} of a call's result; None when it holds none
    (a fitted estimator, for one) or its sum is not finite."""
    values = _numbers(result)
    if values is None or values.size == 0:
        return None
    total = float(values.sum())
    return {"values": int(values.size), "sum": total} if math.isfinite(total) else None


def same_digest(a, b, rtol=1e-5):
    """Whether two digests describe the same numbers, within rtol of their sums' size (None matches None)."""
    if a is None or b is None:
        return a is None and b is None
    return a["values"] == b["values"] and abs(a["sum"] - b["sum"]) <= rtol * max(1.0, abs(a["sum"]), abs(b["sum"]))
