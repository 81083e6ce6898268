"""Drop-in replacements for scikit-learn's MLPClassifier and MLPRegressor.

    from bpfast.sklearn import MLPClassifier   # instead of sklearn.neural_network
    clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X, y)

Same constructor, methods and fitted attributes as scikit-learn's; in float64
with the same random_state a fit gives scikit-learn's model (the same initial
draws, batch order, losses, gradients and updates), computed by bpfast's
native core. Needs scikit-learn and scipy (``pip install "bpfast[sklearn]"``);
plain ``import bpfast`` does not.
"""

from ._estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
