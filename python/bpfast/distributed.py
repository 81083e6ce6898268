"""Data-parallel training over MPI (mpi4py): ``net.fit(X, y, comm=comm)`` and
``net.train_step(X, T, comm=comm)``.

Every rank holds a whole copy of the network and its own rows. A step is one
process's step on the global batch, the concatenation of the ranks' batches in
rank order: each rank computes its batch's gradients natively, scales them by
its share of the global batch (rows / global rows for reduction "mean", 1 for
"sum"), the ranks sum them in place in the engine's flat gradient buffer
(``comm.Allreduce(MPI.IN_PLACE, ...)``, or a chain in rank order when
deterministic), and every rank applies the same update to the same weights.

An epoch has as many steps on every rank as the rank with the most batches
needs; a rank that has run out of rows contributes an empty batch (zero
gradients, no weight), so unequal row counts never leave a rank waiting in a
collective that the others skipped.

mpi4py is imported only when a communicator is given; ``shard`` needs none of it.

A watchdog guards every collective after the first on a communicator: a
rank that has waited longer than BPFAST_MPI_TIMEOUT seconds (600 unless set;
0 turns it off) in one collective, for a rank that died or hangs, prints why
and ends every rank with MPI_Abort. Set it well above the longest stretch
between two collectives (a step, an epoch's validation and callbacks). The
first collective is not watched: ranks may reach it far apart (one still
loading its data, say).
"""

import contextlib
import os
import sys
import threading
import time
import weakref

import numpy as np

from . import _core, _fit, _progress
from . import _validate as check

__all__ = ["shard", "save", "deterministic"]

_BUILTIN_ERRORS = {cls.__name__: cls for cls in (ValueError, TypeError, FloatingPointError, OSError,
                                                 FileNotFoundError, KeyError, IndexError)}


class deterministic:
    """A communicator whose ranks sum their gradients in rank order: give it as comm= to
    train_step or fit (fit also takes deterministic=True)."""

    def __init__(self, comm):
        self.comm = comm

    def __repr__(self):
        return f"bpfast.distributed.deterministic({self.comm!r})"


def unwrap(comm):
    """(the communicator, whether its sum is in rank order) of what comm= was given."""
    if isinstance(comm, deterministic):
        return comm.comm, True
    return comm, False


def shard(X, y, comm):
    """This rank's contiguous block of rows of (X, y): rank r of R gets rows [lo, hi) with the
    first n % R ranks one row longer; blocks follow each other in rank order. Views, not copies,
    when X and y are numpy arrays."""
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X and y must have the same number of rows; got {n} and {len(y)}")
    rank, size = comm.Get_rank(), comm.Get_size()
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    hi = lo + base + (rank < extra)
    return X[lo:hi], y[lo:hi]


def save(net, path, comm):
    """net.save(path) on rank 0 only (every rank holds the same weights); every rank returns
    the name written, and an error on rank 0 raises on every rank."""
    name, error = None, None
    if comm.Get_rank() == 0:
        try:
            name = net.save(path)
        except Exception as e:  # noqa: BLE001 - passed on to the other ranks, then raised
            error = e
    name, message = comm.bcast((None if error else name, _describe(error)), root=0)
    if error is not None:
        raise error
    if message is not None:
        raise _remote_error(message, 0, "saving")
    return name


def _describe(error):
    return None if error is None else (type(error).__name__, str(error))


def _remote_error(message, rank, doing):
    """The error that a rank raises for another rank's: the same builtin type when it is one."""
    kind, text = message
    return _BUILTIN_ERRORS.get(kind, RuntimeError)(f"rank {rank} failed {doing}: {kind}: {text}")


class Replica:
    """A rank's network as bpfast.Network hands it over: its engine, its shuffle stream, its
    check of a batch, checked_batch(X, T, x_name, t_name) -> (X, dense T, labels), and its
    architecture (sizes, activations, loss, reduction, dtype), which the ranks must agree on."""

    def __init__(self, engine, shuffle_rng, checked_batch, architecture):
        self.engine, self.shuffle_rng, self.checked_batch = engine, shuffle_rng, checked_batch
        self.architecture = architecture
        self.reduction, self.n_out = architecture["reduction"], architecture["sizes"][-1]

    def batch(self, X, T, x_name="X", t_name="T"):
        """(X, dense T, labels) of this rank, checked as a single process checks them, except
        that a rank may hold no rows (shape (0, n_in)): its contributions are then empty."""
        n_in = self.architecture["sizes"][0]
        if np.ndim(X) == 2 and np.shape(X)[0] == 0:
            if np.shape(X)[1] != n_in:
                raise ValueError(f"{x_name} must have shape (batch, {n_in}); got {np.shape(X)}")
            if np.ndim(T) not in (1, 2) or np.shape(T)[0] != 0:
                raise ValueError(f"{t_name} must have 0 rows to match {x_name}; got shape {np.shape(T)}")
            return np.empty((0, n_in), self.architecture["dtype"]), None, None
        return self.checked_batch(X, T, x_name, t_name)

    def settings(self, optimizer, **more):
        """What every rank must agree on before training together (optimizer: its config())."""
        if self.engine.objective[0] != 0:
            raise ValueError("distributed training does not take an L2 term in the objective (set_objective)")
        return {**self.architecture, "optimizer": optimizer, "objective": tuple(self.engine.objective), **more}


TIMEOUT_VARIABLE = "BPFAST_MPI_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0  # a wait this long in one collective means a rank died or hangs
# mpiexec forwards a rank's output on its own schedule and MPI_Abort tears the launch down at
# once: the watchdog's message waits this long for it to go out (once, in CI under load, the
# launch ended with none of the ranks' messages shown).
ABORT_GRACE_S = 0.5


class Watchdog:
    """Ends every rank (MPI_Abort) when this one has waited longer than `seconds` in one
    collective. One thread per process (started with the first watchdog, and again should it
    have gone: after a fork, say) looks at the waits in progress of every live watchdog a few
    times a second."""

    _live = weakref.WeakSet()
    _thread = None
    _lock = threading.Lock()  # guards _live and _thread

    def __init__(self, comm, seconds):
        self.comm, self.rank, self.seconds = comm, comm.Get_rank(), seconds
        self.since, self.doing = None, None
        with Watchdog._lock:
            Watchdog._live.add(self)
            if Watchdog._thread is None or not Watchdog._thread.is_alive():
                Watchdog._thread = threading.Thread(target=Watchdog._watch_all, name="bpfast-mpi-watchdog",
                                                    daemon=True)
                Watchdog._thread.start()

    @contextlib.contextmanager
    def waiting(self, doing):
        self.doing, self.since = doing, time.monotonic()
        try:
            yield
        finally:
            self.since = None

    @staticmethod
    def _watch_all():
        while True:
            time.sleep(0.25)
            with Watchdog._lock:
                dogs = list(Watchdog._live)
            for dog in dogs:
                try:
                    dog._check()
                except Exception:  # noqa: BLE001 - one watchdog's failure must not stop the others'
                    pass

    def _check(self):
        since = self.since
        if since is not None and time.monotonic() - since > self.seconds:
            try:
                sys.stderr.write(f"bpfast.distributed: rank {self.rank} has waited more than {self.seconds:g} s "
                                 f"for the other ranks in {self.doing} (a rank died or hangs; "
                                 f"{TIMEOUT_VARIABLE}); ending every rank\n")
                sys.stderr.flush()
                time.sleep(ABORT_GRACE_S)
            finally:
                self.comm.Abort(124)


def _timeout():
    """BPFAST_MPI_TIMEOUT as seconds (DEFAULT_TIMEOUT_S when not set), or None (0: no watchdog)."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be a number of seconds; got {text!r}") from None
    if not seconds >= 0:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be a number of seconds >= 0; got {text!r}")
    return seconds or None


_NOT_WATCHED = contextlib.nullcontext()


class Group:
    """A communicator as fit and train_step use it: agreement, broadcast of the state, the
    reduction of a step, and the global means of an epoch's figures."""

    def __init__(self, comm):
        from mpi4py import MPI
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.in_step = False  # whether the net has had rank 0's state since it met this communicator
        self.overlap = os.environ.get("BPFAST_OVERLAP", "0") == "1"
        self._chain_buffer = None
        self._rows = np.zeros(2, np.int64)  # [ranks with bad input, rows]: train_step's agreement
        self._loss = np.zeros(1, np.float64)
        seconds = _timeout()
        self._watchdog = None if seconds is None else Watchdog(comm, seconds)
        self._met = False  # whether a collective on this communicator has completed

    def _waiting(self, doing):
        """A context for a collective that may wait for the other ranks: watched when a timeout is
        set, from the second collective on (ranks may reach the first at very different times,
        one still loading its data, say)."""
        if not self._met:
            return self._first_meeting()
        return _NOT_WATCHED if self._watchdog is None else self._watchdog.waiting(doing)

    @contextlib.contextmanager
    def _first_meeting(self):
        yield
        self._met = True

    # ------------------------------------------------------------ agreement
    def agree(self, error, doing, settings=None, facts=None):
        """Every rank's (error, settings, facts) gathered: raises on every rank when one rank
        failed (its own error there, the first failing rank's elsewhere) or when its settings
        differ from rank 0's. Returns every rank's facts, in rank order. Blocks until every rank
        has called it."""
        with self._waiting(f"the agreement before {doing}"):
            gathered = self.comm.allgather((_describe(error), settings, facts))
        if error is not None:
            raise error
        for rank, (message, _, _) in enumerate(gathered):
            if message is not None:
                raise _remote_error(message, rank, doing)
        if settings is not None:
            first = gathered[0][1]
            for rank, (_, theirs, _) in enumerate(gathered):
                for key in settings:
                    if theirs.get(key) != first.get(key):
                        raise ValueError(f"the ranks must agree on {key} for {doing}: rank 0 has "
                                         f"{first.get(key)!r}, rank {rank} has {theirs.get(key)!r}")
        return [facts for _, _, facts in gathered]

    def agree_rows(self, error, rows, doing):
        """train_step's agreement, one small Allreduce when all is well: the global rows of the step."""
        self._rows[0], self._rows[1] = error is not None, rows
        with self._waiting(f"the agreement before {doing}"):
            self.comm.Allreduce(self.MPI.IN_PLACE, self._rows, op=self.MPI.SUM)
        if self._rows[0]:
            self.agree(error, doing)  # names the rank (only reached when some rank failed)
        if self._rows[1] == 0:
            raise ValueError(f"{doing}: no rank has a row")
        return int(self._rows[1])

    # ------------------------------------------------------------ state
    def broadcast_state(self, engine, shuffle_rng):
        """Rank 0's weights, optimizer state, counters and shuffle stream on every rank."""
        with self._waiting("the broadcast of rank 0's state"):
            self.comm.Bcast(engine.flat_parameters(), root=0)
            for state in engine.optimizer_state():
                if state.size:
                    self.comm.Bcast(state, root=0)
            steps, epochs, shuffle = self.comm.bcast(
                (engine.steps, engine.epochs, shuffle_rng.bit_generator.state), root=0)
        engine.set_counters(steps, epochs)
        shuffle_rng.bit_generator.state = shuffle
        self.in_step = True

    def permutation(self, rng, rows):
        """This rank's order of its rows for an epoch: a permutation drawn from a Generator keyed
        by a value that rng (in the same state on every rank) draws, and by the rank."""
        key = int(rng.integers(2**63))
        return np.random.default_rng([key, self.rank]).permutation(rows)

    # ------------------------------------------------------------ one step
    def reduce(self, engine, loss, share, deterministic):
        """share·(this rank's gradients) summed over the ranks in place in the engine's flat
        gradient buffer, and share·loss likewise; returns the summed loss (the global batch's)."""
        grads = engine.flat_gradients()
        if share != 1.0:
            np.multiply(grads, grads.dtype.type(share), out=grads)
        self._loss[0] = loss * share
        with self._waiting("the sum of the gradients"):
            if deterministic:
                self._chain_sum(grads)
            else:
                MPI = self.MPI
                request = self.comm.Iallreduce(MPI.IN_PLACE, self._loss, op=MPI.SUM)
                self.comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
                request.Wait()
        return float(self._loss[0])

    def reduce_overlapped(self, engine, X, T, labels, rows, share):
        """compute_gradients and reduce at once: each layer's share·gradients start their
        Iallreduce as soon as the backward pass has finished them (the last layer first; a rank
        without rows starts the same sums of zeros in the same order); returns the summed loss."""
        grads, MPI = engine.flat_gradients(), self.MPI
        ranges = self._layer_ranges(engine)
        requests = []

        def ready(layer):
            part = grads[ranges[layer][0]:ranges[layer][1]]
            if share != 1.0:
                np.multiply(part, part.dtype.type(share), out=part)
            requests.append(self.comm.Iallreduce(MPI.IN_PLACE, part, op=MPI.SUM))
            MPI.Request.Testall(requests)  # moves the earlier layers' sums along

        if rows:
            loss = engine.compute_gradients(X, T, labels, None, ready)
        else:
            grads.fill(0)
            loss = 0.0
            for layer in reversed(range(len(ranges))):
                ready(layer)
        self._loss[0] = loss * share
        requests.append(self.comm.Iallreduce(MPI.IN_PLACE, self._loss, op=MPI.SUM))
        with self._waiting("the sum of the gradients"):
            MPI.Request.Waitall(requests)
        return float(self._loss[0])

    def _layer_ranges(self, engine):
        """[(begin, end)] of each layer's W and b in the flat gradient buffer, from the core's layout."""
        if getattr(self, "_ranges_for", None) != engine.sizes:
            self._ranges = _core.ParameterLayout(engine.sizes).layers
            self._ranges_for = list(engine.sizes)
        return self._ranges

    def _chain_sum(self, grads):
        """The sum in rank order, ((g_0 + g_1) + g_2) + ..., computed along a chain of ranks and
        broadcast from the last: the same bits for the same partial gradients, run after run."""
        if self._chain_buffer is None or self._chain_buffer.shape != grads.shape \
                or self._chain_buffer.dtype != grads.dtype:
            self._chain_buffer = np.empty_like(grads)
        comm, before, after, last = self.comm, self.rank - 1, self.rank + 1, self.size - 1
        partial_loss = np.zeros(1, np.float64)
        if self.rank > 0:
            comm.Recv(self._chain_buffer, source=before, tag=11)
            comm.Recv(partial_loss, source=before, tag=12)
            np.add(self._chain_buffer, grads, out=grads)
            self._loss += partial_loss
        if self.rank < last:
            comm.Send(grads, dest=after, tag=11)
            comm.Send(self._loss, dest=after, tag=12)
        comm.Bcast(grads, root=last)
        comm.Bcast(self._loss, root=last)

    def step(self, engine, X, T, labels, rows, global_rows, lr, reduction, deterministic):
        """One step of the global batch: (global loss, finite, non_finite_layer)."""
        share = rows / global_rows if reduction == "mean" else 1.0
        if self.overlap and not deterministic:
            return engine.apply_update(self.reduce_overlapped(engine, X, T, labels, rows, share), lr)
        if rows:
            loss = engine.compute_gradients(X, T, labels)
        else:
            engine.flat_gradients().fill(0)
            loss = 0.0
        return engine.apply_update(self.reduce(engine, loss, share, deterministic), lr)

    def culprits(self, engine, X, T, labels, rows):
        """The ranks whose own batch gave a non-finite loss or gradient, after a step that was not
        finite (and so changed nothing: recomputing gives each rank's gradients again)."""
        bad = False
        if rows:
            loss = engine.compute_gradients(X, T, labels)
            bad = not (np.isfinite(loss) and check.all_finite(engine.flat_gradients()))
        with self._waiting("the search for a non-finite batch"):
            flags = self.comm.allgather(bad)
        return [rank for rank, flag in enumerate(flags) if flag]

    def train_step(self, replica, X, T, lr, deterministic, optimizer_config):
        """Network.train_step with a communicator: one step of the global batch, every rank's
        (X, T) its rows of it; the first on this communicator broadcasts rank 0's state."""
        error = settings = None
        rows = 0
        try:
            lr = check.learning_rate(lr)
            X, T, labels = replica.batch(X, T)
            rows = X.shape[0]
            settings = replica.settings(optimizer=optimizer_config, lr=lr, deterministic=deterministic)
        except Exception as e:  # noqa: BLE001 - every rank raises, after agreeing
            error = e
        if not self.in_step:
            self.agree(error, "train_step", settings)
            self.broadcast_state(replica.engine, replica.shuffle_rng)
        global_rows = self.agree_rows(error, rows, "train_step")
        engine = replica.engine
        value, finite, layer = self.step(engine, X, T, labels, rows, global_rows, lr, replica.reduction,
                                         deterministic)
        if not finite:
            _fit.raise_not_finite(layer, culprit_text(self.culprits(engine, X, T, labels, rows)))
        return value

    def run_callbacks(self, callbacks, epoch, logs):
        """Each rank's callbacks on the same logs; one that raises stops every rank (with its
        error there and a note naming it elsewhere). Rank 0's callbacks decide whether to stop:
        the list of those that returned True there (on the other ranks, a stand-in when they did)."""
        error, stopped_by = None, []
        try:
            stopped_by = [cb for cb in callbacks if cb(epoch, dict(logs)) is True]
        except Exception as e:  # noqa: BLE001 - every rank raises, after agreeing
            error = e
        decisions = self.agree(error, f"a callback after epoch {epoch}", facts=bool(stopped_by))
        if self.rank == 0 or not decisions[0]:
            return stopped_by if decisions[0] else []
        return ["a callback of rank 0"]

    def rank_0s(self, value, doing):
        """Rank 0's value on every rank (an epoch's logs, so that every decision taken on them,
        early stopping's among them, is the same everywhere even if MPI's sums differed by a bit)."""
        with self._waiting(doing):
            return self.comm.bcast(value, root=0)

    def sum(self, *values):
        """The sums over the ranks of a few floats (one small Allreduce)."""
        buffer = np.array(values, np.float64)
        with self._waiting("the sum of an epoch's figures"):
            self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        return buffer


class Epochs:
    """fit's epoch runner over a communicator (the MPI twin of bpfast._fit.Local; see there
    for the calls): every rank runs the same global steps, each on its own rows."""

    def __init__(self, group, replica):
        self.group, self.replica, self.engine = group, replica, replica.engine

    def batch(self, X, T, x_name="X", t_name="T"):
        return self.replica.batch(X, T, x_name, t_name)

    def settings(self, **more):
        return self.replica.settings(**more)

    def agree_failure(self, error, doing):
        self.group.agree(error, doing)  # raises on every rank

    def agree(self, doing, settings, rows, validation_rows):
        facts = self.group.agree(None, doing, settings, (rows, 0 if validation_rows is None else validation_rows))
        if sum(f[0] for f in facts) == 0:
            raise ValueError(f"{doing}: no rank has a row of X")
        if validation_rows is not None and sum(f[1] for f in facts) == 0:
            raise ValueError(f"{doing}: no rank has a row of X_val")
        self.counts = [f[0] for f in facts]

    def start(self, X, T, labels, batch_size, lr, deterministic):
        """Rank 0's state on every rank, and the plan from every rank's row count: steps per
        epoch (the most batches any rank has), the global rows of each step."""
        self.group.broadcast_state(self.engine, self.replica.shuffle_rng)
        self.X, self.T, self.labels, self.lr = X, T, labels, lr
        self.batch_size, self.deterministic = batch_size, deterministic
        counts = self.counts
        self.rows = counts[self.group.rank]
        self.total_rows = sum(counts)
        self.steps = max(-(-c // batch_size) for c in counts)
        self.step_rows = [sum(min(batch_size, max(0, c - s * batch_size)) for c in counts)
                          for s in range(self.steps)]

    def progress(self, epochs, verbose):
        """Shown by rank 0 only, counting the steps of the global batches."""
        return _progress.Progress(epochs, self.steps * self.batch_size, self.batch_size,
                                  verbose and self.group.rank == 0)

    def order(self, shuffle):
        return self.group.permutation(self.replica.shuffle_rng, self.X.shape[0]) if shuffle else None

    @property
    def shuffle_rng(self):
        return self.replica.shuffle_rng

    def batches(self):
        """The global steps of an epoch."""
        return self.steps

    def run_epoch(self, epoch, order, progress, first=0, total_before=0.0, every=None, at_boundary=None):
        """One epoch of global steps, the loss as the engine's train_epoch gives it
        (batch-size-weighted mean, or sum); first, total_before, every and at_boundary as
        bpfast._fit.Local.run_epoch has them (a resumed epoch, checkpoints inside one)."""
        engine, X, T, labels, batch_size = self.engine, self.X, self.T, self.labels, self.batch_size
        reduction = self.replica.reduction
        mean = reduction == "mean"
        total, failed = total_before, None

        def run_span(first, stop):
            nonlocal total, failed
            for step in range(first, stop):
                start, end = step * batch_size, min(self.rows, (step + 1) * batch_size)
                rows = max(0, end - start)
                Xb = Tb = Lb = None
                if rows:
                    picked = slice(start, end) if order is None else order[start:end]
                    Xb = X[picked]
                    Tb = None if T is None else T[picked]
                    Lb = None if labels is None else labels[picked]
                value, finite, layer = self.group.step(engine, Xb, Tb, Lb, rows, self.step_rows[step], self.lr,
                                                       reduction, self.deterministic)
                if not finite:
                    failed = (value, False, step, layer,
                              culprit_text(self.group.culprits(engine, Xb, Tb, Lb, rows)), None)
                    return False
                total += value * self.step_rows[step] if mean else value
            if every is not None and stop % every == 0 and stop < self.steps:
                at_boundary(stop, total)
            return True

        progress.run_in_spans(epoch, self.steps, run_span, first, every)
        if failed is not None:
            return failed
        engine.set_counters(engine.steps, engine.epochs + 1)  # as the engine's train_epoch ends an epoch
        return (total / self.total_rows if mean else total), True, -1, -1, "", None

    def validation_logs(self, validation, is_classifier):
        """val_loss (and val_accuracy for a classifier) over every rank's validation rows."""
        X, T, labels = validation
        rows, mean = X.shape[0], self.replica.reduction == "mean"
        loss = correct = 0.0
        if rows:
            loss = self.engine.loss(X, T, labels)
            if mean:
                loss *= rows
            if is_classifier:
                correct = _fit.accuracy(self.engine, X, T, labels, self.replica.n_out) * rows
        loss, correct, total = self.group.sum(loss, correct, rows)
        logs = {"val_loss": float(loss / total if mean else loss)}
        if is_classifier:
            logs["val_accuracy"] = float(correct / total)
        return logs

    def shared(self, logs, doing):
        return self.group.rank_0s(logs, doing)

    def callbacks(self, callbacks, epoch, logs):
        return self.group.run_callbacks(callbacks, epoch, logs)


def culprit_text(ranks):
    """Where a non-finite step came from, for the error message."""
    if not ranks:
        return " (every rank's own batch was finite: the sum over ranks or the update is not)"
    return f" (from the batch of rank {', '.join(map(str, ranks))})"
