"""patch() and unpatch(): bpfast's estimators in scikit-learn's place, as
scikit-learn-intelex's patch_sklearn puts its own there."""

import importlib

# (module, name) that patch() replaces: scikit-learn's public import path of each
# estimator. scikit-learn's private module (sklearn.neural_network._multilayer_perceptron)
# keeps its classes: they are scikit-learn's implementation, and bpfast's estimators
# take their parameter constraints from them.
_TARGETS = (
    ("sklearn.neural_network", "MLPClassifier"),
    ("sklearn.neural_network", "MLPRegressor"),
)

# (module, name) -> scikit-learn's class, while patched; empty otherwise.
_ORIGINALS = {}


def _replacements():
    from ._estimators import MLPClassifier, MLPRegressor

    return {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}


def patch():
    """Put bpfast's MLPClassifier and MLPRegressor in scikit-learn's place.

    After ``patch()``, ``from sklearn.neural_network import MLPClassifier``
    (and ``MLPRegressor``, and the attributes ``sklearn.neural_network.MLPClassifier``
    and ``.MLPRegressor``) give ``bpfast.sklearn``'s estimators, so that code
    written for scikit-learn trains on bpfast's core unchanged. Names imported
    *before* the call keep the class they were bound to: patch first, then
    import (or run the script with ``python -m bpfast.sklearn script.py``).

    Calling it again while patched does nothing. ``unpatch()`` restores
    scikit-learn's classes; ``is_patched()`` tells which are in place.
    """
    if _ORIGINALS:
        return
    replacements = _replacements()
    originals = {}
    for module_name, name in _TARGETS:
        module = importlib.import_module(module_name)
        originals[(module_name, name)] = getattr(module, name)
    for (module_name, name), _ in originals.items():
        setattr(importlib.import_module(module_name), name, replacements[name])
    _ORIGINALS.update(originals)


def unpatch():
    """Restore scikit-learn's own MLPClassifier and MLPRegressor (the very classes
    that were there before ``patch()``). Does nothing when not patched."""
    while _ORIGINALS:
        (module_name, name), original = _ORIGINALS.popitem()
        setattr(importlib.import_module(module_name), name, original)


def is_patched():
    """True between ``patch()`` and ``unpatch()``: sklearn.neural_network's
    MLPClassifier and MLPRegressor are bpfast's."""
    return bool(_ORIGINALS)
