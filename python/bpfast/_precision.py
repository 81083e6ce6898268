"""The precisions bpfast is built for, one row each.

A row names the dtype argument of Network and bpfast.sklearn, the ``_core`` submodule
built for it, the storage dtype (weights, gradients, optimizer state, activations and the
arrays a caller passes), the compute type (what the products read) and the tolerances the
tests hold it to. The core lists its own rows in cpp/precision.h; import fails when the two
lists disagree. Adding a precision: a row in each, and kernels for its compute type.
"""

from typing import NamedTuple

import numpy as np

from . import _core


class Precision(NamedTuple):
    name: str                # the dtype argument, and the core's name for the row
    core: object             # the _core submodule: its Network and kernels
    storage: np.dtype        # what is kept, and the dtype of every array the core takes or returns
    compute: str             # the type the products read (the storage type's name when no conversion runs)
    rtol: float              # tests: a kernel or a step against the float64 reference
    trajectory_rtol: float   # tests: many training steps against the reference's
    # (both as tests/conftest.py's relative_error: max |error| / max(1, max |expected|))


PRECISIONS = (
    Precision("float32", _core.f32, np.dtype(np.float32), "float32", rtol=1e-5, trajectory_rtol=1e-4),
    Precision("float64", _core.f64, np.dtype(np.float64), "float64", rtol=1e-12, trajectory_rtol=1e-10),
)

NAMES = tuple(p.name for p in PRECISIONS)
BY_NAME = {p.name: p for p in PRECISIONS}
# The row of each storage dtype that computes in it: what a dtype argument alone selects.
BY_STORAGE = {p.storage: p for p in PRECISIONS if p.compute == p.storage.name}
# The dtype the kernels work in when their inputs do not share one of the rows' dtypes.
WIDEST = max(BY_STORAGE, key=lambda dtype: dtype.itemsize)

if NAMES != tuple(_core.precisions) or any(
        p.core.name != p.name or p.core.storage != p.storage
        or p.core.computes_in_storage != (p.compute == p.storage.name) for p in PRECISIONS):
    raise ImportError(f"bpfast._precision lists {NAMES} but the core was built for {tuple(_core.precisions)}; "
                      "the table here and cpp/precision.h must name the same rows")


def names_text():
    """The names as a sentence lists them: "float32 or float64"."""
    return " or ".join(NAMES) if len(NAMES) <= 2 else ", ".join(NAMES[:-1]) + " or " + NAMES[-1]


def of(dtype):
    """The row that keeps and computes in dtype (a name, numpy dtype or scalar type); KeyError if none."""
    return BY_STORAGE[np.dtype(dtype)]
