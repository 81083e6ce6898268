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
    # float32 kept, bfloat16 products summed in float32; against the reference that rounds the same operands
    # the same way, a step differs by float32 sums and by the rare operand whose float32 value sits at a bfloat16
    # rounding boundary (a relative change of 2**-8 in one term); the trajectory tolerance allows such flips to grow
    Precision("mixed_bfloat16", _core.f32_bf16, np.dtype(np.float32), "bfloat16", rtol=1e-3, trajectory_rtol=2e-2),
)

NAMES = tuple(p.name for p in PRECISIONS)
BY_NAME = {p.name: p for p in PRECISIONS}
# The row of each storage dtype that computes in it: what a dtype argument alone selects.
# (NAMES are the rows' names; a dtype argument names a storage dtype, DTYPE_NAMES.)
BY_STORAGE = {p.storage: p for p in PRECISIONS if p.compute == p.storage.name}
# The dtype the kernels work in when their inputs do not share one of the rows' dtypes.
WIDEST = max(BY_STORAGE, key=lambda dtype: dtype.itemsize)
DTYPE_NAMES = tuple(dtype.name for dtype in BY_STORAGE)

if NAMES != tuple(_core.precisions) or any(
        p.core.name != p.name or p.core.storage != p.storage
        or p.core.computes_in_storage != (p.compute == p.storage.name) for p in PRECISIONS):
    raise ImportError(f"bpfast._precision lists {NAMES} but the core was built for {tuple(_core.precisions)}; "
                      "the table here and cpp/precision.h must name the same rows")


COMPUTES = tuple(dict.fromkeys(p.compute for p in PRECISIONS))  # what a compute argument may name


def row(dtype, compute=None):
    """The row that keeps dtype (a name from NAMES' storage dtypes, checked by the caller) and computes
    in compute (None: in dtype itself); ValueError naming compute when no row does."""
    dtype = np.dtype(dtype)
    if compute is None or (isinstance(compute, str) and compute == dtype.name):
        return BY_STORAGE[dtype]
    for p in PRECISIONS:
        if p.storage == dtype and p.compute == compute:
            return p
    if isinstance(compute, str) and compute in COMPUTES:
        keeps = [p.storage.name for p in PRECISIONS if p.compute == compute]
        raise ValueError(f"compute={compute!r} keeps {' or '.join(keeps)} (its master weights): dtype must be "
                         f"{' or '.join(keeps)}; got dtype={dtype.name!r}")
    raise ValueError(f"compute must be None (the dtype), {' or '.join(repr(c) for c in COMPUTES)}; got {compute!r}")


_warned = set()  # the precisions already looked at


def warn_if_emulated(precision):
    """Once per process: a RuntimeWarning when precision computes in bfloat16 on a CPU without
    bfloat16 instructions (AMX, AVX512_BF16), where the products run on float32 FMAs and are no
    faster than float32 compute (the rounding, and so the results, are the same)."""
    if precision.compute != "bfloat16" or precision.name in _warned:
        return
    _warned.add(precision.name)  # asked once: the kernel is chosen once per process
    kernel = _core.build_info()["gemm_kernel"]["bfloat16"]
    if kernel.startswith(("amx_bf16", "avx512_bf16_")):
        return
    import warnings
    warnings.warn(f"compute='bfloat16' runs on {kernel}: neither AMX nor AVX512_BF16 is in use (not on this "
                  "CPU, or BPFAST_ISA chose another path), so the bfloat16 products run on float32 FMAs and are "
                  "no faster than compute='float32' (the results are the same as on those instructions, to "
                  "float32 rounding)", RuntimeWarning, stacklevel=3)


def names_text():
    """The dtype names as a sentence lists them: "float32 or float64"."""
    names = DTYPE_NAMES
    return " or ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " or " + names[-1]


def of(dtype):
    """The row that keeps and computes in dtype (a name, numpy dtype or scalar type); KeyError if none."""
    return BY_STORAGE[np.dtype(dtype)]
