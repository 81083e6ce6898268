"""bpfast.Network: a dense feed-forward network trained by backpropagation.

The weights, the optimizer and the training loop live in an engine: the
native network of the C++ core (cpp/model/network.h), one call per step and
per epoch. ``bpfast.reference.Network`` is this same class over the numpy
engine ``bpfast.reference.Engine``, which has the same methods; the two
share every line of validation, fit logic and persistence and differ only in
the math. The architecture's checks and initial weights are in _architecture,
fit's loop over epochs in _fit (over MPI: distributed.Epochs), the save format
in _saveformat.
"""

import numpy as np

from . import _architecture
from . import _checkpoint
from . import _core
from . import _fit
from . import _precision
from . import _saveformat
from . import _tuning
from . import distributed
from . import _validate as check
from . import optim
from ._saveformat import _from_saved_bytes  # noqa: F401 - the name that pickles made before it moved hold
from .history import History

__all__ = ["Network", "Layer", "History"]

CLASSIFICATION_LOSSES = ("cross_entropy", "log_loss", "binary_cross_entropy")


class Layer:
    """One dense layer: W is (n_out, n_in), b is (n_out,), A = activation(X·Wᵀ + b)."""

    def __init__(self, W, b, activation):
        self._W, self._b, self.activation = W, b, activation

    @property
    def W(self):
        """The weights, (n_out, n_in): a view of the native memory; assigning copies into it
        (shape, dtype and finiteness checked)."""
        return self._W

    @W.setter
    def W(self, value):
        self._W[...] = check.parameter(value, self._W.shape, self._W.dtype, "W")

    @property
    def b(self):
        """The biases, (n_out,): a view of the native memory; assigning copies into it."""
        return self._b

    @b.setter
    def b(self, value):
        self._b[...] = check.parameter(value, self._b.shape, self._b.dtype, "b")

    @property
    def n_in(self):
        """The layer's input width."""
        return self._W.shape[1]

    @property
    def n_out(self):
        """The layer's output width."""
        return self._W.shape[0]

    def parameters(self):
        """[W, b]: views of the native weights."""
        return [self._W, self._b]

    def __repr__(self):
        return f"Layer({self.n_in} -> {self.n_out}, {self.activation})"


class Network:
    """A dense feed-forward network trained by backpropagation.

    Network([784, 128, 10], activation="relu", output="softmax",
            loss="cross_entropy", reduction="mean", dtype="float32", compute=None, seed=0)

    activation: one name, or one per hidden layer, from relu, sigmoid, tanh, identity.
    output: identity, sigmoid or softmax.
    loss: squared_error, cross_entropy, log_loss or binary_cross_entropy; the
        default is cross_entropy for sigmoid and softmax outputs and
        squared_error for an identity output. cross_entropy is fused with the
        output activation and computed from the logits.
    reduction: "mean" averages the loss over the batch, "sum" adds it up.
    dtype: what is kept: the weights, gradients, optimizer state and activations, and the
        dtype of every array the net takes and returns (float32 or float64).
    compute: what the products (every matrix product, forward and backward) read. None,
        the default, means dtype itself. "bfloat16" (with dtype float32) is mixed precision,
        Keras's mixed_bfloat16 policy or PyTorch's bfloat16 autocast: each operand is rounded
        to bfloat16 (nearest, ties to even) as the GEMM packs it and the products are summed
        in float32, while the weights (the master copy), gradients, optimizer state, losses,
        activations and updates stay float32. It runs on AMX tiles or VDPBF16PS where the
        CPU has them (bpfast.show_config() says which), else on float32 FMAs.
    optimizer: a bpfast.optim optimizer; the default is SGD(lr=0.1).
    """

    @staticmethod
    def _new_engine(sizes, activations, loss, reduction, precision):
        """The engine that holds the weights and runs the math, for a row of bpfast._precision:
        here the C++ core's, whose GEMM kernel is chosen first if this process has not yet."""
        _tuning.ensure_chosen()
        return precision.core.Network(sizes, activations, loss, reduction)

    @staticmethod
    def _parameter_shapes(sizes):
        """The shapes of the engine's parameters (W_0, b_0, W_1, b_1, ...), as its layout places them."""
        return _core.ParameterLayout(sizes).shapes

    @staticmethod
    def _optimizer_state_shapes(optimizer, n_parameters):
        """The shapes of the engine's optimizer state (m, v) under optimizer, as the engine sizes it."""
        return _core.f64.Network.optimizer_state_shapes(optimizer.settings(), n_parameters)

    def __init__(self, sizes, *, activation="relu", output="identity", loss=None,
                 reduction="mean", dtype="float32", compute=None, seed=None, optimizer=None):
        sizes, hidden, output, loss, reduction, dtype = \
            _architecture.checked(sizes, activation, output, loss, reduction, dtype)
        self._precision = _precision.row(dtype, compute)
        _precision.warn_if_emulated(self._precision)
        seed = check.seed(seed)
        if optimizer is not None:
            check.optimizer(optimizer)
        self.sizes, self.output, self.loss_name, self.reduction, self.dtype = sizes, output, loss, reduction, dtype
        self.seed = seed
        activations = hidden + [output]
        kernel_loss = f"{output}_cross_entropy" if loss == "cross_entropy" else loss
        self._engine = self._new_engine(self.sizes, activations, kernel_loss, self.reduction, self._precision)
        views = self._engine.parameters()
        _architecture.initialise_weights(views[0::2], activations, seed)  # the biases start at zero
        for b in views[1::2]:
            b[...] = 0
        self.layers = [Layer(views[2 * l], views[2 * l + 1], act) for l, act in enumerate(activations)]
        self._shuffle_rng = np.random.default_rng(None if seed is None else [seed, 1])
        self.optimizer = optim.SGD() if optimizer is None else optimizer
        self._group = None  # the distributed.Group of the last communicator given, once in step with it

    def __copy__(self):
        """An independent copy (as deepcopy): a net never shares its native weights."""
        return self.__deepcopy__({})

    def __deepcopy__(self, memo):
        """An independent copy through the save format: architecture, weights, optimizer state, counters."""
        return _saveformat._from_saved_bytes(type(self), _saveformat.saved_bytes(self))

    def __reduce__(self):
        """Pickling (pickle, joblib, multiprocessing) goes through the versioned save format,
        never through the native objects: the bytes save() would write, read back by load()."""
        return _saveformat._from_saved_bytes, (type(self), _saveformat.saved_bytes(self))

    # ------------------------------------------------------------ properties
    @property
    def is_classifier(self):
        """Whether the loss classifies: predict gives labels and T may be integer labels."""
        return self.loss_name in CLASSIFICATION_LOSSES

    @property
    def optimizer(self):
        """The optimizer used by train_step and fit; assigning one resets its state."""
        return self._optimizer

    @optimizer.setter
    def optimizer(self, value):
        check.optimizer(value)
        self._engine.set_optimizer(value.settings())
        self._optimizer = value

    @property
    def compute(self):
        """What the products read: the dtype's name, or "bfloat16" (mixed precision)."""
        return self._precision.compute

    def parameters(self):
        """[W_0, b_0, W_1, b_1, ...]: views of the native weights, W_l of shape (n_out, n_in) and
        b_l of shape (n_out,); writing into them changes the net."""
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        hidden = [layer.activation for layer in self.layers[:-1]]
        return (f"Network({self.sizes}, activation={hidden}, output={self.output!r}, "
                f"loss={self.loss_name!r}, dtype={self.dtype.name!r}"
                + (f", compute={self.compute!r})" if self.compute != self.dtype.name else ")"))

    # ------------------------------------------------------------ input
    def _batch(self, X, name="X"):
        return check.batch(X, self.sizes[0], self.dtype, name)

    def _batch_and_targets(self, X, T, x_name="X", t_name="T"):
        """(X, dense targets or None, int64 labels or None), validated and C-contiguous."""
        X = self._batch(X, x_name)
        dense, labels = check.targets(T, X.shape[0], self.sizes[-1], self.dtype, self.is_classifier, t_name,
                                      x_name)
        return X, dense, labels

    # ------------------------------------------------------------ public API
    def forward(self, X):
        """The network output for X, shape (batch, n_out)."""
        X = self._batch(X)
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        self._engine.forward(X, out)
        return out

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
        return self._engine.loss(*self._batch_and_targets(X, T))

    def gradients(self, X, T):
        """[(dW, db), ...] per layer for the batch (X, T); the network is unchanged."""
        self._engine.compute_gradients(*self._batch_and_targets(X, T))
        grads = self._engine.gradients()
        return [(grads[2 * l].copy(), grads[2 * l + 1].copy()) for l in range(len(self.layers))]

    # ------------------------------------------------------------ conveniences (Keras and PyTorch habits)
    def predict_proba(self, X):
        """Class probabilities of a classifier, (batch, n_classes): the softmax outputs; for one
        sigmoid unit the columns [1 - p, p] (so that their argmax is predict's label); for several
        sigmoid units (multi-label) each unit's probability. A net without a classification loss
        raises ValueError."""
        if not self.is_classifier:
            raise ValueError(f"predict_proba needs a classifier (loss {', '.join(CLASSIFICATION_LOSSES)}); "
                             f"this net's loss is {self.loss_name}: use forward or predict")
        Y = self.forward(X)
        return np.hstack([1 - Y, Y]) if Y.shape[1] == 1 else Y

    def evaluate(self, X, T):
        """The loss of (X, T), and for a classifier its accuracy, as a dict under the names fit's
        logs use for the training data: {"loss": ..., "accuracy": ...}. evaluate(X_val, T_val) is
        what fit records as val_loss and val_accuracy."""
        X, dense, labels = self._batch_and_targets(X, T)
        logs = {"loss": self._engine.loss(X, dense, labels)}
        if self.is_classifier:
            logs["accuracy"] = _fit.accuracy(self._engine, X, dense, labels, self.sizes[-1])
        return logs

    def summary(self, file=None):
        """Print the layers (widths, activation, parameters and their memory), the loss, dtype and
        compute, the optimizer and the memory training keeps (weights, gradients, optimizer state),
        after Keras's model.summary(); file: where to write (default sys.stdout)."""
        if file is not None and not callable(getattr(file, "write", None)):
            raise TypeError(f"file must be a text stream with a write method; got {type(file).__name__}")
        item = self.dtype.itemsize
        rows = [("layer", "shape", "activation", "parameters", "memory")]
        for i, layer in enumerate(self.layers):
            count = layer.W.size + layer.b.size
            rows.append((str(i), f"{layer.n_in} -> {layer.n_out}", layer.activation, f"{count:,}",
                         _bytes_text(count * item)))
        weights = sum(p.size for p in self.parameters())
        rows.append(("total", "", "", f"{weights:,}", _bytes_text(weights * item)))
        widths = [max(len(row[c]) for row in rows) for c in range(5)]
        lines = [f"Network({self.sizes})  loss {self.loss_name} ({self.reduction})  dtype {self.dtype.name}  "
                 f"compute {self.compute}"]
        lines += ["  ".join(cell.rjust(w) if c >= 3 else cell.ljust(w) for c, (cell, w) in
                            enumerate(zip(row, widths))).rstrip() for row in rows]
        gradient_bytes = sum(g.nbytes for g in self._engine.gradients())
        state_bytes = sum(s.nbytes for s in self._engine.optimizer_state())
        lines.append(f"optimizer {self._optimizer!r}")
        lines.append(f"training keeps: weights {_bytes_text(weights * item)}, gradients {_bytes_text(gradient_bytes)}, "
                     f"optimizer state {_bytes_text(state_bytes)}")
        print("\n".join(lines), file=file)

    def train_step(self, X, T, lr=None, comm=None):
        """One optimizer step on the batch (X, T); returns that batch's loss.

        lr, when given, replaces the optimizer's learning rate for this step.
        A non-finite loss or gradient raises FloatingPointError and changes nothing.
        comm=: an mpi4py communicator: (X, T) are this rank's rows of a global batch and the
        step is one process's step on it (see bpfast.distributed); the first call with a
        communicator broadcasts rank 0's weights and optimizer state. As
        bpfast.distributed.deterministic(comm), the ranks' gradients are summed in rank order
        (the same bits run after run).
        """
        # comm is not keyword-only: a keyword-only default costs every call about 25 ns
        # (measured on the fastest step), a positional one nothing measurable.
        if comm is not None:
            comm, deterministic = distributed.unwrap(comm)
            return self._group_for(comm).train_step(self._replica(), X, T, lr, deterministic,
                                                    self._optimizer.config())
        # Arrays that need no conversion step at once (None: nothing done, see _checked_train_step).
        value = self._engine.plain_train_step(X, T, lr)
        return self._checked_train_step(X, T, lr) if value is None else value

    def _checked_train_step(self, X, T, lr):
        """train_step for any input: validated and converted here, then one engine call."""
        X, T, labels = self._batch_and_targets(X, T)
        lr = check.learning_rate(lr)
        value, finite, non_finite_layer = self._engine.train_step(X, T, labels, lr)
        if not finite:
            self._raise_not_finite(non_finite_layer)
        return value

    _raise_not_finite = staticmethod(_fit.raise_not_finite)

    # ------------------------------------------------------------ over MPI (bpfast.distributed)
    def _group_for(self, comm):
        """The distributed.Group of comm; a new one (not yet in step) for another communicator."""
        if self._group is None or self._group.comm is not comm:
            self._group = distributed.Group(comm)
        return self._group

    def _replica(self):
        """This net as bpfast.distributed trains it: the engine, the shuffle stream, the input
        checks and the architecture the ranks agree on."""
        return distributed.Replica(self._engine, self._shuffle_rng, self._batch_and_targets,
                                   {"sizes": self.sizes, "activations": [l.activation for l in self.layers],
                                    "loss": self.loss_name, "reduction": self.reduction, "dtype": self.dtype.name,
                                     "compute": self.compute})

    def fit(self, X, T, *, epochs=10, batch_size=32, lr=None, shuffle=True, optimizer=None,
            validation_data=None, patience=None, callbacks=(), verbose=False, comm=None, deterministic=False,
            checkpoint=None, checkpoint_every=None):
        """Train in mini-batches; returns a History: the list of per-epoch mean losses.

        Every argument after X and T is keyword-only. Epochs are numbered from 1
        everywhere: in callbacks, verbose output, errors and History.best_epoch.

        epochs: passes over the data. batch_size: rows per optimizer step (the
            last batch of an epoch may be smaller).
        lr: a learning rate for this fit only, in place of the optimizer's lr
            (its schedule still applies); the optimizer itself is unchanged.
        shuffle: visit the rows in a fresh random order each epoch, drawn from a
            Generator seeded by the network's seed.
        optimizer: a bpfast.optim optimizer that replaces the net's own for good
            (as assigning net.optimizer does, its state starts afresh); it is set
            only after every other argument has been checked.
        validation_data: (X_val, T_val), evaluated after every epoch.
        patience: stop when the monitored loss (val_loss when there is
            validation data, else loss) has not improved for this many epochs,
            and restore the weights of the best epoch.
        callbacks: a list of callables f(epoch, logs) run after every epoch;
            one that returns True stops training.
        verbose: show progress as Keras does: a line per epoch (its time and logs),
            why and when training stopped early, and, for epochs that take more
            than about a second, their batches: a bar redrawn in place on a
            terminal (tqdm's when installed), else a line at most once a second;
            without a terminal, whole lines only, never carriage returns.

        Each epoch runs in one native call (a few, when verbose shows batches).
        An epoch's loss is the mean of its batch losses weighted by batch size
        (reduction "mean") or their sum ("sum"). A non-finite loss, gradient or
        update raises FloatingPointError naming the epoch, batch and layer; the
        weights from before that batch are kept. Ctrl-C stops training after
        the batch at hand (within about 50 ms) with KeyboardInterrupt, whose
        history attribute holds the History of the completed epochs; the
        weights are those after that batch. A callback that raises stops
        training with its exception and leaves the weights of the last
        completed epoch (patience's best weights are not restored).

        comm: an mpi4py communicator for data-parallel training (see bpfast.distributed):
            X and T are this rank's rows, batch_size the rows per rank and step, and every
            rank ends with the weights one process would have after the same global batches.
        deterministic: with comm, sum the ranks' gradients in rank order (the same bits run
            after run) instead of by MPI's Allreduce (as comm=bpfast.distributed.deterministic(comm)).

        checkpoint: a file name (".npz" added when it lacks it, as save does) for a checkpoint of
            this fit, written atomically (as save writes) at the end of every epoch and as the fit
            ends. It holds the weights, optimizer state, counters, shuffle stream, the History so
            far, early stopping's state (best weights, epochs without improvement) and the
            position in the epoch at hand, in the save format (no pickle). A fit started while the
            file exists resumes from it and ends bitwise where the uninterrupted fit ends (the same
            weights, optimizer state and History); callbacks are called for the remaining epochs
            only, and a checkpoint of a fit that has finished returns its History at once (the net
            takes its final weights). The file is checked as load checks a network, and one of
            another fit raises ValueError naming what differs: the data (a fingerprint of X, T
            and validation_data: shapes, dtypes and a hash), the architecture, the optimizer, the
            engine, or epochs, batch_size, lr, shuffle, patience or deterministic. Remove the file
            to start afresh.
        checkpoint_every: with checkpoint, a checkpoint every this many batches as well (inside
            an epoch; a fit resumed from one runs the rest of that epoch).
            With comm, rank 0 writes the checkpoint and every rank reads it (the file must be one
            that every rank sees, on a shared file system); each rank's data is fingerprinted, and
            the number of ranks must be the same. A resumed fit ends bitwise where the
            uninterrupted one ends with deterministic=True, else within float rounding.
        """
        if comm is None:  # the one choice between this process and a communicator
            runner = _fit.Local(self._engine, self._shuffle_rng, self._batch_and_targets, self.sizes[-1])
        else:
            comm, ordered = distributed.unwrap(comm)
            deterministic = ordered or deterministic
            runner = distributed.Epochs(self._group_for(comm), self._replica())
        try:
            if optimizer is not None:
                check.optimizer(optimizer)
            epochs = check.non_negative_int(epochs, "epochs")
            batch_size = check.positive_int(batch_size, "batch_size")
            if patience is not None:
                patience = check.positive_int(patience, "patience")
            shuffle = check.boolean(shuffle, "shuffle")
            verbose = check.boolean(verbose, "verbose")
            deterministic = check.boolean(deterministic, "deterministic")
            callbacks = check.callbacks(callbacks)
            lr = check.learning_rate(lr)
            if validation_data is not None and (not isinstance(validation_data, (tuple, list))
                                                or len(validation_data) != 2):
                raise ValueError("validation_data must be a pair (X_val, T_val); "
                                 f"got {type(validation_data).__name__}")
            X, T, labels = runner.batch(X, T)
            validation = None
            if validation_data is not None:
                validation = runner.batch(*validation_data, x_name="X_val", t_name="T_val")
            if checkpoint_every is not None:
                checkpoint_every = check.positive_int(checkpoint_every, "checkpoint_every")
                if checkpoint is None:
                    raise ValueError("checkpoint_every needs checkpoint=, the file to write")
            plan = resumed = None
            if checkpoint is not None:
                run = {"data": _checkpoint.fingerprint((X, T, labels)),
                       "validation_data": None if validation is None else _checkpoint.fingerprint(validation),
                       "epochs": epochs, "batch_size": batch_size, "lr": lr, "shuffle": shuffle,
                       "patience": patience, "deterministic": deterministic if comm is not None else False,
                       "ranks": None if comm is None else comm.Get_size()}
                plan = _checkpoint.Checkpoint(self, checkpoint, run, checkpoint_every, comm)
                resumed = plan.read((optimizer or self._optimizer).config())
            settings = runner.settings(
                epochs=epochs, batch_size=batch_size, patience=patience, shuffle=shuffle, lr=lr,
                deterministic=deterministic, validation=validation is not None,
                optimizer=(optimizer or self._optimizer).config())
        except Exception as error:
            runner.agree_failure(error, "fit")  # with a communicator every rank raises, this one its own error
            raise
        runner.agree("fit", settings, X.shape[0], None if validation is None else validation[0].shape[0])
        if plan is not None:
            plan.gather()
        if optimizer is not None:
            self.optimizer = optimizer
        if resumed is not None:
            plan.restore(*resumed)
        runner.start(X, T, labels, batch_size, lr, deterministic)
        return _fit.fit_epochs(runner, epochs, shuffle, validation, patience, callbacks, verbose,
                               self.parameters, self.is_classifier, plan, None if resumed is None else resumed[1])

    # ------------------------------------------------------------ persistence
    def save(self, path):
        """Write the architecture, weights, optimizer state and counters to a versioned .npz
        (no pickle); returns the path written.

        path: a file name (".npz" is added when it lacks it, as numpy does, and load
        applies the same rule, so save("model") and load("model") name one file) or a
        binary file object opened for writing.
        """
        return _saveformat.save(self, path)

    def to_onnx(self, path, opset=None):
        """Write the net as an ONNX model to path, as given (see bpfast.onnx.export; needs onnx)."""
        from . import onnx
        return onnx.export(self, path, opset)

    @classmethod
    def load(cls, path):
        """Read a network written by save(); the round trip is exact.

        path: the name given to save() (with or without ".npz": the file as named
        when it exists, else the name with ".npz" added) or a binary file object.
        The file is checked before anything is allocated: its members, the size
        and nesting of its records, the architecture, and the dtype, shape and
        byte count of every array against what that architecture needs (see
        bpfast._archive). A file that fails a check raises ValueError naming the
        path and what is wrong with it.
        """
        return _saveformat.load(cls, path)


def _bytes_text(n):
    """A byte count as people read it: 812 B, 3.1 KiB, 1.4 MiB, 2.0 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
