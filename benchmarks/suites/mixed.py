"""Mixed precision in the suites: what `--dtype mixed_bfloat16` (a precision row of bpfast._precision that
computes in bfloat16 and keeps float32) changes in the steps, kernels (GEMM) and fit suites.

In such a run the baseline `bpfast` computes in bfloat16 (Network(dtype="float32", compute="bfloat16"),
kernels.matmul(..., compute="bfloat16")), and the same case also times, each in turn with the others:

  bpfast float32   bpfast with the same float32 arrays computing in float32 (what compute="bfloat16" saves)
  torch            PyTorch in float32, where the suite has it
  torch autocast   PyTorch under torch.autocast("cpu", dtype=torch.bfloat16): float32 weights and inputs,
                   each product converted to bfloat16 by autocast on every call (bpfast's counterpart)
  torch bf16       (GEMM suite only) PyTorch's `@` on bfloat16 tensors converted once before timing, result
                   in bfloat16: PyTorch's best case, no conversion timed

Every competitor of a mixed run is checked against the bfloat16 baseline with a looser tolerance
(MIXED_TOLERANCE; in the GEMM suite 4 bfloat16 epsilons plus the float32 one): bfloat16 operands carry a
relative rounding error up to 2**-9 each, so float32 results differ from them by about 1e-3 relative (a
product) to 1e-2 (a step's gradient); the check is there to catch a different computation.
Their rows carry precision "float32" (row["precision"]): their % of peak is against the float32 probe,
and the bfloat16 rows' against the bfloat16 probe (fma_probe.annotate).
"""

import contextlib

import numpy as np

from bpfast import _precision

FLOAT32_TWIN = "bpfast float32"
AUTOCAST = "torch autocast"
TORCH_BF16 = "torch bf16"
SUITES = ("steps", "kernels", "fit")  # the suites that take a mixed precision (elementwise: no products)
# competitors of a mixed run that compute in float32; every other one computes in the run's precision
FLOAT_COMPETITORS = (FLOAT32_TWIN, "torch", "numpy", "numpy plain", "sklearn")
BF16_EPS = 2.0 ** -8  # the spacing of bfloat16 numbers just above 1 (8 significand bits)


def row(dtype):
    """bpfast._precision's row named dtype."""
    return _precision.BY_NAME[dtype]


def is_mixed(dtype):
    """Whether the precision named dtype computes in another type than it keeps."""
    p = row(dtype)
    return p.compute != p.storage.name


def storage(dtype):
    """The name of the dtype the arrays of precision dtype are kept in ("float32" for mixed_bfloat16)."""
    return row(dtype).storage.name


def net_kwargs(dtype):
    """Network(...)'s dtype and compute arguments for the precision named dtype."""
    p = row(dtype)
    return {"dtype": p.storage.name, "compute": None if p.compute == p.storage.name else p.compute}


def float_dtype(dtype):
    """The float precision (its storage type) a float competitor of a run in precision dtype uses."""
    return storage(dtype)


def precision_of(name, dtype):
    """The precision competitor `name` computes in, in a run of precision dtype."""
    if is_mixed(dtype) and name in FLOAT_COMPETITORS:
        return storage(dtype)
    return dtype


def autocast(torch):
    """The context PyTorch's bfloat16 competitors run their forward (and loss) in."""
    return torch.autocast("cpu", dtype=torch.bfloat16)


def nullcontext():
    return contextlib.nullcontext()


# The tolerance of every check in a mixed run (a float32 competitor against the bfloat16 baseline, and so,
# for simplicity, every competitor): relative loss, normwise relative gradient and weights.
MIXED_TOLERANCE = {"loss": 2e-2, "grad": 5e-2, "params": 2e-2}


def to_numpy(tensor):
    """A tensor's values as a float32 array (bfloat16 tensors converted)."""
    import torch
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return np.asarray(tensor.detach().numpy())
