"""Pure-numpy reference: the oracle for the tests and the baseline for the benchmarks.

Three layers, each importing only the ones before it:
  kernels   every kernel of ``bpfast.kernels``, same names and signatures (numpy only)
  engine    ``Engine``, the numpy twin of the native network (the kernels and numpy only)
  Network   ``bpfast.Network`` itself, running on ``Engine`` instead of the C++ core
The kernels and the engine import nothing of bpfast, so a bug in the product
cannot leak into the answers it is checked against.
"""

from .. import network
from .engine import Engine
from .kernels import *  # noqa: F403  (the kernels' __all__)
from .kernels import __all__ as _KERNELS

__all__ = [*_KERNELS, "Engine", "Network"]


class Network(network.Network):
    """bpfast.Network over the numpy engine of this package (same API, same checks)."""

    @staticmethod
    def _new_engine(sizes, activations, loss, reduction, precision):
        return Engine(sizes, activations, loss, reduction, precision.storage, precision.compute)

    @staticmethod
    def _parameter_shapes(sizes):
        return Engine.parameter_shapes(sizes)

    @staticmethod
    def _optimizer_state_shapes(optimizer, n_parameters):
        return Engine.optimizer_state_shapes(optimizer.settings(), n_parameters)
