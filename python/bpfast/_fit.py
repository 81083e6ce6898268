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

    def run_epoch(self, epoch, order, progress):
        """One epoch: one engine call, or, when progress shows batches, consecutive spans of
        batches that take exactly the steps one call would."""
        X, T, labels, batch_size, lr = self.X, self.T, self.labels, self.batch_size, self.lr
        if not progress.enabled:
            value, finite, batch, layer, pending = self.engine.train_epoch(X, T, labels, order, batch_size, lr)
            return value, finite, batch, layer, "", pending
        n = X.shape[0]
        result, end = (0.0, True, -1, -1, None), 0  # the engine's answer for the spans so far

        def run_span(first, stop):
            nonlocal result, end
            end = min(n, stop * batch_size)
            result = self.engine.train_epoch(X, T, labels, order, batch_size, lr, begin=first * batch_size,
                                             end=end, total_before=result[0])
            return result[1] and end < n and result[4] is None

        progress.run_in_spans(epoch, -(-n // batch_size), run_span)
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


def fit_epochs(runner, epochs, shuffle, validation, patience, callbacks, verbose, parameters, is_classifier):
    """Network.fit's loop over epochs on a started runner; returns the History.
    parameters: the net's parameters() (early stopping keeps and restores copies of them)."""
    history = History()
    if validation is not None:
        history.history["val_loss"] = []
        if is_classifier:
            history.history["val_accuracy"] = []
    monitored_name = "val_loss" if validation is not None else "loss"
    best, best_params, waited = np.inf, None, 0
    progress = runner.progress(epochs, verbose)
    try:
        for epoch in range(1, epochs + 1):
            order = runner.order(shuffle)
            value, finite, batch, layer, culprit, pending = runner.run_epoch(epoch, order, progress)
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
            if monitored < best:
                best, waited, history.best_epoch = monitored, 0, epoch
                if patience is not None:
                    best_params = [p.copy() for p in parameters()]
            else:
                waited += 1
            stopped_by = runner.callbacks(callbacks, epoch, logs)
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
        for p, saved in zip(parameters(), best_params):
            p[...] = saved
    return history


def raise_not_finite(layer, culprit=""):
    """The FloatingPointError of a train_step whose loss, gradients or update are not finite."""
    where = f"layer {layer}" if layer >= 0 else "the loss"
    raise FloatingPointError(f"the loss, a gradient or the update is not finite (first at {where}){culprit}; "
                             "the weights were not updated")


def _callable_name(f):
    return getattr(f, "__qualname__", None) or repr(f)
