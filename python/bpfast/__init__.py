"""bpfast: dense feed-forward networks trained by backpropagation on a compiled C++ core.

    import bpfast
    net = bpfast.Network([784, 128, 10], activation="relu", output="softmax", seed=0)
    history = net.fit(X, labels, epochs=10, batch_size=32, lr=0.1)

``bpfast.kernels`` holds the native kernels and ``bpfast.reference`` the same
kernels and Network in pure numpy.
"""

from . import kernels, reference
from ._config import show_config
from ._tuning import tune
from ._core import get_adaptive_threads, get_num_threads, set_adaptive_threads, set_num_threads
from .network import History, Layer, Network

__all__ = ["Network", "Layer", "History", "kernels", "reference", "set_num_threads", "get_num_threads",
           "set_adaptive_threads", "get_adaptive_threads", "show_config", "tune", "__version__"]
__version__ = "0.1.0"
