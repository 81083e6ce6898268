"""The Network class, written once over a table of kernels.

``bpfast.Network`` runs it on the C++ kernels of ``bpfast.kernels`` and
``bpfast.reference.Network`` on the numpy kernels of ``bpfast.reference``;
the two share every line of orchestration, so they differ only in the math.
"""

import numpy as np

from . import _validate as check

CLASSIFICATION_LOSSES = ("cross_entropy", "log_loss", "binary_cross_entropy")


class Layer:
    """One dense layer: W is (n_out, n_in), b is (n_out,), A = activation(X·Wᵀ + b)."""

    def __init__(self, W, b, activation):
        self._W, self._b, self.activation = W, b, activation

    @property
    def W(self):
        return self._W

    @W.setter
    def W(self, value):
        self._W[...] = check.parameter(value, self._W.shape, self._W.dtype, "W")

    @property
    def b(self):
        return self._b

    @b.setter
    def b(self, value):
        self._b[...] = check.parameter(value, self._b.shape, self._b.dtype, "b")

    @property
    def n_in(self):
        return self._W.shape[1]

    @property
    def n_out(self):
        return self._W.shape[0]

    def parameters(self):
        return [self._W, self._b]

    def __repr__(self):
        return f"Layer({self.n_in} -> {self.n_out}, {self.activation})"


def initial_parameters(sizes, activations, seed, dtype):
    """He initialisation for relu layers, Glorot (uniform) for the others; biases are zero.

    Weights are drawn in float64 from numpy's default Generator seeded by
    ``seed`` and then cast, so one seed gives the same net in both dtypes.
    """
    rng = np.random.default_rng(seed)
    parameters = []
    for n_in, n_out, activation in zip(sizes[:-1], sizes[1:], activations):
        if activation == "relu":
            W = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
        else:
            limit = np.sqrt(6.0 / (n_in + n_out))
            W = rng.uniform(-limit, limit, size=(n_out, n_in))
        parameters.append((np.ascontiguousarray(W, dtype=dtype), np.zeros(n_out, dtype=dtype)))
    return parameters


class NetworkBase:
    """A dense feed-forward network trained by backpropagation.

    Network([784, 128, 10], activation="relu", output="softmax",
            loss="cross_entropy", reduction="mean", dtype="float32", seed=0)

    activation: one name, or one per hidden layer, from relu, sigmoid, tanh, identity.
    output: identity, sigmoid or softmax.
    loss: squared_error, cross_entropy, log_loss or binary_cross_entropy; the
        default is cross_entropy for sigmoid and softmax outputs and
        squared_error for an identity output. cross_entropy is fused with the
        output activation and computed from the logits.
    reduction: "mean" averages the loss over the batch, "sum" adds it up.
    """

    _ops = None  # the kernel table: bpfast.kernels or bpfast.reference

    def __init__(self, sizes, activation="relu", output="identity", loss=None,
                 reduction="mean", dtype="float32", seed=None):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
            raise ValueError(f"sizes must be a list of at least two layer widths; got {sizes!r}")
        self.sizes = [check.positive_int(n, f"sizes[{i}]") for i, n in enumerate(sizes)]
        n_hidden = len(self.sizes) - 2
        if isinstance(activation, str):
            hidden = [activation] * n_hidden
        else:
            hidden = list(activation)
            if len(hidden) != n_hidden:
                raise ValueError(f"activation must be one name or a list of {n_hidden} names "
                                 f"(one per hidden layer); got {len(hidden)} names")
        for i, name in enumerate(hidden):
            check.choice(name, check.ACTIVATIONS, f"activation[{i}]" if not isinstance(activation, str)
                         else "activation")
        self.output = check.choice(output, check.OUTPUTS, "output")
        if loss is None:
            loss = "squared_error" if output == "identity" else "cross_entropy"
        self.loss_name = check.choice(loss, check.LOSSES, "loss")
        if output not in check.LOSS_OUTPUTS[loss]:
            raise ValueError(f"loss {loss!r} needs an output of {' or '.join(check.LOSS_OUTPUTS[loss])}; "
                             f"got output={output!r}")
        self.reduction = check.choice(reduction, check.REDUCTIONS, "reduction")
        self.dtype = np.dtype(check.dtype_name(dtype))
        self.seed = seed
        activations = hidden + [output]
        self.layers = [Layer(W, b, act) for (W, b), act in
                       zip(initial_parameters(self.sizes, activations, seed, self.dtype), activations)]
        self._shuffle_rng = np.random.default_rng(None if seed is None else [seed, 1])

    # ------------------------------------------------------------ properties
    @property
    def is_classifier(self):
        return self.loss_name in CLASSIFICATION_LOSSES

    @property
    def _fused_loss(self):
        """The loss kernel applied to the logits, or None when the loss takes the output."""
        return f"{self.output}_cross_entropy" if self.loss_name == "cross_entropy" else None

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        hidden = [layer.activation for layer in self.layers[:-1]]
        return (f"Network({self.sizes}, activation={hidden}, output={self.output!r}, "
                f"loss={self.loss_name!r}, dtype={self.dtype.name!r})")

    # ------------------------------------------------------------ input
    def _batch(self, X):
        return check.batch(X, self.sizes[0], self.dtype)

    def _batch_and_targets(self, X, T):
        X = self._batch(X)
        T = check.targets(T, X.shape[0], self.sizes[-1], self.dtype, self.is_classifier)
        return X, T

    # ------------------------------------------------------------ passes
    def _forward_activations(self, X, logits_out):
        """[X, A1, ..., A_L]; with logits_out the last entry is the output layer's Z."""
        ops, activations = self._ops, [X]
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            act = "identity" if (logits_out and i == last) else layer.activation
            activations.append(ops.dense_forward(activations[-1], layer.W, layer.b, act))
        return activations

    def _loss_and_gradients(self, X, T):
        """Forward, loss and backward on validated arrays: (loss, [(dW, db), ...])."""
        ops, fused = self._ops, self._fused_loss
        activations = self._forward_activations(X, logits_out=fused is not None)
        value, dA = ops.loss(fused or self.loss_name, activations[-1], T, self.reduction)
        gradients = []
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            act = "identity" if (fused and i == len(self.layers) - 1) else layer.activation
            dA, dW, db = ops.dense_backward(dA, activations[i], layer.W, activations[i + 1], act,
                                            need_dx=i > 0)
            gradients.append((dW, db))
        return value, gradients[::-1]

    # ------------------------------------------------------------ public API
    def forward(self, X):
        """The network output for X, shape (batch, n_out)."""
        return self._forward_activations(self._batch(X), logits_out=False)[-1]

    def predict(self, X):
        """Class labels for a classifier (argmax, or y > 0.5 for one unit), else the outputs."""
        Y = self.forward(X)
        if not self.is_classifier:
            return Y
        if Y.shape[1] == 1:
            return (Y[:, 0] > 0.5).astype(np.int64)
        return Y.argmax(axis=1)

    def loss(self, X, T):
        """The loss of the batch (X, T) as a float."""
        X, T = self._batch_and_targets(X, T)
        fused = self._fused_loss
        out = self._forward_activations(X, logits_out=fused is not None)[-1]
        return self._ops.loss(fused or self.loss_name, out, T, self.reduction)[0]

    def gradients(self, X, T):
        """[(dW, db), ...] per layer for the batch (X, T); the network is unchanged."""
        X, T = self._batch_and_targets(X, T)
        return self._loss_and_gradients(X, T)[1]

    def train_step(self, X, T, lr=0.1):
        """One step of gradient descent on the batch (X, T); returns that batch's loss."""
        lr = check.finite_positive(lr, "lr")
        X, T = self._batch_and_targets(X, T)
        return self._step(X, T, lr)

    def _step(self, X, T, lr):
        value, gradients = self._loss_and_gradients(X, T)
        if not np.isfinite(value):
            raise FloatingPointError(f"the loss is not finite ({value}); the weights were not updated")
        for layer, (dW, db) in zip(self.layers, gradients):
            self._ops.sgd_update(layer.W, dW, lr)
            self._ops.sgd_update(layer.b, db, lr)
        return value

    def fit(self, X, T, epochs=10, batch_size=32, lr=0.1, shuffle=True):
        """Mini-batch gradient descent; returns the mean loss of each epoch.

        An epoch's loss is the mean over its batches weighted by batch size
        (reduction "mean"), or the sum of its batch losses (reduction "sum").
        Shuffling draws from a Generator seeded by the network's seed.
        """
        epochs = check.non_negative_int(epochs, "epochs")
        batch_size = check.positive_int(batch_size, "batch_size")
        lr = check.finite_positive(lr, "lr")
        X, T = self._batch_and_targets(X, T)
        n = X.shape[0]
        history = []
        for _ in range(epochs):
            order = self._shuffle_rng.permutation(n) if shuffle else None
            total = 0.0
            for start in range(0, n, batch_size):
                rows = slice(start, start + batch_size)
                Xb, Tb = (X[rows], T[rows]) if order is None else (X[order[rows]], T[order[rows]])
                value = self._step(Xb, Tb, lr)
                total += value * Xb.shape[0] if self.reduction == "mean" else value
            history.append(total / n if self.reduction == "mean" else total)
        return history
