"""bpfast.Network: the network whose weights, optimizer state and training
loop live in the C++ core (one native call per step and per epoch)."""

import numpy as np

from . import _core
from ._network_base import History, Layer, NetworkBase

__all__ = ["Network", "Layer", "History"]


class Network(NetworkBase):
    __doc__ = NetworkBase.__doc__

    @staticmethod
    def _make_model(sizes, activations, loss, reduction, dtype):
        core = _core.f32 if np.dtype(dtype) == np.float32 else _core.f64
        return core.Model(sizes, activations, loss, reduction)
