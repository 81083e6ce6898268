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
