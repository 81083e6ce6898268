"""The reference engine: the numpy twin of the native network (cpp/model/network.h).

It runs on the reference kernels of this package and, like them, imports
nothing of bpfast: its limits, its optimizer state's sizes and its
learning-rate schedules are written here, from the core's definitions.
"""

import numpy as np

from .kernels import adam_update, clip_by_global_norm, dense_backward, dense_forward, loss, sgd_momentum_update

__all__ = ["Engine"]

# The most values one buffer may hold (cpp/runtime/sizes.h).
MAX_VALUES = 2 ** 48


class Engine:
    """The numpy twin of the native network in cpp/model/network.h, method for method.

    Weights live in one flat array (W_0, b_0, W_1, b_1, ...) seen through
    per-layer views; gradients and optimizer state share that layout.
    ``loss`` names a loss kernel; the *_cross_entropy ones (and poisson and
    the clipped log-losses) take the logits, so the output layer then runs
    without its activation. set_objective and sample weights are
    scikit-learn's terms of the loss (cpp/model/network.h Objective).
    """

    def __init__(self, sizes, activations, loss, reduction, dtype, compute=None):
        self.sizes, self.activations = list(sizes), list(activations)
        self.loss_name, self.reduction, self.dtype = loss, reduction, np.dtype(dtype)
        # what the products read: None (the dtype itself) or "bfloat16" (float32 kept, operands rounded)
        self.compute = None if compute in (None, self.dtype.name) else compute
        self.takes_logits = loss in ("softmax_cross_entropy", "sigmoid_cross_entropy", "poisson",
                                     "softmax_clipped_log_loss", "sigmoid_clipped_log_loss")
        self.objective = (0.0, 1.0)
        total = 0
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            # the core's limit on the values of one buffer (cpp/runtime/sizes.h), checked as it does
            layer = n_out * n_in + n_out
            for what, count in (("a weight matrix", n_out * n_in), ("a layer", layer), ("the parameters", total + layer)):
                if count > MAX_VALUES:
                    raise ValueError(f"layer {l} ({n_in} -> {n_out}) is too large: {what} would hold more than "
                                     "2^48 values")
            total += layer
        self._params = np.zeros(total, self.dtype)
        self._grads = np.zeros(total, self.dtype)
        self.steps = self.epochs = 0
        self.config = None  # no optimizer until set_optimizer (Network sets its own at once)
        self._m = self._v = np.zeros(0, self.dtype)

    @staticmethod
    def parameter_shapes(sizes):
        """[(n_out, n_in), (n_out,), ...]: the shapes of W_0, b_0, W_1, b_1, ..., laid out in that order."""
        shapes = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            shapes += [(n_out, n_in), (n_out,)]
        return shapes

    def _views(self, flat):
        views, offset = [], 0
        for shape in self.parameter_shapes(self.sizes):
            size = int(np.prod(shape))
            views.append(flat[offset:offset + size].reshape(shape))
            offset += size
        return views

    def parameters(self):
        """[W_0, b_0, W_1, b_1, ...] as views of the flat parameter buffer."""
        return self._views(self._params)

    def gradients(self):
        """[dW_0, db_0, ...] as views of the flat gradient buffer (from the last compute_gradients)."""
        return self._views(self._grads)

    def flat_parameters(self):
        """The flat parameter buffer that parameters() views."""
        return self._params

    def flat_gradients(self):
        """The flat gradient buffer that gradients() views (what a process group sums in place)."""
        return self._grads

    def optimizer_state(self):
        """(m, v): momentum or Adam's first moment, and Adam's second moment (empty when unused)."""
        return self._m, self._v

    def set_counters(self, steps, epochs):
        """Set the step and epoch counters the schedules and Adam's bias correction read."""
        self.steps, self.epochs = steps, epochs

    @staticmethod
    def optimizer_state_shapes(settings, n_parameters):
        """((m,), (v,)): momentum or Adam's first moment, and Adam's second, under these settings."""
        adam = settings.kind != "sgd"
        return (n_parameters if adam or settings.momentum != 0 else 0,), (n_parameters if adam else 0,)

    def set_optimizer(self, settings):
        """Use the optimizer that these settings describe (an OptimizerConfig, read field by field as
        its `fields` name them); its state starts afresh."""
        if settings.step_size < 1:
            raise ValueError("step_size must be at least 1")
        if settings.form not in ("pytorch", "sklearn"):
            raise ValueError(f"form must be one of pytorch, sklearn; got {settings.form!r}")
        self.config = {name: getattr(settings, name) for name in settings.fields}
        m_shape, v_shape = self.optimizer_state_shapes(settings, self._params.size)
        self._m, self._v = np.zeros(m_shape, self.dtype), np.zeros(v_shape, self.dtype)
        self.steps = self.epochs = 0

    def _learning_rate(self, lr):
        """The rate of the next step from the base rate lr: constant; step, lr·γ^⌊epochs / step_size⌋;
        inverse_scaling, lr / (1 + steps)^power_t (cpp/model/optim.cpp)."""
        c = self.config
        if c["schedule"] == "step":
            return lr * c["gamma"] ** (self.epochs // c["step_size"])
        if c["schedule"] == "inverse_scaling":
            return lr / (1.0 + self.steps) ** c["power_t"]
        return lr

    # -------------------------------------------------------- passes
    def _targets(self, T, labels, batch):
        if T is not None:
            return T
        n_out = self.sizes[-1]
        if n_out == 1:
            return labels.astype(self.dtype).reshape(-1, 1)
        one_hot = np.zeros((batch, n_out), self.dtype)
        one_hot[np.arange(batch), labels] = 1
        return one_hot

    def _forward(self, X, logits_out):
        """[X, A_1, ..., A_L]; with logits_out the last entry is the output layer's Z."""
        params, outputs = self.parameters(), [X]
        for l, act in enumerate(self.activations):
            if logits_out and l == len(self.activations) - 1:
                act = "identity"
            outputs.append(dense_forward(outputs[-1], params[2 * l], params[2 * l + 1], act, self.compute))
        return outputs

    def set_objective(self, l2=0.0, value_scale=1.0):
        """scikit-learn's terms of the loss: l2 adds ½·l2·Σ‖W‖²/N to every batch loss and l2·W/N
        to dW (N the batch size or its sum of sample weights); reported data losses are
        multiplied by value_scale."""
        if not (np.isfinite(l2) and l2 >= 0):
            raise ValueError("l2 must be a finite number >= 0")
        if not (np.isfinite(value_scale) and value_scale > 0):
            raise ValueError("value_scale must be a finite positive number")
        self.objective = (float(l2), float(value_scale))

    def _objective(self, Y, T, weights):
        """(value, dL/dY, N) of the loss of outputs Y: the loss kernel's, or with sample
        weights Σ w_i·loss_i / N (N = Σ w_i; 1 for reduction sum), times value_scale,
        plus the L2 term ½·l2·Σ‖W‖² / N."""
        l2, value_scale = self.objective
        mean = self.reduction == "mean"
        if weights is None:
            value, dY = loss(self.loss_name, Y, T, self.reduction)
            norm = float(Y.shape[0]) if mean else 1.0
        else:
            norm = float(np.sum(weights, dtype=np.float64)) if mean else 1.0
            rows = [loss(self.loss_name, Y[i:i + 1], T[i:i + 1], "sum") for i in range(Y.shape[0])]
            value = sum(float(w) * v for w, (v, _) in zip(weights, rows)) / norm
            dY = np.concatenate([g for _, g in rows]) * (weights.astype(np.float64) / norm)[:, None]
            dY = dY.astype(Y.dtype)
        value *= value_scale
        if l2 != 0:
            value += 0.5 * l2 * sum(float(np.sum(W.astype(np.float64) ** 2)) for W in self.parameters()[0::2]) / norm
        return value, dY, norm

    def _loss_and_backward(self, X, T, weights=None, ready=None):
        outputs = self._forward(X, self.takes_logits)
        value, dA, norm = self._objective(outputs[-1], T, weights)
        params, grads = self.parameters(), self.gradients()
        for l in range(len(self.activations) - 1, -1, -1):
            act = self.activations[l]
            if self.takes_logits and l == len(self.activations) - 1:
                act = "identity"
            dA, grads[2 * l][...], grads[2 * l + 1][...] = dense_backward(
                dA, outputs[l], params[2 * l], outputs[l + 1], act, need_dx=l > 0, compute=self.compute)
            if ready is not None and self.objective[0] == 0:
                ready(l)
        if self.objective[0] != 0:
            for W, dW in zip(params[0::2], grads[0::2]):
                dW += W.dtype.type(self.objective[0] / norm) * W
            for l in range(len(self.activations) - 1, -1, -1):
                if ready is not None:
                    ready(l)
        return value

    def forward(self, X, out):
        """Write the network output for X into out (batch, n_out)."""
        out[...] = self._forward(X, False)[-1]

    def loss(self, X, T, labels, sample_weight=None):
        """The loss of the batch (X with dense targets T or labels) as a float."""
        T = self._targets(T, labels, X.shape[0])
        return self._objective(self._forward(X, self.takes_logits)[-1], T, sample_weight)[0]

    def compute_gradients(self, X, T, labels, sample_weight=None, ready=None):
        """Fill gradients() for the batch; returns its loss. The weights are unchanged.
        ready(layer), when given, is called as each layer's gradients are final, the last first."""
        return self._loss_and_backward(X, self._targets(T, labels, X.shape[0]), sample_weight, ready)

    # -------------------------------------------------------- training
    def _step(self, X, T, lr=None, weights=None):
        """(loss, finite, non_finite_layer); the weights change only when everything is finite.
        lr, when given, is the base learning rate of this step."""
        return self.apply_update(self._loss_and_backward(X, T, weights), lr)

    def apply_update(self, loss, lr=None):
        """One optimizer step from the gradients as they are now, for a batch whose loss was ``loss``;
        (loss, finite, non_finite_layer), and nothing is updated unless everything is finite."""
        value = loss
        if not np.isfinite(value):
            return value, False, -1
        grads = self.gradients()
        for l in range(len(self.activations)):
            if not (np.isfinite(grads[2 * l]).all() and np.isfinite(grads[2 * l + 1]).all()):
                return value, False, l
        c = self.config
        if c["clip_norm"] > 0:
            clip_by_global_norm(grads, c["clip_norm"])
        lr = self._learning_rate(c["lr"] if lr is None else lr)
        # The update on copies first: it is kept only if every new parameter and state value is finite.
        params = [p.copy() for p in self.parameters()]
        m = [a.copy() for a in self._views(self._m)] if self._m.size else None
        v = [a.copy() for a in self._views(self._v)] if self._v.size else None
        with np.errstate(over="ignore", invalid="ignore"):
            for i, (p, g) in enumerate(zip(params, grads)):
                decay = 0.0 if (i % 2 == 1 and not c["decay_bias"]) else c["weight_decay"]
                if c["kind"] == "sgd":
                    sgd_momentum_update(p, g, m[i] if m else None, lr, c["momentum"], c["nesterov"], decay,
                                        form=c["form"])
                else:
                    adam_update(p, g, m[i], v[i], self.steps + 1, lr, c["beta1"], c["beta2"], c["eps"], decay,
                                decoupled=c["kind"] == "adamw", form=c["form"])
        for l in range(len(self.activations)):
            arrays = [a for state in (params, m, v) if state is not None for a in state[2 * l:2 * l + 2]]
            if not all(np.isfinite(a).all() for a in arrays):
                return value, False, l
        self.steps += 1
        for target, new in zip(self.parameters(), params):
            target[...] = new
        for flat, new in ((self._m, m), (self._v, v)):
            if new is not None:
                flat[...] = np.concatenate([a.ravel() for a in new])
        return value, True, -1

    def plain_train_step(self, X, T, lr):
        """The native engine's fast path for input that needs no conversion; here always None."""
        return None

    def train_step(self, X, T, labels, lr=None):
        """One step; lr, when given, is the base learning rate for this step only."""
        return self._step(X, self._targets(T, labels, X.shape[0]), lr)

    def train_epoch(self, X, T, labels, order, batch_size, lr=None, sample_weight=None, begin=0, end=None,
                    total_before=0.0):
        """(loss, finite, non_finite_batch, non_finite_layer, None) for one epoch in mini-batches
        (the native engine's last entry is a KeyboardInterrupt that came as the epoch ended).
        begin and end (batch boundaries) run the batches of rows [begin, end) of the order only;
        a span that ends before the last row returns the running loss total and counts no epoch."""
        n = X.shape[0]
        end = n if end is None else end
        total = total_before
        for number, start in enumerate(range(begin, end, batch_size), start=begin // batch_size):
            rows = np.arange(start, min(start + batch_size, n))
            if order is not None:
                rows = order[rows]
            Tb = self._targets(None if T is None else T[rows], None if labels is None else labels[rows],
                               rows.size)
            value, finite, layer = self._step(X[rows], Tb, lr,
                                              None if sample_weight is None else sample_weight[rows])
            if not finite:
                return value, False, number, layer, None
            total += value * rows.size if self.reduction == "mean" else value
        if end < n:
            return total, True, -1, -1, None
        self.epochs += 1
        return (total / n if self.reduction == "mean" else total), True, -1, -1, None
