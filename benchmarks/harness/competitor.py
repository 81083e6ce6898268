"""What a suite hands the runner for each competitor of a case."""

from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Competitor:
    """name; check() -> a result to compare with bpfast's; build() -> the callable to time.

    check and build are separate so that the timed callable starts from a
    fresh state (a training step changes the weights).
    """

    name: str
    check: Callable[[], Any]
    build: Callable[[], Callable[[], Any]]


@dataclass
class Verdict:
    """The outcome of comparing a competitor's result with bpfast's."""

    ok: bool
    detail: str   # e.g. "rel err 3.1e-07 (tol 2.0e-04)"
    error: float  # the largest relative error found


BASELINE = "bpfast"


def relative_error(value, base):
    """max |value − base| / max(1, max |base|) in float64 (the tests' measure); inf when the shapes differ."""
    import numpy as np
    value, base = np.asarray(value, dtype=np.float64), np.asarray(base, dtype=np.float64)
    if value.shape != base.shape:
        return float("inf")
    if base.size == 0:
        return 0.0
    return float(np.max(np.abs(value - base)) / max(1.0, float(np.max(np.abs(base)))))


def status_of(name, errors, have_baseline, compare):
    """(status, detail) of competitor `name`: ERROR when it failed (errors: name -> text) or
    bpfast did (have_baseline false: nothing to check against), "baseline" for bpfast, else
    "ok" or "WRONG" by compare() -> Verdict (a result that cannot even be compared is WRONG)."""
    if name in errors:
        return "ERROR", errors[name]
    if name == BASELINE:
        return "baseline", "the result the others are checked against"
    if not have_baseline:
        return "ERROR", "bpfast failed, nothing to check against"
    try:
        verdict = compare()
    except Exception as error:
        return "WRONG", f"could not be compared: {type(error).__name__}: {error}"
    return ("ok" if verdict.ok else "WRONG"), verdict.detail
