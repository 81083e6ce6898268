"""bpfast.Network: the network orchestrated in Python, computed by the C++ kernels."""

from . import kernels
from ._network_base import Layer, NetworkBase

__all__ = ["Network", "Layer"]


class Network(NetworkBase):
    __doc__ = NetworkBase.__doc__
    _ops = kernels
