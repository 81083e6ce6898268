"""The optional competitors and tools: PyTorch, scikit-learn, threadpoolctl, matplotlib, tqdm, mpi4py.

None of them is needed. Each is imported on first use; one that is missing
(or listed in pretend_missing, which the tests use to check the suite without
them) makes the caller leave out the column, the line or the plot and say so.
"""

import importlib
import importlib.util

# import name -> (name shown to people, pip package)
PACKAGES = {
    "torch": ("PyTorch", "torch"),
    "sklearn": ("scikit-learn", "scikit-learn"),
    "threadpoolctl": ("threadpoolctl", "threadpoolctl"),
    "matplotlib": ("matplotlib", "matplotlib"),
    "tqdm": ("tqdm", "tqdm"),
    "mpi4py": ("mpi4py", "mpi4py"),
}

pretend_missing = set()
_cache = {}


def load(name):
    """The module ``name``, or None when it is not installed (or pretended missing)."""
    if name in pretend_missing:
        return None
    if name not in _cache:
        try:
            _cache[name] = importlib.import_module(name)
        except ImportError:
            _cache[name] = None
    return _cache[name]


def importable(name):
    """Whether ``name`` could be imported, found without importing it (which takes seconds for torch)."""
    if name in pretend_missing:
        return False
    if name in _cache:
        return _cache[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def version(name):
    """The version string of ``name``, or "not installed"."""
    module = load(name)
    if module is None:
        return "not installed"
    return str(getattr(module, "__version__", "installed"))


def missing_note(name, consequence):
    """e.g. "scikit-learn is not installed (pip install scikit-learn): no sklearn column"."""
    shown, package = PACKAGES[name]
    return f"{shown} is not installed (pip install {package}): {consequence}"


def torch():
    return load("torch")


def sklearn_neural_network():
    """sklearn.neural_network, or None."""
    if load("sklearn") is None:
        return None
    try:
        return importlib.import_module("sklearn.neural_network")
    except ImportError:
        return None


def load_digits():
    """(X, labels) of scikit-learn's bundled digits, or None without scikit-learn."""
    if load("sklearn") is None:
        return None
    try:
        from sklearn.datasets import load_digits as loader
        data = loader()
    except Exception:
        return None
    return data.data, data.target


class BlasThreads:
    """Set numpy's BLAS thread count through threadpoolctl, when importable.

    controlled is False without threadpoolctl: numpy then keeps its default.
    """

    def __init__(self):
        self.module = load("threadpoolctl")
        self.controlled = self.module is not None
        self._limits = None

    def set(self, n):
        if not self.controlled:
            return
        self.restore()
        self._limits = self.module.threadpool_limits(limits=n, user_api="blas")

    def restore(self):
        if self._limits is not None:
            self._limits.restore_original_limits()
            self._limits = None
