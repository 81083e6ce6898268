"""bpfast.Network: a dense feed-forward network trained by backpropagation.

The weights, the optimizer and the training loop live in an engine: the
native network of the C++ core (cpp/model/network.h), one call per step and
per epoch. ``bpfast.reference.Network`` is this same class over the numpy
engine ``bpfast.reference.Engine``, which has the same methods; the two
share every line of validation, fit logic and persistence and differ only in
the math.
"""

import errno
import io
import json
import math
import os
import time

import numpy as np

from . import _archive
from . import _precision
from . import distributed
from . import _progress
from . import _validate as check
from . import optim
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


INITIAL_DRAW_CHUNK = 1 << 16  # values drawn at a time: a 512 KiB float64 temporary at most


def initialise_weights(weights, activations, seed):
    """He initialisation for relu layers, Glorot (uniform) for the others,
    written into each (n_out, n_in) array of ``weights`` in place.

    The values are drawn in float64 from numpy's default Generator seeded by
    ``seed`` and cast on the way in, so one seed gives the same net in both
    dtypes. They are drawn a chunk at a time (the same stream as one draw of
    the whole matrix), so that a big net needs no float64 copy of a layer.
    """
    rng = np.random.default_rng(seed)
    for W, activation in zip(weights, activations):
        n_out, n_in = W.shape
        flat = W.reshape(-1)  # a view: the native arrays are C-contiguous
        for start in range(0, flat.size, INITIAL_DRAW_CHUNK):
            count = min(INITIAL_DRAW_CHUNK, flat.size - start)
            if activation == "relu":
                draw = rng.standard_normal(count)
                draw *= np.sqrt(2.0 / n_in)
            else:
                limit = np.sqrt(6.0 / (n_in + n_out))
                draw = rng.uniform(-limit, limit, size=count)
            flat[start:start + count] = draw


FILE_FORMAT = "bpfast-network"
FILE_VERSION = 1
RECORD_MEMBERS = ("format", "version", "architecture", "optimizer", "shuffle_state", "counters")
ARCHITECTURE_KEYS = ("sizes", "activation", "output", "loss", "reduction", "dtype", "seed")


class Network:
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
    optimizer: a bpfast.optim optimizer; the default is SGD(lr=0.1).
    """

    @staticmethod
    def _new_engine(sizes, activations, loss, reduction, dtype):
        """The engine that holds the weights and runs the math: here the C++ core's."""
        return _precision.of(dtype).core.Network(sizes, activations, loss, reduction)

    @staticmethod
    def _checked_architecture(sizes, activation, output, loss, reduction, dtype):
        """(sizes, hidden activations, output, loss, reduction, dtype) as the constructor
        takes them, each checked; nothing is allocated (load checks a file's with this)."""
        sizes = check.layer_sizes(sizes)
        n_hidden = len(sizes) - 2
        if isinstance(activation, str):
            hidden = [check.choice(activation, check.ACTIVATIONS, "activation")] * n_hidden
        else:
            hidden = list(activation)
            if len(hidden) != n_hidden:
                raise ValueError(f"activation must be one name or a list of {n_hidden} names "
                                 f"(one per hidden layer); got {len(hidden)} names")
            for i, name in enumerate(hidden):
                check.choice(name, check.ACTIVATIONS, f"activation[{i}]")
        output = check.choice(output, check.OUTPUTS, "output")
        if loss is None:
            loss = "squared_error" if output == "identity" else "cross_entropy"
        loss = check.choice(loss, check.LOSSES, "loss")
        if output not in check.LOSS_OUTPUTS[loss]:
            raise ValueError(f"loss {loss!r} needs an output of {' or '.join(check.LOSS_OUTPUTS[loss])}; "
                             f"got output={output!r}")
        reduction = check.choice(reduction, check.REDUCTIONS, "reduction")
        return sizes, hidden, output, loss, reduction, np.dtype(check.dtype_name(dtype))

    def __init__(self, sizes, *, activation="relu", output="identity", loss=None,
                 reduction="mean", dtype="float32", seed=None, optimizer=None):
        sizes, hidden, output, loss, reduction, dtype = \
            self._checked_architecture(sizes, activation, output, loss, reduction, dtype)
        seed = check.seed(seed)
        if optimizer is not None:
            check.optimizer(optimizer)
        self.sizes, self.output, self.loss_name, self.reduction, self.dtype = sizes, output, loss, reduction, dtype
        self.seed = seed
        activations = hidden + [output]
        kernel_loss = f"{output}_cross_entropy" if loss == "cross_entropy" else loss
        self._engine = self._new_engine(self.sizes, activations, kernel_loss, self.reduction, self.dtype)
        views = self._engine.parameters()
        initialise_weights(views[0::2], activations, seed)  # the biases start at zero
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
        return _from_saved_bytes(type(self), self._saved_bytes())

    def __reduce__(self):
        """Pickling (pickle, joblib, multiprocessing) goes through the versioned save format,
        never through the native objects: the bytes save() would write, read back by load()."""
        return _from_saved_bytes, (type(self), self._saved_bytes())

    def _saved_bytes(self):
        buffer = io.BytesIO()
        self._write(buffer)
        return buffer.getvalue()

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
        self._engine.set_optimizer(**value.config())
        self._optimizer = value

    def parameters(self):
        """[W_0, b_0, W_1, b_1, ...]: views of the native weights, W_l of shape (n_out, n_in) and
        b_l of shape (n_out,); writing into them changes the net."""
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        hidden = [layer.activation for layer in self.layers[:-1]]
        return (f"Network({self.sizes}, activation={hidden}, output={self.output!r}, "
                f"loss={self.loss_name!r}, dtype={self.dtype.name!r})")

    # ------------------------------------------------------------ input
    def _batch(self, X, name="X"):
        return check.batch(X, self.sizes[0], self.dtype, name)

    def _batch_and_targets(self, X, T, x_name="X", t_name="T"):
        """(X, dense targets or None, int64 labels or None), validated and C-contiguous."""
        X = self._batch(X, x_name)
        dense, labels = check.targets(T, X.shape[0], self.sizes[-1], self.dtype, self.is_classifier, t_name)
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
            return self._distributed_train_step(X, T, lr, comm)
        # Arrays that need no conversion step at once (None: nothing done, see _checked_train_step).
        value = self._engine.plain_train_step(X, T, lr)
        return self._checked_train_step(X, T, lr) if value is None else value

    def _checked_train_step(self, X, T, lr):
        """train_step for any input: validated and converted here, then one engine call."""
        X, T, labels = self._batch_and_targets(X, T)
        if lr is not None:
            lr = check.finite_positive(lr, "lr")
        value, finite, non_finite_layer = self._engine.train_step(X, T, labels, lr)
        if not finite:
            self._raise_not_finite(non_finite_layer)
        return value

    @staticmethod
    def _raise_not_finite(layer, culprit=""):
        where = f"layer {layer}" if layer >= 0 else "the loss"
        raise FloatingPointError(f"the loss, a gradient or the update is not finite (first at {where}){culprit}; "
                                 "the weights were not updated")

    # ------------------------------------------------------------ over MPI (bpfast.distributed)
    def _group_for(self, comm):
        """The distributed.Group of comm; a new one (not yet in step) for another communicator."""
        if self._group is None or self._group.comm is not comm:
            self._group = distributed.Group(comm)
        return self._group

    def _distributed_settings(self, **more):
        """What every rank must agree on before training together."""
        engine = self._engine
        if engine.objective[0] != 0:
            raise ValueError("distributed training does not take an L2 term in the objective (set_objective)")
        return {"sizes": self.sizes, "activations": [l.activation for l in self.layers], "loss": self.loss_name,
                "reduction": self.reduction, "dtype": self.dtype.name, "optimizer": self._optimizer.config(),
                "objective": tuple(engine.objective), **more}

    def _distributed_train_step(self, X, T, lr, comm):
        comm, deterministic = distributed.unwrap(comm)
        group = self._group_for(comm)
        error = settings = None
        rows = 0
        try:
            if lr is not None:
                lr = check.finite_positive(lr, "lr")
            X, T, labels, rows = distributed.local_batch(self, X, T)
            settings = self._distributed_settings(lr=lr, deterministic=deterministic)
        except Exception as e:  # noqa: BLE001 - every rank raises, after agreeing
            error = e
        if not group.in_step:
            group.agree(error, "train_step", settings)
            group.broadcast_state(self)
        global_rows = group.agree_rows(error, rows, "train_step")
        value, finite, layer = group.step(self._engine, X, T, labels, rows, global_rows, lr, self.reduction,
                                          deterministic)
        if not finite:
            culprits = group.culprits(self._engine, X, T, labels, rows)
            self._raise_not_finite(layer, distributed.culprit_text(culprits))
        return value

    def fit(self, X, T, *, epochs=10, batch_size=32, lr=None, shuffle=True, optimizer=None,
            validation_data=None, patience=None, callbacks=(), verbose=False, comm=None, deterministic=False):
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
        verbose: show progress: a line (or a tqdm bar, when tqdm is installed)
            per epoch, a bar over the batches of epochs that take more than
            about a second, and why and when training stopped early.

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
        """
        group = None
        if comm is not None:
            comm, ordered = distributed.unwrap(comm)
            deterministic = ordered or deterministic
            group = self._group_for(comm)
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
            if lr is not None:
                lr = check.finite_positive(lr, "lr")
            if validation_data is not None and (not isinstance(validation_data, (tuple, list))
                                                or len(validation_data) != 2):
                raise ValueError("validation_data must be a pair (X_val, T_val); "
                                 f"got {type(validation_data).__name__}")
            if group is None:
                X, T, labels = self._batch_and_targets(X, T)
                validation = None
                if validation_data is not None:
                    validation = self._batch_and_targets(*validation_data, x_name="X_val", t_name="T_val")
            else:
                X, T, labels, rows = distributed.local_batch(self, X, T)
                validation = None
                if validation_data is not None:
                    validation = distributed.local_batch(self, *validation_data, x_name="X_val", t_name="T_val")
                settings = self._distributed_settings(
                    epochs=epochs, batch_size=batch_size, patience=patience, shuffle=shuffle, lr=lr,
                    deterministic=deterministic, validation=validation is not None,
                    optimizer=(optimizer or self._optimizer).config())
        except Exception as error:
            if group is None:
                raise
            group.agree(error, "fit")
        if group is not None:
            facts = group.agree(None, "fit", settings, (rows, 0 if validation is None else validation[3]))
            if sum(f[0] for f in facts) == 0:
                raise ValueError("fit: no rank has a row of X")
            if validation is not None and sum(f[1] for f in facts) == 0:
                raise ValueError("fit: no rank has a row of X_val")
        if optimizer is not None:
            self.optimizer = optimizer
        if group is not None:
            group.broadcast_state(self)
            group.plan_epochs([f[0] for f in facts], batch_size, self.reduction, deterministic)
        return self._fit_epochs(X, T, labels, epochs, batch_size, lr, shuffle, validation, patience,
                                callbacks, verbose, group)

    def _fit_epochs(self, X, T, labels, epochs, batch_size, lr, shuffle, validation, patience,
                    callbacks, verbose, group=None):
        history = History()
        if validation is not None:
            history.history["val_loss"] = []
            if self.is_classifier:
                history.history["val_accuracy"] = []
        monitored_name = "val_loss" if validation is not None else "loss"
        best, best_params, waited = np.inf, None, 0
        if group is None:
            progress = _progress.Progress(epochs, X.shape[0], batch_size, verbose)
        else:  # shown by rank 0 only, counting the steps of the global batches
            progress = _progress.Progress(epochs, group.steps * batch_size, batch_size,
                                          verbose and group.rank == 0)
        culprit = ""
        try:
            for epoch in range(1, epochs + 1):
                if group is None:
                    order = self._shuffle_rng.permutation(X.shape[0]) if shuffle else None
                    value, finite, batch, layer, pending = self._run_epoch(X, T, labels, order, batch_size, lr,
                                                                           progress, epoch)
                else:
                    order = group.permutation(self._shuffle_rng, X.shape[0]) if shuffle else None
                    value, finite, batch, layer, culprit = group.run_epoch(self._engine, X, T, labels, order, lr,
                                                                           progress, epoch)
                    pending = None
                if not finite:
                    where = f", layer {layer}" if layer >= 0 else " (in the loss)"
                    raise FloatingPointError(
                        f"training stopped: the loss, a gradient or the update is not finite at epoch {epoch}, "
                        f"batch {batch + 1}{where}{culprit}; the weights from before that batch are kept")
                logs = {"loss": value}
                if group is not None:
                    if validation is not None:
                        logs.update(group.validation_logs(self, validation))
                    logs = group.rank_0s(logs, f"the logs of epoch {epoch}")
                elif validation is not None:
                    logs["val_loss"] = self._engine.loss(*validation)
                    if self.is_classifier:
                        logs["val_accuracy"] = self._accuracy(*validation)
                for key, record in logs.items():
                    history.history[key].append(record)
                history.append(logs["loss"])
                progress.end_epoch(epoch, logs)
                if pending is not None:  # a Ctrl-C as the epoch ended: raised once the epoch is recorded
                    raise pending
                monitored = logs[monitored_name]
                if monitored < best:
                    best, waited, history.best_epoch = monitored, 0, epoch
                    if patience is not None:
                        best_params = [p.copy() for p in self.parameters()]
                else:
                    waited += 1
                if group is None:
                    stopped_by = [cb for cb in callbacks if cb(epoch, dict(logs)) is True]
                else:  # every rank runs its callbacks; an error stops every rank, rank 0's answer decides
                    stopped_by = group.run_callbacks(callbacks, epoch, logs)
                if patience is not None and waited >= patience:
                    history.stopped_early = True
                    progress.say(f"early stopping after epoch {epoch}: {monitored_name} has not improved on "
                                 f"{best:.6g} for {waited} epochs (patience={patience}); restored the weights "
                                 f"of epoch {history.best_epoch}")
                    break
                if stopped_by:
                    progress.say(f"stopped after epoch {epoch}: callback {_callable_name(stopped_by[0])} "
                                 "returned True")
                    break
        except KeyboardInterrupt as interrupt:
            interrupt.history = history  # the epochs completed before it
            raise
        finally:
            progress.close()
        if best_params is not None and history.stopped_early:
            for p, saved in zip(self.parameters(), best_params):
                p[...] = saved
        return history

    def _run_epoch(self, X, T, labels, order, batch_size, lr, progress, epoch):
        """One epoch: one engine call, or, when progress shows batches, consecutive spans of
        batches (each about a tenth of a second) that take exactly the steps one call would."""
        if not progress.enabled:
            return self._engine.train_epoch(X, T, labels, order, batch_size, lr)
        n = X.shape[0]
        begin, total = 0, 0.0
        while True:
            end = min(n, begin + progress.batches_per_span() * batch_size)
            started = time.perf_counter()
            result = self._engine.train_epoch(X, T, labels, order, batch_size, lr, begin=begin, end=end,
                                              total_before=total)
            value, finite, _, _, pending = result
            progress.batches_done(epoch, end, time.perf_counter() - started, -(-(end - begin) // batch_size))
            if not finite or end == n:
                return result
            if pending is not None:  # a Ctrl-C after the span's last batch: the epoch stops here
                raise pending
            begin, total = end, value

    def _accuracy(self, X, T, labels):
        Y = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        self._engine.forward(X, Y)
        if labels is None:
            labels = (T[:, 0] > 0.5).astype(np.int64) if T.shape[1] == 1 else T.argmax(axis=1)
        predicted = (Y[:, 0] > 0.5).astype(np.int64) if Y.shape[1] == 1 else Y.argmax(axis=1)
        return float(np.mean(predicted == labels))

    # ------------------------------------------------------------ persistence
    def save(self, path):
        """Write the architecture, weights, optimizer state and counters to a versioned .npz
        (no pickle); returns the path written.

        path: a file name (".npz" is added when it lacks it, as numpy does, and load
        applies the same rule, so save("model") and load("model") name one file) or a
        binary file object opened for writing.
        """
        if hasattr(path, "write"):
            self._write(path)
            return path
        file_name = _npz_path(path)
        with open(file_name, "wb") as file:
            self._write(file)
        return file_name

    def _write(self, file):
        """The save format into a binary file object."""
        architecture = {"sizes": self.sizes, "activation": [l.activation for l in self.layers[:-1]],
                        "output": self.output, "loss": self.loss_name, "reduction": self.reduction,
                        "dtype": self.dtype.name, "seed": self.seed}
        arrays = {f"param_{i}": p for i, p in enumerate(self.parameters())}
        first_moment, second_moment = self._engine.optimizer_state()
        arrays.update(state_0=first_moment, state_1=second_moment)
        np.savez(file, format=np.array(FILE_FORMAT), version=np.array(FILE_VERSION),
                 architecture=np.array(json.dumps(architecture)),
                 optimizer=np.array(json.dumps(self._optimizer.config())),
                 shuffle_state=np.array(json.dumps(self._shuffle_rng.bit_generator.state)),
                 counters=np.array([self._engine.steps, self._engine.epochs], dtype=np.int64),
                 **arrays)

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
        if not hasattr(path, "read"):
            path = _existing_path(path)
        try:
            with _archive.Archive(path) as archive:
                return cls._read(archive)
        except FileNotFoundError:
            raise
        except _archive.READ_ERRORS as error:
            raise ValueError(f"{_name_of(path)} is not a valid bpfast network file: {error}") from None

    @classmethod
    def _read(cls, archive):
        """The network in an opened archive: every record and array header is checked, then
        the net is built and each array read into it."""
        file_format = archive.text("format")
        if file_format != FILE_FORMAT:
            raise ValueError(f"its format is {file_format!r}")
        version, = archive.integers("version", ())
        if version != FILE_VERSION:
            raise ValueError(f"it has version {version}; this bpfast reads version {FILE_VERSION}")
        arch = archive.record("architecture", _archive.ARCHITECTURE_BYTES)
        if not isinstance(arch, dict) or set(arch) != set(ARCHITECTURE_KEYS):
            raise ValueError(f"its architecture must be a record of {', '.join(ARCHITECTURE_KEYS)}")
        if not isinstance(arch["activation"], list):
            raise ValueError(f"its activation must be a list of names; got {arch['activation']!r:.80}")
        sizes, hidden, output, loss, reduction, dtype = cls._checked_architecture(
            arch["sizes"], arch["activation"], arch["output"], arch["loss"], arch["reduction"],
            check.choice(arch["dtype"], check.DTYPES, "dtype"))
        seed = arch["seed"] if arch["seed"] is None else check.non_negative_int(arch["seed"], "seed")
        optimizer = optim.from_config(archive.record("optimizer"))  # checks every setting
        shuffle = _shuffle_generator(archive.record("shuffle_state"))
        counters = archive.integers("counters", (2,))
        if not all(0 <= c < 2**63 for c in counters):
            raise ValueError(f"counters must be two non-negative integers; got {counters}")

        # The arrays this architecture needs; the optimizer state is sized as the engines size it.
        shapes = {}
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes[f"param_{2 * l}"], shapes[f"param_{2 * l + 1}"] = (n_out, n_in), (n_out,)
        total = sum(math.prod(shape) for shape in shapes.values())
        if total * dtype.itemsize > archive.size:
            raise ValueError(f"its architecture has {total} parameters, {total * dtype.itemsize} bytes in "
                             f"{dtype}; the file holds {archive.size} bytes")
        config = optimizer.config()
        adam = config["kind"] != "sgd"
        shapes["state_0"] = (total if adam or config["momentum"] != 0 else 0,)
        shapes["state_1"] = (total if adam else 0,)
        archive.require(RECORD_MEMBERS + tuple(shapes))
        for name, shape in shapes.items():
            archive.check_array(name, shape, dtype)

        # Each array's bytes are in the file (members are stored): only now is the net allocated.
        net = cls(sizes, activation=hidden, output=output, loss=loss, reduction=reduction, dtype=dtype,
                  seed=seed, optimizer=optimizer)
        arrays = [(f"param_{i}", p) for i, p in enumerate(net.parameters())]
        arrays += [(f"state_{which}", s) for which, s in enumerate(net._engine.optimizer_state())]
        for name, array in arrays:
            if array.shape != shapes[name]:
                raise ValueError(f"{name} has shape {shapes[name]}; the engine holds {array.shape}")
            archive.read_into(name, array)
            if not check.all_finite(array):
                raise ValueError(f"{name} holds NaN or Inf")
        net._engine.set_counters(*counters)
        net._shuffle_rng = shuffle
        return net


def _path_name(path):
    """path as a str, or TypeError naming the argument."""
    try:
        name = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a file name (str or os.PathLike) or a binary file object; "
                        f"got {type(path).__name__}") from None
    return os.fsdecode(name)


def _npz_path(path):
    """The file that save(path) writes: path with ".npz" added when it lacks it (numpy's rule)."""
    name = _path_name(path)
    return name if name.endswith(".npz") else name + ".npz"


def _existing_path(path):
    """The file that load(path) reads: path as given when it is a file, else save's name for it."""
    name = _path_name(path)
    if os.path.isfile(name):
        return name
    with_suffix = _npz_path(name)
    if with_suffix != name and os.path.isfile(with_suffix):
        return with_suffix
    tried = name if with_suffix == name else f"{name} or {with_suffix}"
    raise FileNotFoundError(errno.ENOENT, f"no bpfast network file at {tried}", name)


def _name_of(file):
    """How an error names what load read: the path, or a file object's name."""
    if not hasattr(file, "read"):
        return file
    return getattr(file, "name", None) or f"the {type(file).__name__}"


def _from_saved_bytes(cls, data):
    """The network of type cls in the bytes of a save(): how pickle and deepcopy rebuild one."""
    with _archive.Archive(io.BytesIO(data)) as archive:
        return cls._read(archive)


def _shuffle_generator(state):
    """A Generator in the saved state of a shuffle stream: a PCG64 state of integers in range."""
    inner = state.get("state") if isinstance(state, dict) else None
    ranges = {"has_uint32": 2, "uinteger": 2**32}
    if not isinstance(inner, dict) or set(state) != {"bit_generator", "state", *ranges} \
            or state["bit_generator"] != "PCG64" or set(inner) != {"state", "inc"}:
        raise ValueError("shuffle_state must be the state of a PCG64 generator")
    values = [(inner[key], 2**128) for key in inner] + [(state[key], bound) for key, bound in ranges.items()]
    if not all(type(value) is int and 0 <= value < bound for value, bound in values):
        raise ValueError("shuffle_state holds a value that is not an integer in range")
    generator = np.random.default_rng(0)
    generator.bit_generator.state = state
    return generator


def _callable_name(f):
    return getattr(f, "__qualname__", None) or repr(f)
