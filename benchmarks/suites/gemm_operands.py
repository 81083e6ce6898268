"""A GEMM case's operands and numpy's product of them.

The kernel suite and the numpy child (workers/numpy_child.py, another
process) both build them from here, so that the child's product is the one
the suite checks against bpfast's: the same seed, the same draws.
"""

import numpy as np


def operands(case, dtype, seed):
    """(first, second operand, expression) of the case, drawn from a Generator seeded by the seed and the sizes."""
    rng = np.random.default_rng([seed, case.m, case.n, case.k])

    def draw(*shape):
        return rng.standard_normal(shape).astype(dtype)

    if case.op == "square":
        return draw(case.m, case.k), draw(case.k, case.n), "A@B"
    if case.op == "forward":
        return draw(case.batch, case.n_in), draw(case.n_out, case.n_in), "X@W.T"
    if case.op == "weight_grad":
        return draw(case.batch, case.n_out), draw(case.batch, case.n_in), "d.T@X"
    if case.op == "input_grad":
        return draw(case.batch, case.n_out), draw(case.n_out, case.n_in), "A@B"
    raise ValueError(f"unknown GEMM op {case.op!r}")


def product(A, B, expression):
    """A callable of no arguments computing the expression with `@` (numpy arrays or PyTorch tensors)."""
    if expression == "A@B":
        return lambda: A @ B
    if expression == "X@W.T":
        return lambda: A @ B.T
    if expression == "d.T@X":
        return lambda: A.T @ B
    raise ValueError(f"unknown GEMM expression {expression!r}")
