"""Drop-in replacements for scikit-learn's MLPClassifier and MLPRegressor.

    from bpfast.sklearn import MLPClassifier   # instead of sklearn.neural_network
    clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X, y)

Same constructor, methods and fitted attributes as scikit-learn's; in float64
with the same random_state a fit gives scikit-learn's model (the same initial
draws, batch order, losses, gradients and updates), computed by bpfast's
native core. Needs scikit-learn and scipy (``pip install "bpfast[sklearn]"``);
plain ``import bpfast`` does not.

Or leave the imports alone and patch scikit-learn, as scikit-learn-intelex's
patch_sklearn does::

    import bpfast.sklearn
    bpfast.sklearn.patch()                      # unpatch() restores scikit-learn's
    from sklearn.neural_network import MLPClassifier   # bpfast's

or run a script patched: ``python -m bpfast.sklearn script.py [args]``.
"""

from . import _onnx
from ._estimators import MLPClassifier, MLPRegressor
from ._patch import is_patched, patch, unpatch


def register_skl2onnx():
    """Register MLPClassifier and MLPRegressor with skl2onnx (needs the skl2onnx package), so that
    skl2onnx converts them and pipelines that hold them; see _onnx.register_skl2onnx. Calling it
    again does nothing."""
    _onnx.register_skl2onnx(MLPClassifier, MLPRegressor)


__all__ = ["MLPClassifier", "MLPRegressor", "is_patched", "patch", "register_skl2onnx", "unpatch"]
