"""A training step as a careful numpy user writes it: the "numpy (plain)" competitor of the steps suite.

bpfast.reference is written for reading: every kernel returns new arrays.
This module is written for speed with nothing but numpy, as someone who
knows numpy well would write a dense net's SGD step by hand:

- every buffer (pre-activations, activations, deltas, gradients) is
  allocated once, for a fixed batch size, and reused by every step;
- products go straight into those buffers (np.matmul(..., out=)), with
  transposed views rather than copies, and so do the element-wise ops
  (np.maximum(Z, 0, out=Z), np.exp(..., out=), ...);
- the targets are one-hot encoded once, up front, not per step;
- the output layer's softmax is fused into the cross-entropy, whose gradient
  with respect to the logits is simply (softmax − one-hot) / batch;
- the SGD update is in place, layer by layer as soon as its input gradient
  has been computed (W is not needed after that).

What it leaves out, as such a user would: bpfast's guard that skips an update
whose loss or gradients are not finite. Its numpy BLAS is whatever numpy is
linked with, on its default thread count.

Layout as in bpfast: W is (n_out, n_in), Z = X·Wᵀ + b, A = act(Z); backward
with δ = dA ⊙ σ'(A): dW = δᵀ·X, db = Σ_rows δ, dX = δ·W.
"""

import numpy as np

ACTIVATIONS = ("identity", "relu", "sigmoid", "tanh")


class PlainNet:
    """A dense net (hidden activation, then softmax + cross-entropy or identity + squared error)
    with preallocated buffers for batches of exactly ``batch`` rows.

    weights and biases are copied; T is the batch's targets: integer labels for
    cross_entropy (one-hot encoded here, once), a (batch, n_out) array for
    squared_error.
    """

    def __init__(self, weights, biases, activation, output, loss, T, dtype):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
        if (output, loss) not in (("softmax", "cross_entropy"), ("identity", "squared_error")):
            raise ValueError(f"output/loss must be softmax/cross_entropy or identity/squared_error; "
                             f"got {output}/{loss}")
        self.dtype = np.dtype(dtype)
        self.W = [np.array(W, dtype=self.dtype, copy=True) for W in weights]
        self.b = [np.array(b, dtype=self.dtype, copy=True) for b in biases]
        self.activation, self.loss = activation, loss
        batch = len(T)
        self.batch = batch
        n_out = self.W[-1].shape[0]
        if loss == "cross_entropy":
            self.T = np.zeros((batch, n_out), self.dtype)
            self.T[np.arange(batch), np.asarray(T, dtype=np.int64)] = 1
        else:
            self.T = np.array(T, dtype=self.dtype, copy=True).reshape(batch, n_out)
        # A[l] is layer l's output (its pre-activation is computed in place); dA[l] the gradient
        # with respect to it; the last one holds the gradient with respect to the logits.
        self.A = [np.empty((batch, W.shape[0]), self.dtype) for W in self.W]
        self.dA = [np.empty((batch, W.shape[0]), self.dtype) for W in self.W]
        self.dW = [np.empty_like(W) for W in self.W]
        self.db = [np.empty_like(b) for b in self.b]
        self.spare = [np.empty((batch, W.shape[0]), self.dtype) for W in self.W[:-1]]  # σ' and masks
        self.row = np.empty((batch, 1), self.dtype)  # row max, then row sums of the softmax
        self.log_row = np.empty((batch, 1), self.dtype)
        self.inv_batch = self.dtype.type(1.0 / batch)

    def parameters(self):
        """[W_0, b_0, W_1, b_1, ...] (copies)."""
        return [p.copy() for W, b in zip(self.W, self.b) for p in (W, b)]

    def _forward(self, X):
        last = len(self.W) - 1
        A_prev = X
        for l, (W, b, A) in enumerate(zip(self.W, self.b, self.A)):
            # A_prev is (batch, n_in), W is (n_out, n_in), A is (batch, n_out)
            np.matmul(A_prev, W.T, out=A)
            A += b
            if l < last:
                self._activate(A)
            A_prev = A

    def _activate(self, Z):
        if self.activation == "relu":
            np.maximum(Z, 0, out=Z)
        elif self.activation == "tanh":
            np.tanh(Z, out=Z)
        elif self.activation == "sigmoid":  # 1 / (1 + exp(−z)), which saturates cleanly at both ends
            np.negative(Z, out=Z)
            with np.errstate(over="ignore"):
                np.exp(Z, out=Z)
            Z += 1
            np.reciprocal(Z, out=Z)

    def _derivative_times(self, dA, A, spare):
        """dA ⊙= σ'(A), σ' from the layer's output A."""
        if self.activation == "relu":
            np.greater(A, 0, out=spare)  # 1.0 where the unit was active, 0.0 elsewhere
            dA *= spare
        elif self.activation == "tanh":  # 1 − a²
            np.multiply(A, A, out=spare)
            np.subtract(1, spare, out=spare)
            dA *= spare
        elif self.activation == "sigmoid":  # a(1 − a)
            np.subtract(1, A, out=spare)
            spare *= A
            dA *= spare

    def _loss_and_output_gradient(self):
        """The mean loss; fills dA[-1] with its gradient with respect to the logits (or outputs)."""
        Z, G = self.A[-1], self.dA[-1]
        if self.loss == "squared_error":  # ½‖y − t‖² per sample
            np.subtract(Z, self.T, out=G)
            value = 0.5 * float(np.vdot(G, G)) / self.batch
            G *= self.inv_batch
            return value
        # cross-entropy of softmax(z): lse(z) − z_label, with z shifted by its row max
        np.max(Z, axis=1, keepdims=True, out=self.row)
        np.subtract(Z, self.row, out=G)
        value = -float(np.vdot(self.T, G))
        np.exp(G, out=G)
        np.sum(G, axis=1, keepdims=True, out=self.row)
        value += float(np.sum(np.log(self.row, out=self.log_row)))
        G /= self.row
        G -= self.T
        G *= self.inv_batch
        return value / self.batch

    def step(self, X, lr):
        """One SGD step on the batch X (batch, n_in) against the targets given at construction; returns
        the loss before the update."""
        self._forward(X)
        value = self._loss_and_output_gradient()
        lr = self.dtype.type(lr)
        for l in range(len(self.W) - 1, -1, -1):
            delta, A_prev = self.dA[l], (self.A[l - 1] if l > 0 else X)
            # delta is (batch, n_out), A_prev is (batch, n_in), W and dW are (n_out, n_in)
            np.matmul(delta.T, A_prev, out=self.dW[l])
            np.sum(delta, axis=0, out=self.db[l])
            if l > 0:
                np.matmul(delta, self.W[l], out=self.dA[l - 1])
                self._derivative_times(self.dA[l - 1], A_prev, self.spare[l - 1])
            self.dW[l] *= lr
            self.W[l] -= self.dW[l]
            self.db[l] *= lr
            self.b[l] -= self.db[l]
        return value
