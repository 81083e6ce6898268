"""bpfast.Network: the network whose weights, optimizer state and training
loop live in the C++ core (one native call per step and per epoch)."""

import weakref

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

    def _bind_model(self):
        # train_step as a plain function bound to the native model
        # (make_direct_train_step in bind_network.cpp): arrays already of the
        # right dtype, shape and layout, finite, with lr None or a float, go
        # straight to the core, which checks them there; every other call goes
        # on to the validating path, which converts, steps or raises. A small
        # network's step takes a few microseconds, and a Python method around
        # the call would add a tenth of one, so the function itself is this
        # network's train_step unless a subclass overrides it. The validating
        # path is held weakly: the network and its function make no cycle.
        validating = weakref.WeakMethod(self._validating_train_step)
        self._direct_train_step = self._model.direct_train_step(validating)
        if type(self).train_step is Network.train_step:
            self.train_step = self._direct_train_step

    def train_step(self, X, T, lr=None):
        return self._direct_train_step(X, T, lr)

    def _validating_train_step(self, X, T, lr=None):
        return NetworkBase.train_step(self, X, T, lr)

    # A call with wrong arguments fails here: name it as the user called it.
    _validating_train_step.__name__ = "train_step"
    _validating_train_step.__qualname__ = "Network.train_step"

    train_step.__doc__ = NetworkBase.train_step.__doc__
