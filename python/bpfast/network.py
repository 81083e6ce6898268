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

    def train_step(self, X, T, lr=None):
        # The plain case (arrays already of the right dtype, shape and layout,
        # finite, lr None or a float) goes straight to the core, which checks
        # it there; anything else takes the validating path, which converts
        # or raises.
        result = self._try_train_step(X, T, lr)
        if result.__class__ is float:
            return result
        if result is None:
            return super().train_step(X, T, lr)
        self._raise_not_finite(result[2])

    train_step.__doc__ = NetworkBase.train_step.__doc__
