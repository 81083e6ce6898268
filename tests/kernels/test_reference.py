"""bpfast.reference stands apart from the product it checks.

Its kernels import numpy and the standard library only, and its engine those
and the kernels: read from their import statements, and shown by running them
in a fresh interpreter where no module of bpfast can be imported. And the
engine's scikit-learn objective, which the tests of the core take as their
oracle, against its closed form and central finite differences in float64.
"""

import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from bpfast import reference

PACKAGE = pathlib.Path(reference.__file__).parent


def imported_modules(path):
    """Every module that a file's import statements name; relative ones keep their dots."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def outside_numpy_and_stdlib(names):
    return {n for n in names if n.split(".")[0] not in sys.stdlib_module_names | {"numpy"}}


def test_the_kernels_import_numpy_and_the_standard_library_only():
    assert outside_numpy_and_stdlib(imported_modules(PACKAGE / "kernels.py")) == set()


def test_the_engine_imports_the_reference_kernels_numpy_and_the_standard_library_only():
    assert outside_numpy_and_stdlib(imported_modules(PACKAGE / "engine.py")) == {".kernels"}


def train(Engine):
    """(epoch losses, final flat parameters) of three epochs of a small net on fixed data."""
    import types
    import numpy as np
    engine = Engine([3, 4, 2], ["tanh", "softmax"], "softmax_cross_entropy", "mean", np.float64)
    # plain SGD at 0.1, described field by field as the engine reads an OptimizerConfig
    settings = dict(kind="sgd", lr=0.1, momentum=0.0, nesterov=False, beta1=0.9, beta2=0.999, eps=1e-8,
                    weight_decay=0.0, decay_bias=False, clip_norm=0.0, schedule="constant", step_size=1,
                    gamma=1.0, power_t=0.0, form="pytorch")
    engine.set_optimizer(types.SimpleNamespace(fields=tuple(settings), **settings))
    rng = np.random.default_rng(0)
    for p in engine.parameters():
        p[...] = rng.normal(size=p.shape)
    X, labels = rng.normal(size=(10, 3)), rng.integers(0, 2, 10)
    losses = [engine.train_epoch(X, None, labels, None, 4)[0] for _ in range(3)]
    return losses, engine.flat_parameters().tolist()


STANDALONE = """
import importlib, json, sys, types
sys.modules["bpfast"] = None  # from here on, importing any part of bpfast fails
package = types.ModuleType("oracle")
package.__path__ = [sys.argv[1]]
sys.modules["oracle"] = package
kernels = importlib.import_module("oracle.kernels")
losses, params = train(importlib.import_module("oracle.engine").Engine)
print(json.dumps({"kernels": kernels.__all__, "losses": losses, "params": params,
                  "bpfast": sorted(m for m in sys.modules if m.startswith("bpfast") and sys.modules[m])}))
"""


def test_kernels_and_engine_run_where_bpfast_cannot_be_imported():
    import inspect
    import json
    done = subprocess.run([sys.executable, "-c", inspect.getsource(train) + STANDALONE, str(PACKAGE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    alone = json.loads(done.stdout)
    assert alone["bpfast"] == []
    assert alone["kernels"] == [n for n in reference.__all__ if n not in ("Engine", "Network")]
    assert alone["losses"][-1] < alone["losses"][0]
    # The same code run here, through bpfast.reference, gives the same numbers to the bit.
    assert train(reference.Engine) == (alone["losses"], alone["params"])


@pytest.mark.parametrize("loss", ["squared_error", "poisson", "softmax_cross_entropy"])
@pytest.mark.parametrize("weighted", [False, True])
def test_the_engines_objective_is_the_weighted_loss_plus_the_l2_term(loss, weighted):
    """value_scale·Σ w_i·loss_i / N + ½·l2·Σ‖W‖² / N with N = Σ w_i, loss_i from the loss kernel on
    row i; its gradients match central differences of that value with value_scale 1 (1e-6 relative,
    float64)."""
    rng = np.random.default_rng(4)
    output = "softmax" if loss == "softmax_cross_entropy" else "identity"
    engine = reference.Engine([4, 5, 3], ["tanh", output], loss, "mean", np.float64)
    for p in engine.parameters():
        p[...] = rng.normal(scale=0.5, size=p.shape)
    engine.set_objective(l2=0.3, value_scale=0.7)
    n = 7
    X = rng.normal(size=(n, 4))
    if loss == "softmax_cross_entropy":
        T = np.eye(3)[rng.integers(0, 3, n)]
    else:
        T = rng.poisson(1.0, size=(n, 3)).astype(np.float64) if loss == "poisson" else rng.normal(size=(n, 3))
    weights = rng.uniform(0.2, 3.0, n) if weighted else None
    w = np.ones(n) if weights is None else weights
    value = engine.compute_gradients(X, T, None, weights)
    W0, b0, W1, b1 = engine.parameters()
    Z = reference.dense_forward(reference.dense_forward(X, W0, b0, "tanh"), W1, b1, "identity")
    rows = [reference.loss(loss, Z[i:i + 1], T[i:i + 1], "sum")[0] for i in range(n)]
    expected = 0.7 * np.dot(w, rows) / w.sum() + 0.5 * 0.3 * (np.sum(W0 ** 2) + np.sum(W1 ** 2)) / w.sum()
    assert abs(value - expected) <= 1e-12 * max(1.0, abs(expected))
    engine.set_objective(l2=0.3)  # value_scale scales the reported value only, not the gradients
    flat, grads = engine.flat_parameters(), engine.flat_gradients().copy()
    differences = np.empty_like(flat)
    for i in range(flat.size):
        kept, h = flat[i], 1e-6
        flat[i] = kept + h
        up = engine.loss(X, T, None, weights)
        flat[i] = kept - h
        differences[i] = (up - engine.loss(X, T, None, weights)) / (2 * h)
        flat[i] = kept
    np.testing.assert_allclose(grads, differences, rtol=1e-6, atol=1e-8)
