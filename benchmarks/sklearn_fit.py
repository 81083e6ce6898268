"""Fit time of bpfast.sklearn against scikit-learn's MLP on the digits data set.

    python benchmarks/sklearn_fit.py [--repeats 5] [--threads 1] [--dtype float32] [--tiny]

Each case fits both estimators with the same parameters and random_state
(a fixed number of epochs: tol=0 and n_iter_no_change above max_iter),
checks that the two models agree (coefs_ to 1e-9 relative in float64; in
float32, where the two round differently and Adam's per-weight scaling lets
that drift, the final loss to 1e-3 relative), then times them interleaved, `repeats` times each after a warm-up,
and prints the medians and their ratio. --threads N limits both sides to N
threads (bpfast's pool, and BLAS through threadpoolctl when it is installed).
--tiny (for the tests) runs every case for one epoch on 200 samples, once.
"""

import argparse
import contextlib
import statistics
import time
import warnings

import numpy as np
from sklearn import neural_network as sk
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from bpfast import sklearn as bp

CASES = [
    ("adam (100,) 20 epochs", "MLPClassifier", dict(hidden_layer_sizes=(100,), solver="adam", max_iter=20)),
    ("sgd (100,) 20 epochs", "MLPClassifier", dict(hidden_layer_sizes=(100,), solver="sgd", max_iter=20)),
    ("adam (256,128) 10 epochs", "MLPClassifier", dict(hidden_layer_sizes=(256, 128), solver="adam", max_iter=10)),
    ("adam (100,) bs 32, 5 epochs", "MLPClassifier",
     dict(hidden_layer_sizes=(100,), solver="adam", batch_size=32, max_iter=5)),
    ("lbfgs (100,) 50 iterations", "MLPClassifier", dict(hidden_layer_sizes=(100,), solver="lbfgs", max_iter=50)),
    ("regressor adam (100,) 20 epochs", "MLPRegressor", dict(hidden_layer_sizes=(100,), solver="adam", max_iter=20)),
]


def limited_threads(n):
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(n)


def fit_seconds(make, X, y):
    start = time.perf_counter()
    est = make().fit(X, y)
    return time.perf_counter() - start, est


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--tiny", action="store_true", help="one epoch on 200 samples, once (a smoke test)")
    args = parser.parse_args()
    X, labels = load_digits(return_X_y=True)
    X = (X / 16).astype(args.dtype)
    if args.tiny:
        X, labels, args.repeats = X[:200], labels[:200], 1
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(f"digits {X.shape}, {args.dtype}, threads {args.threads or 'default'}, median of {args.repeats}")
    print(f"{'case':34} {'scikit-learn':>13} {'bpfast':>10} {'speed-up':>9}")
    for name, estimator, params in CASES:
        params = dict(params, random_state=0, tol=0.0, n_iter_no_change=10**6)
        if args.tiny:
            params["max_iter"] = 1
        y = labels if estimator == "MLPClassifier" else labels / 9.0
        theirs = lambda: getattr(sk, estimator)(**params)  # noqa: E731
        ours = lambda: getattr(bp, estimator)(**params, n_threads=args.threads)  # noqa: E731
        with limited_threads(args.threads):
            _, a = fit_seconds(theirs, X, y)
            _, b = fit_seconds(ours, X, y)
            if args.dtype == "float64":
                tolerance = 1e-9
                error = max(np.abs(p - q).max() / max(1.0, np.abs(q).max()) for p, q in zip(b.coefs_, a.coefs_))
            else:
                tolerance = 1e-3
                error = abs(b.loss_ - a.loss_) / abs(a.loss_)
            if error > tolerance:
                raise SystemExit(f"{name}: the models differ ({error:.2e} > {tolerance:g})")
            times = {"theirs": [], "ours": []}
            for _ in range(args.repeats):
                times["theirs"].append(fit_seconds(theirs, X, y)[0])
                times["ours"].append(fit_seconds(ours, X, y)[0])
        t_sk, t_bp = statistics.median(times["theirs"]), statistics.median(times["ours"])
        print(f"{name:34} {t_sk * 1e3:10.1f} ms {t_bp * 1e3:7.1f} ms {t_sk / t_bp:8.1f}x", flush=True)


if __name__ == "__main__":
    main()
