"""The four small-network kernels (cpp/kernels/small_net/small_net.h), one at a time, against numpy.

test_small_net.py checks the path through whole networks; here each kernel of
the active ISA runs alone through _core.f32.small_net / _core.f64.small_net,
which pad the arrays as the kernel contract asks (batch to a multiple of the
vector length, widths likewise, room past the end of W) and unpad the
results. Every output buffer starts as NaN, so a value the kernel fails to
write shows as a non-finite result.

Sizes sit on either side of the vector length (8 or 16 floats, 4 or 8
doubles) and of the tile sizes (forward tiles of 8 or 16 rows and their
halves, gradient tiles of 4 or 8 rows by 2 vectors). Tolerance: conftest's,
1e-12 in float64 and 1e-5 in float32, relative to max(1, max|expected|).

The module is skipped when the active ISA has no small-network kernels
(BPFAST_ISA=generic): there is nothing of its own to test there.
"""

import numpy as np
import pytest

from bpfast import _core
from conftest import DTYPES, assert_close, precision

LANES = {np.dtype(d): precision(d).core.small_net.lanes() for d in DTYPES}

if LANES[np.dtype(np.float64)] == 0:
    pytest.skip(f"the {_core.isa!r} ISA has no small-network kernels (small_net.lanes() is 0)",
                allow_module_level=True)

WIDTHS = (1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65)
BATCHES = (1, 5, 16, 17, 64, 128)
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
JUNK = 3.25  # a finite padding value that no result may depend on


def kernels(dtype):
    return precision(dtype).core.small_net


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def check(actual, expected, dtype, where):
    """assert_close, with the sizes at hand in the message."""
    try:
        assert_close(actual, expected, dtype)
    except AssertionError as e:
        raise AssertionError(f"{where}: {e}") from None


# ------------------------------------------------------------------ oracles
# In float64, from the inputs as the kernel saw them (already in its dtype).

def forward_oracle(X, W, b, relu):
    Z = X.astype(np.float64) @ W.astype(np.float64).T + b.astype(np.float64)
    return np.maximum(Z, 0) if relu else Z


def derivative(A, activation):
    """σ' in terms of the activation's output."""
    A = A.astype(np.float64)
    if activation == "sigmoid":
        return A * (1 - A)
    if activation == "tanh":
        return 1 - A * A
    if activation == "relu":
        return (A > 0).astype(np.float64)
    return np.ones_like(A)


def input_gradient_oracle(delta, W, A_in, activation):
    with np.errstate(invalid="ignore", over="ignore"):
        G = delta.astype(np.float64) @ W.astype(np.float64)
        if activation == "relu":  # a selection: [a > 0] keeps g or gives 0, whatever g is
            delta_in = np.where(A_in > 0, G, 0.0)
        else:
            delta_in = G * derivative(A_in, activation)
        return delta_in, delta_in.sum(axis=0)


def activation_output(rng, shape, activation, dtype):
    """Values an activation can output: (0, 1) for sigmoid, (−1, 1) for tanh, ≥ 0 with zeros for relu."""
    Z = rng.standard_normal(shape)
    if activation == "sigmoid":
        return (1 / (1 + np.exp(-Z))).astype(dtype)
    if activation == "tanh":
        return np.tanh(Z).astype(dtype)
    if activation == "relu":
        return np.maximum(Z, 0).astype(dtype)
    return Z.astype(dtype)


# ------------------------------------------------------------------- lanes

def test_lanes_are_the_vector_length_of_the_active_isa():
    expected_bytes = {"avx512": 64, "avx512_bf16": 64, "amx": 64, "avx2": 32}[_core.isa]
    assert LANES[np.dtype(np.float32)] == expected_bytes // 4
    assert LANES[np.dtype(np.float64)] == expected_bytes // 8


# --------------------------------------------------------------- transpose

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_transpose_is_exact_at_every_width(rng, dtype):
    K = kernels(dtype)
    for rows in WIDTHS + BATCHES:
        for cols in WIDTHS:
            A = randn(rng, (rows, cols), dtype)
            At = K.transpose(A)
            assert At.dtype == np.dtype(dtype)
            assert np.array_equal(At, A.T), f"rows {rows}, cols {cols}"
            assert np.array_equal(K.transpose(A, padding=JUNK), A.T), f"rows {rows}, cols {cols}"


# ----------------------------------------------------------------- forward

@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_forward_matches_numpy(rng, dtype, batch, relu):
    K = kernels(dtype)
    for n_in in WIDTHS:
        for n_out in WIDTHS:
            where = f"batch {batch}, n_in {n_in}, n_out {n_out}, relu {relu}"
            X, W, b = randn(rng, (batch, n_in), dtype), randn(rng, (n_out, n_in), dtype), randn(rng, n_out, dtype)
            A, S = K.forward(X, W, b, relu)
            assert A.dtype == S.dtype == np.dtype(dtype)
            check(A, forward_oracle(X, W, b, relu), dtype, where)
            # the samples-major copy holds the very values of the features-major output
            assert np.array_equal(S, A), where
            # ... which do not change when the copy is not asked for, nor with the padding
            A_alone, none = K.forward(X, W, b, relu, samples=False)
            assert none is None
            assert np.array_equal(A_alone, A), where
            A_junk, S_junk = K.forward(X, W, b, relu, padding=JUNK)
            assert np.array_equal(A_junk, A) and np.array_equal(S_junk, S), where


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_forward_samples_copy_from_registers_and_from_the_transposed_tail(rng, dtype, relu):
    # Tiles of whole L x L blocks write S from registers; the columns from
    # n_out rounded down to L onwards are transposed from F_out afterwards.
    L = LANES[np.dtype(dtype)]
    K = kernels(dtype)
    cases = {
        "registers only": (L, 2 * L, 4 * L),
        "tail only": (1, L - 1),
        "registers and tail": (L + 1, 2 * L - 1, 3 * L + 5),
    }
    for path, widths in cases.items():
        for n_out in widths:
            for batch in (1, L - 1, L, L + 1, 3 * L):
                where = f"{path}: batch {batch}, n_out {n_out}"
                X, W, b = randn(rng, (batch, 11), dtype), randn(rng, (n_out, 11), dtype), randn(rng, n_out, dtype)
                A, S = K.forward(X, W, b, relu)
                expected = forward_oracle(X, W, b, relu)
                check(A, expected, dtype, where)
                check(S, expected, dtype, where)
                assert np.array_equal(S, A), where


def test_forward_relu_keeps_positives_and_zeroes_the_rest(rng):
    K = kernels(np.float64)
    X = np.eye(4)
    W = np.diag([1.0, -2.0, 0.0, 3.0])
    b = np.zeros(4)
    A, S = K.forward(X, W, b, True)
    assert np.array_equal(A, np.diag([1.0, 0.0, 0.0, 3.0]))
    A, _ = K.forward(X, W, b, False)
    assert np.array_equal(A, W)


# --------------------------------------------------------- weight gradient

@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_weight_gradient_matches_numpy(rng, dtype, batch):
    K = kernels(dtype)
    for n_in in WIDTHS:
        for n_out in WIDTHS:
            where = f"batch {batch}, n_in {n_in}, n_out {n_out}"
            delta, X = randn(rng, (batch, n_out), dtype), randn(rng, (batch, n_in), dtype)
            dW, finite = K.weight_gradient(delta, X)
            assert dW.dtype == np.dtype(dtype)
            check(dW, delta.astype(np.float64).T @ X.astype(np.float64), dtype, where)
            assert finite is True, where
            dW_junk, finite_junk = K.weight_gradient(delta, X, padding=JUNK)
            assert np.array_equal(dW_junk, dW) and finite_junk is True, where


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_weight_gradient_reports_a_non_finite_value_wherever_it_lands(rng, dtype, bad):
    K = kernels(dtype)
    for batch, n_in, n_out in [(1, 1, 1), (5, 9, 7), (17, 33, 17), (16, 65, 31), (64, 16, 3)]:
        delta, X = randn(rng, (batch, n_out), dtype), randn(rng, (batch, n_in), dtype)
        # first, last and a middle position, in δ (a row of dW) and in X (a column of dW)
        for m in sorted({0, batch // 2, batch - 1}):
            for n in sorted({0, n_out // 2, n_out - 1}):
                d = delta.copy()
                d[m, n] = bad
                dW, finite = K.weight_gradient(d, X)
                assert finite is False, f"δ[{m}, {n}] = {bad}, batch {batch}, n_in {n_in}, n_out {n_out}"
                assert not np.isfinite(dW[n]).any()
                assert np.isfinite(np.delete(dW, n, axis=0)).all()
            for k in sorted({0, n_in // 2, n_in - 1}):
                x = X.copy()
                x[m, k] = bad
                dW, finite = K.weight_gradient(delta, x)
                assert finite is False, f"X[{m}, {k}] = {bad}, batch {batch}, n_in {n_in}, n_out {n_out}"
                assert not np.isfinite(dW[:, k]).any()
                assert np.isfinite(np.delete(dW, k, axis=1)).all()


def test_weight_gradient_reports_an_overflow_to_inf():
    # finite inputs whose product is too large for float32
    K = kernels(np.float32)
    delta = np.full((3, 5), 1e20, np.float32)
    X = np.ones((3, 9), np.float32)
    X[1, 4] = 1e20
    dW, finite = K.weight_gradient(delta, X)
    assert np.isinf(dW[:, 4]).all() and np.isfinite(np.delete(dW, 4, axis=1)).all()
    assert finite is False


def test_weight_gradient_finite_is_never_true_over_an_inf_near_the_largest_float():
    # Near the largest float32 the check (a sum of what was written) may
    # overflow while every value of dW stays finite; it then answers False,
    # the safe side ("dW may hold a NaN or Inf"). It must never answer True
    # when dW does hold one.
    K = kernels(np.float32)
    big = np.float32(3e38)
    for n_in in (1, 2, 17, 33):
        X = np.full((1, n_in), big, np.float32)
        X[0, -1] = np.inf
        dW, finite = K.weight_gradient(np.ones((1, 4), np.float32), X)
        assert np.isinf(dW[:, -1]).all() and np.isfinite(dW[:, :-1]).all()
        assert finite is False


# ---------------------------------------------------------- input gradient

@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_input_gradient_matches_numpy(rng, dtype, batch, activation):
    K = kernels(dtype)
    for n_in in WIDTHS:
        for n_out in WIDTHS:
            where = f"{activation}, batch {batch}, n_in {n_in}, n_out {n_out}"
            delta, W = randn(rng, (batch, n_out), dtype), randn(rng, (n_out, n_in), dtype)
            A_in = activation_output(rng, (batch, n_in), activation, dtype)
            delta_in, db_in, finite = K.input_gradient(delta, W, A_in, activation)
            assert delta_in.dtype == db_in.dtype == np.dtype(dtype)
            expected, expected_db = input_gradient_oracle(delta, W, A_in, activation)
            check(delta_in, expected, dtype, where)
            check(db_in, expected_db, dtype, where)
            assert finite is True, where
            junk = K.input_gradient(delta, W, A_in, activation, padding=JUNK)
            assert np.array_equal(junk[0], delta_in) and np.array_equal(junk[1], db_in), where
            assert junk[2] is True, where


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_input_gradient_finite_says_whether_db_holds_a_nan_or_inf(rng, dtype, activation):
    # A NaN or Inf in δ, W or A_in, at the first, last or a middle position:
    # finite must be False exactly when one reaches db_in (σ' may stop it:
    # relu drops the gradient where a ≤ 0, identity ignores A_in).
    K = kernels(dtype)
    for batch, n_in, n_out in [(1, 1, 1), (5, 9, 7), (17, 33, 17), (16, 65, 31), (64, 3, 16)]:
        delta, W = randn(rng, (batch, n_out), dtype), randn(rng, (n_out, n_in), dtype)
        A_in = activation_output(rng, (batch, n_in), activation, dtype)
        cases = []
        for bad in (np.nan, np.inf):
            for m in sorted({0, batch // 2, batch - 1}):
                for n in sorted({0, n_out - 1}):
                    cases.append((f"δ[{m}, {n}]", "delta", (m, n), bad))
                for k in sorted({0, n_in - 1}):
                    cases.append((f"A_in[{m}, {k}]", "A_in", (m, k), bad))
            for n in sorted({0, n_out - 1}):
                for k in sorted({0, n_in // 2, n_in - 1}):
                    cases.append((f"W[{n}, {k}]", "W", (n, k), bad))
        for name, which, position, bad in cases:
            args = {"delta": delta.copy(), "W": W.copy(), "A_in": A_in.copy()}
            args[which][position] = bad
            where = f"{activation}: {name} = {bad}, batch {batch}, n_in {n_in}, n_out {n_out}"
            delta_in, db_in, finite = K.input_gradient(args["delta"], args["W"], args["A_in"], activation)
            expected, expected_db = input_gradient_oracle(args["delta"], args["W"], args["A_in"], activation)
            assert finite is bool(np.isfinite(expected_db).all()), where
            assert np.array_equal(np.isfinite(db_in), np.isfinite(expected_db)), where
            assert np.array_equal(np.isfinite(delta_in), np.isfinite(expected)), where
            ok = np.isfinite(expected)
            check(delta_in[ok], expected[ok], dtype, where)


def test_input_gradient_relu_drops_a_nan_where_the_unit_was_off():
    K = kernels(np.float64)
    delta = np.array([[np.nan, 1.0]])
    W = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    A_in = np.array([[0.0, 0.0, 0.0]])  # every unit off: nothing flows back
    delta_in, db_in, finite = K.input_gradient(delta, W, A_in, "relu")
    assert np.array_equal(delta_in, np.zeros((1, 3))) and np.array_equal(db_in, np.zeros(3))
    assert finite is True
    A_in[0, 1] = 0.5  # one unit on: the NaN reaches its column
    delta_in, db_in, finite = K.input_gradient(delta, W, A_in, "relu")
    assert np.isnan(delta_in[0, 1]) and np.isnan(db_in[1]) and finite is False


# ------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_bad_shapes_are_value_errors_that_name_the_argument(dtype):
    K = kernels(dtype)
    z = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
    bad_calls = [
        ("A", lambda: K.transpose(z(3))),
        ("A", lambda: K.transpose(z(0, 3))),
        ("X", lambda: K.forward(z(4), z(2, 4), z(2), False)),
        ("X", lambda: K.forward(z(4, 0), z(2, 0), z(2), False)),
        ("W", lambda: K.forward(z(5, 4), z(2, 3), z(2), False)),
        ("W", lambda: K.forward(z(5, 4), z(2, 4, 1), z(2), False)),
        ("b", lambda: K.forward(z(5, 4), z(2, 4), z(3), False)),
        ("b", lambda: K.forward(z(5, 4), z(2, 4), z(2, 1), True)),
        ("delta", lambda: K.weight_gradient(z(5), z(5, 3))),
        ("delta", lambda: K.weight_gradient(z(0, 2), z(0, 3))),
        ("X", lambda: K.weight_gradient(z(5, 2), z(4, 3))),
        ("X", lambda: K.weight_gradient(z(5, 2), z(5))),
        ("delta", lambda: K.input_gradient(z(5, 2, 1), z(2, 3), z(5, 3), "relu")),
        ("W", lambda: K.input_gradient(z(5, 2), z(3, 3), z(5, 3), "relu")),
        ("W", lambda: K.input_gradient(z(5, 2), z(2), z(5, 3), "relu")),
        ("A_in", lambda: K.input_gradient(z(5, 2), z(2, 3), z(4, 3), "relu")),
        ("A_in", lambda: K.input_gradient(z(5, 2), z(2, 3), z(5, 4), "relu")),
        ("activation", lambda: K.input_gradient(z(5, 2), z(2, 3), z(5, 3), "softmax")),
        ("activation", lambda: K.input_gradient(z(5, 2), z(2, 3), z(5, 3), "gelu")),
    ]
    for name, call in bad_calls:
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            call()
