"""Mixed precision learns as well as float32: MNIST-1D (Greydanus, the mnist1d package's data).

The protocol of the MNIST-1D paper's MLP: 40-100-100-10 with relu, Adam at 1e-2, batch 100,
6000 steps (150 epochs of the 4000 training samples); the paper reports about 68% test
accuracy. Mixed precision (float32 weights, bfloat16 products) must come within one point of
float32 as the mean over three seeds: the rounding of the products' operands (a relative
2**-8 each) is far below the noise of the gradient steps it perturbs.
"""

import warnings

import numpy as np
import pytest

import bpfast

mnist1d = pytest.importorskip("mnist1d.data", reason="the test extra installs mnist1d")

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2)
STEPS, BATCH = 6000, 100


def test_mnist1d_accuracy_in_bfloat16_is_within_one_point_of_float32():
    data = mnist1d.make_dataset(mnist1d.get_dataset_args())  # made from its templates, no download
    X, y = data["x"].astype(np.float32), data["y"]
    X_test, y_test = data["x_test"].astype(np.float32), data["y_test"]
    epochs = STEPS * BATCH // len(X)
    accuracy = {}
    for compute in ("float32", "bfloat16"):
        scores = []
        for seed in SEEDS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # bfloat16 on float32 FMAs under a forced ISA
                net = bpfast.Network([40, 100, 100, 10], output="softmax", compute=compute, seed=seed,
                                     optimizer=bpfast.optim.Adam(1e-2))
            net.fit(X, y, epochs=epochs, batch_size=BATCH)
            scores.append(float(np.mean(net.predict(X_test) == y_test)))
        accuracy[compute] = float(np.mean(scores))
    assert accuracy["float32"] > 0.6, accuracy  # the protocol works at all (the paper: about 0.68)
    assert abs(accuracy["bfloat16"] - accuracy["float32"]) <= 0.01, accuracy
