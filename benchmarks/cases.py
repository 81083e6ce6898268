"""The cases each suite measures, and the FLOP count of each."""

from dataclasses import dataclass


@dataclass(frozen=True)
class StepCase:
    """One training step of a net with these layer sizes on one batch."""

    sizes: tuple
    batch: int
    output: str          # output activation
    loss: str
    activation: str = "relu"  # hidden layers

    @property
    def label(self):
        return f"{'-'.join(map(str, self.sizes))} b={self.batch}"

    @property
    def flops(self):
        """About 6·batch·Σ n_in·n_out: 2 for the forward product, 4 for the two backward ones."""
        return 6 * self.batch * sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    def params(self):
        return {"sizes": list(self.sizes), "batch": self.batch, "activation": self.activation,
                "output": self.output, "loss": self.loss}


STEP_CASES = [
    StepCase((32, 64, 64, 1), 16, "identity", "squared_error"),
    StepCase((784, 128, 10), 32, "softmax", "cross_entropy"),
    StepCase((784, 256, 128, 10), 128, "softmax", "cross_entropy"),
    StepCase((784, 1024, 1024, 10), 256, "softmax", "cross_entropy"),
]


def step_cases(quick):
    return list(STEP_CASES)  # all four are cheap enough for --quick


# What each GEMM operation computes, in numpy terms.
GEMM_OPS = {
    "square": "A@B",       # (n×n)·(n×n)
    "forward": "X@W.T",    # (batch×n_in)·(n_out×n_in)ᵀ -> batch×n_out
    "weight_grad": "d.T@X",  # (batch×n_out)ᵀ·(batch×n_in) -> n_out×n_in
    "input_grad": "d@W",   # (batch×n_out)·(n_out×n_in) -> batch×n_in
}


@dataclass(frozen=True)
class GemmCase:
    """One matrix product C (m×n) = op(A)·op(B) with inner dimension k."""

    op: str
    m: int
    n: int
    k: int
    batch: int = 0
    n_in: int = 0
    n_out: int = 0

    @property
    def label(self):
        if self.op == "square":
            return f"A@B n={self.m}"
        return f"{GEMM_OPS[self.op]} b={self.batch} {self.n_in}->{self.n_out}"

    @property
    def flops(self):
        return 2 * self.m * self.n * self.k

    def params(self):
        params = {"op": self.op, "expression": GEMM_OPS[self.op], "m": self.m, "n": self.n, "k": self.k}
        if self.op != "square":
            params.update(batch=self.batch, n_in=self.n_in, n_out=self.n_out)
        return params


def square(n):
    return GemmCase("square", n, n, n)


def mlp_gemms(batch, n_in, n_out):
    """The three products of a dense layer: forward, weight gradient, input gradient."""
    shape = dict(batch=batch, n_in=n_in, n_out=n_out)
    return [GemmCase("forward", batch, n_out, n_in, **shape),
            GemmCase("weight_grad", n_out, n_in, batch, **shape),
            GemmCase("input_grad", batch, n_in, n_out, **shape)]


SQUARE_SIZES = (64, 128, 256, 512, 1024, 2048)
MLP_BATCHES = (16, 32, 64, 128, 256)
MLP_LAYERS = ((784, 128), (784, 1024), (1024, 1024))

QUICK_SQUARE_SIZES = (64, 128, 256, 512, 1024)
QUICK_MLP_BATCHES = (32, 256)
QUICK_MLP_LAYERS = ((784, 128), (1024, 1024))


def gemm_cases(quick):
    sizes, batches, layers = ((QUICK_SQUARE_SIZES, QUICK_MLP_BATCHES, QUICK_MLP_LAYERS) if quick
                              else (SQUARE_SIZES, MLP_BATCHES, MLP_LAYERS))
    cases = [square(n) for n in sizes]
    for n_in, n_out in layers:
        for batch in batches:
            cases += mlp_gemms(batch, n_in, n_out)
    return cases
