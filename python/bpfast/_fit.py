"""Network.fit's epochs: the loop over epochs (logs, validation, early stopping,
callbacks, Ctrl-C, the progress display), written once over an epoch runner.

An epoch runner runs the steps of one epoch and says what every rank must agree
on. fit chooses one, once: ``Local`` here, over the engine's ``train_epoch``, or
``bpfast.distributed.Epochs``, over a communicator. Both take the same calls:

    batch(X, T, x_name, t_name)     the validated (X, dense T, labels)
    settings(**more)                what the ranks must agree on (None locally)
    agree_failure(error, doing)     an argument error, raised on every rank
    agree(doing, settings, rows, validation_rows)
    start(X, T, labels, batch_size, lr, deterministic)
    progress(epochs, verbose)       the display (shown by one rank)
    order(shuffle)                  this epoch's order of the rows, or None
    run_epoch(epoch, order, progress) -> (loss, finite, batch, layer, culprit, pending)
    validation_logs(validation, is_classifier)
    shared(logs, doing)             the logs every rank decides on
    callbacks(callbacks, epoch, logs) -> the callbacks that asked to stop
"""

import math

import numpy as np

from . import _progress
from .history import History


class Local:
    """Epochs in this process: one engine call per epoch, or one per span of batches while
    the progress display shows them."""

    def __init__(self, engine, shuffle_rng, checked_batch, n_out):
        self.engine, self.shuffle_rng, self._checked_batch, self.n_out = engine, shuffle_rng, checked_batch, n_out

    def batch(self, X, T, x_name="X", t_name="T"):
        return self._checked_batch(X, T, x_name, t_name)

    def settings(self, **more):
        return None

    def agree_failure(self, error, doing):
        pass  # the caller raises it

    def agree(self, doing, settings, rows, validation_rows):
        pass

    def start(self, X, T, labels, batch_size, lr, deterministic):
        self.X, self.T, self.labels, self.batch_size, self.lr = X, T, labels, batch_size, lr

    def progress(self, epochs, verbose):
        return _progress.Progress(epochs, self.X.shape[0], self.batch_size, verbose)

    def order(self, shuffle):
        return self.shuffle_rng.permutation(self.X.shape[0]) if shuffle else None

    def batches(self):
        """The batches of an epoch."""
        return -(-self.X.shape[0] // self.batch_size)

    def run_epoch(self, epoch, order, progress, first=0, total_before=0.0, every=None, at_boundary=None):
        """One epoch: one engine call, or, when progress shows batches or a checkpoint is due every
        `every` batches, consecutive spans of batches that take exactly the steps one call would.
        A resumed epoch starts at batch `first` with the running loss total total_before;
        at_boundary(batches_done, total) is called after every `every` batches (not at the end)."""
        X, T, labels, batch_size, lr = self.X, self.T, self.labels, self.batch_size, self.lr
        if not progress.enabled and first == 0 and every is None:
            value, finite, batch, layer, pending = self.engine.train_epoch(X, T, labels, order, batch_size, lr)
            return value, finite, batch, layer, "", pending
        n = X.shape[0]
        result, end = (total_before, True, -1, -1, None), first * batch_size  # the spans' answer so far

        def run_span(first, stop):
            nonlocal result, end
            end = min(n, stop * batch_size)
            result = self.engine.train_epoch(X, T, labels, order, batch_size, lr, begin=first * batch_size,
                                             end=end, total_before=result[0])
            go_on = result[1] and end < n and result[4] is None
            if go_on and every is not None and stop % every == 0:
                at_boundary(stop, result[0])
            return go_on

        progress.run_in_spans(epoch, self.batches(), run_span, first, every)
        value, finite, batch, layer, pending = result
        if finite and end < n and pending is not None:  # a Ctrl-C after a span's last batch: the epoch stops here
            raise pending
        return value, finite, batch, layer, "", pending

    def validation_logs(self, validation, is_classifier):
        logs = {"val_loss": self.engine.loss(*validation)}
        if is_classifier:
            logs["val_accuracy"] = accuracy(self.engine, *validation, self.n_out)
        return logs

    def shared(self, logs, doing):
        return logs

    def callbacks(self, callbacks, epoch, logs):
        return [cb for cb in callbacks if cb(epoch, dict(logs)) is True]


def accuracy(engine, X, T, labels, n_out):
    """The fraction of the rows of X whose predicted class is the target's (n_out: the net's outputs)."""
    Y = np.empty((X.shape[0], n_out), dtype=X.dtype)
    engine.forward(X, Y)
    if labels is None:
        labels = (T[:, 0] > 0.5).astype(np.int64) if T.shape[1] == 1 else T.argmax(axis=1)
    predicted = (Y[:, 0] > 0.5).astype(np.int64) if Y.shape[1] == 1 else Y.argmax(axis=1)
    return float(np.mean(predicted == labels))


class State:
    """Where a fit is, besides the network: what fit_epochs carries from epoch to epoch (and a
    checkpoint keeps, bpfast._checkpoint)."""

    def __init__(self, history, epoch=0, batch=0, total_before=0.0, finished=False, best=math.inf,
                 best_params=None, waited=0, epoch_shuffle_state=None):
        self.history, self.epoch, self.batch, self.total_before = history, epoch, batch, total_before
        self.finished, self.best, self.best_params, self.waited = finished, best, best_params, waited
        self.epoch_shuffle_state = epoch_shuffle_state


def fit_epochs(runner, epochs, shuffle, validation, patience, callbacks, verbose, parameters, is_classifier,
               checkpoint=None, resumed=None):
    """Network.fit's loop over epochs on a started runner; returns the History.
    parameters: the net's parameters() (early stopping keeps and restores copies of them).
    checkpoint: a bpfast._checkpoint.Checkpoint to write as the fit goes (None: none);
    resumed: the State it was read in (None: the fit starts at its first epoch)."""
    if resumed is None:
        history = History()
        if validation is not None:
            history.history["val_loss"] = []
            if is_classifier:
                history.history["val_accuracy"] = []
        state = State(history)
    else:
        state, history = resumed, resumed.history
        if state.batch >= runner.batches():
            raise ValueError(f"the checkpoint {checkpoint.path} is inside epoch {state.epoch + 1} at batch "
                             f"{state.batch}, past the {runner.batches()} batches of an epoch of this fit")
        if state.finished:
            return history
    monitored_name = "val_loss" if validation is not None else "loss"
    every = None if checkpoint is None else checkpoint.every
    progress = runner.progress(epochs, verbose)

    def at_boundary(epoch, batches_done, total):  # a checkpoint inside an epoch
        state.batch, state.total_before = batches_done, total
        checkpoint.write(state)

    try:
        for epoch in range(state.epoch + 1, epochs + 1):
            if checkpoint is not None:
                state.epoch_shuffle_state = runner.shuffle_rng.bit_generator.state
            order = runner.order(shuffle)
            first, total_before = state.batch, state.total_before
            value, finite, batch, layer, culprit, pending = runner.run_epoch(
                epoch, order, progress, first, total_before, every,
                None if every is None else lambda done, total: at_boundary(epoch, done, total))
            if not finite:
                where = f", layer {layer}" if layer >= 0 else " (in the loss)"
                raise FloatingPointError(
                    f"training stopped: the loss, a gradient or the update is not finite at epoch {epoch}, "
                    f"batch {batch + 1}{where}{culprit}; the weights from before that batch are kept")
            logs = {"loss": value}
            if validation is not None:
                logs.update(runner.validation_logs(validation, is_classifier))
            logs = runner.shared(logs, f"the logs of epoch {epoch}")
            for key, record in logs.items():
                history.history[key].append(record)
            history.append(logs["loss"])
            progress.end_epoch(epoch, logs)
            if pending is not None:  # a Ctrl-C as the epoch ended: raised once the epoch is recorded
                raise pending
            monitored = logs[monitored_name]
            if monitored < state.best:
                state.best, state.waited, history.best_epoch = monitored, 0, epoch
                if patience is not None:
                    state.best_params = [p.copy() for p in parameters()]
            else:
                state.waited += 1
            stopped_by = runner.callbacks(callbacks, epoch, logs)
            state.epoch, state.batch, state.total_before, state.epoch_shuffle_state = epoch, 0, 0.0, None
            if patience is not None and state.waited >= patience:
                history.stopped_early = True
                progress.say(f"early stopping after epoch {epoch}: {monitored_name} has not improved on "
                             f"{state.best:.6g} for {state.waited} epochs (patience={patience}); restored the "
                             f"weights of epoch {history.best_epoch}")
                break
            if stopped_by:
                progress.say(f"stopped after epoch {epoch}: callback {_callable_name(stopped_by[0])} "
                             "returned True")
                break
            if checkpoint is not None and epoch < epochs:
                checkpoint.write(state)
    except KeyboardInterrupt as interrupt:
        interrupt.history = history  # the epochs completed before it
        raise
    finally:
        progress.close()
    if state.best_params is not None and history.stopped_early:
        for p, saved in zip(parameters(), state.best_params):
            p[...] = saved
    if checkpoint is not None:
        state.finished = True
        checkpoint.write(state)
    return history


def raise_not_finite(layer, culprit=""):
    """The FloatingPointError of a train_step whose loss, gradients or update are not finite."""
    where = f"layer {layer}" if layer >= 0 else "the loss"
    raise FloatingPointError(f"the loss, a gradient or the update is not finite (first at {where}){culprit}; "
                             "the weights were not updated")


def _callable_name(f):
    return getattr(f, "__qualname__", None) or repr(f)
