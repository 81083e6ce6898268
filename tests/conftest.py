"""Shared helpers for the bpfast tests.

Tolerances come from the precision table (bpfast._precision), one row per dtype:
rtol for a kernel or a step against the reference (1e-12 in float64, 1e-5 in
float32), trajectory_rtol for many training steps (1e-10 and 1e-4), each as a
maximum absolute error divided by max(1, max|expected|).
"""

import os
from pathlib import Path

import numpy as np
import pytest

# No timing of the GEMM kernels at the first product (bpfast._tuning): the built-in table
# chooses, so that no test waits for it or depends on this machine's cache. Set before bpfast
# makes its choice; tests/kernels/test_tuning.py times them on purpose, with a cache of its own.
os.environ.setdefault("BPFAST_TUNE", "0")

from bpfast import _precision  # noqa: E402

# The rows that compute in their storage dtype (a dtype argument alone selects one);
# mixed precision (float32 kept, bfloat16 products) has its own tests.
DTYPES = tuple(_precision.BY_STORAGE)
DTYPES = tuple(d.type for d in DTYPES)
TOLERANCE = {p.storage: p.rtol for p in _precision.BY_STORAGE.values()}


def precision(dtype):
    """The precision table's row for this dtype: its core submodule, dtypes and tolerances."""
    return _precision.of(dtype)


def tolerance(dtype):
    """The relative tolerance for a kernel-vs-reference comparison in this dtype."""
    return TOLERANCE[np.dtype(dtype)]


def trajectory_tolerance(dtype):
    """The relative tolerance for a training trajectory against the reference's in this dtype."""
    return precision(dtype).trajectory_rtol


def relative_error(actual, expected):
    """max|actual − expected| / max(1, max|expected|), computed in float64."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    if expected.size == 0:
        return 0.0
    scale = max(1.0, float(np.max(np.abs(expected))))
    return float(np.max(np.abs(actual - expected))) / scale


def assert_close(actual, expected, dtype, rtol=None):
    """Assert actual matches expected to the tolerance of dtype (or rtol), scaled by max(1, max|expected|)."""
    rtol = tolerance(dtype) if rtol is None else rtol
    expected_arr = np.asarray(expected, dtype=np.float64)
    assert np.all(np.isfinite(expected_arr)), "the oracle itself is not finite"
    assert np.all(np.isfinite(np.asarray(actual, dtype=np.float64))), f"not finite: {actual!r}"
    err = relative_error(actual, expected)
    assert err <= rtol, (f"relative error {err:.3e} > {rtol:.1e}\n"
                         f"actual (first values):   {np.ravel(actual)[:5]}\n"
                         f"expected (first values): {np.ravel(expected)[:5]}")


def batch_for_output(rng, sizes, output, batch, dtype=np.float32):
    """(X, T): a standard normal batch for a net of these sizes, T as its output wants it: one-hot
    rows for softmax, 0/1 for sigmoid, standard normal for identity."""
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    n_out = sizes[-1]
    if output == "softmax":
        T = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, batch)]
    elif output == "sigmoid":
        T = (rng.random((batch, n_out)) < 0.5).astype(dtype)
    else:
        T = rng.standard_normal((batch, n_out)).astype(dtype)
    return X, T


def snapshot(net):
    """Copies of every W and b of a network."""
    return [(layer.W.copy(), layer.b.copy()) for layer in net.layers]


def assert_unchanged(net, before):
    """Every W and b of net is bit-for-bit equal to the snapshot."""
    after = snapshot(net)
    assert len(after) == len(before)
    for (W0, b0), (W1, b1) in zip(before, after):
        assert np.array_equal(W0, W1)
        assert np.array_equal(b0, b1)


@pytest.fixture
def rng():
    """A fresh, seeded Generator per test."""
    return np.random.default_rng(20240611)


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return np.dtype(request.param)


ROOT = Path(__file__).resolve().parent.parent  # the repository: benchmarks/ and README.md sit here
