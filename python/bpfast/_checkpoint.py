"""fit's checkpoints: the state of a fit in a file, written atomically, from which a fit
started again resumes and ends bitwise where the uninterrupted one ends.

A checkpoint is the save format of the network (format "bpfast-checkpoint", no
pickle), read and checked as Network.load reads a network, with these members
besides the network's:

    run                  what identifies the fit: the engine, a fingerprint of the
                         data (shapes, dtypes, a hash), the fit arguments that decide
                         its steps (records)
    position             where the fit is: epochs completed, batches done into the
                         next epoch and their running loss total, early stopping's
                         state, whether the fit has finished (record)
    epoch_shuffle_state  the shuffle stream as the epoch at hand began (a resumed
                         epoch draws its order again from it)
    history_<key>        the History so far (float64, one value an epoch)
    best_param_<i>       patience's best weights, when it keeps some

The network's own members hold the weights, optimizer state, counters and
shuffle stream as they are at the checkpoint, and its architecture and
optimizer, which must be the fitting net's.
"""

import hashlib
import math
import os

import numpy as np

from . import _archive
from . import _saveformat
from ._fit import State
from .history import History

VERSION = 1
RUN_KEYS = ("engine", "data", "validation_data", "epochs", "batch_size", "lr", "shuffle", "patience",
            "deterministic", "ranks")
POSITION_KEYS = ("epoch", "batch", "total_before", "finished", "best", "waited", "best_epoch",
                 "stopped_early", "best_weights")
HISTORY_KEYS = ("loss", "val_loss", "val_accuracy")
ARCHITECTURE_KEYS = ("sizes", "activation", "output", "loss", "reduction", "dtype", "compute", "seed")


def fingerprint(arrays):
    """One line for validated arrays (None for absent ones): each one's shape, dtype and a hash
    (SHA-256 over its bytes, 16 hex digits shown)."""
    parts = []
    for array in arrays:
        if array is None:
            continue
        digest = hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()[:16]
        parts.append(f"{tuple(array.shape)} {array.dtype} sha256 {digest}")
    return "; ".join(parts)


class Checkpoint:
    """The checkpoint file of one fit of net: read once as the fit starts (resume), written at
    the end of every epoch, every `every` batches, and as the fit finishes.

    run: the record that identifies the fit (RUN_KEYS but engine, which is the net's class).
    writes: whether this process writes (rank 0 over MPI; every rank reads).
    """

    def __init__(self, net, path, run, every=None, comm=None):
        self.net, self.every, self.comm = net, every, comm
        try:
            self.path = _saveformat._npz_path(path)
        except TypeError:
            raise TypeError(f"checkpoint must be a file name (str or os.PathLike); got {type(path).__name__}") from None
        self.run = {"engine": f"{type(net).__module__}.{type(net).__qualname__}", **run}
        self.rank = None if comm is None else comm.Get_rank()
        self.written = 0  # checkpoints written by this fit

    def gather(self):
        """Over MPI (every rank, once the ranks agree to fit): the data fingerprints of every
        rank, in rank order, as rank 0 writes them (each rank compared only its own on reading)."""
        if self.comm is not None:
            for key in ("data", "validation_data"):
                self.run[key] = self.comm.allgather(self.run[key])

    # ------------------------------------------------------------ reading
    def read(self, optimizer_config):
        """The saved network and State when the file exists, else None. The file is checked as
        Network.load checks a network; a checkpoint of another run (other data, architecture,
        optimizer, fit arguments or engine) raises ValueError naming what differs."""
        if not os.path.exists(self.path):
            return None
        cls = type(self.net)
        try:
            with _archive.Archive(self.path) as archive:
                return self._read(cls, archive, optimizer_config)
        except _CheckpointMismatch as error:
            raise ValueError(f"the checkpoint {self.path} is of another fit: {error}; pass another "
                             "checkpoint path, or remove this file to start afresh") from None
        except _archive.READ_ERRORS as error:
            raise ValueError(f"{self.path} is not a valid bpfast checkpoint: {error}") from None

    def _read(self, cls, archive, optimizer_config):
        names = set(archive.members)
        more = ["run", "position", "epoch_shuffle_state"]
        more += [name for name in names if name.startswith(("history_", "best_param_"))]
        saved = _saveformat.read(cls, archive, _saveformat.CHECKPOINT_FORMAT, VERSION, more)
        run = archive.record("run")
        if not isinstance(run, dict) or set(run) != set(RUN_KEYS):
            raise ValueError(f"its run must be a record of {', '.join(RUN_KEYS)}")
        self._compare(saved, run, optimizer_config)
        position = archive.record("position")
        if not isinstance(position, dict) or set(position) != set(POSITION_KEYS):
            raise ValueError(f"its position must be a record of {', '.join(POSITION_KEYS)}")
        state = self._state(archive, position, saved)
        return saved, state

    def _compare(self, saved, run, optimizer_config):
        """Raise _CheckpointMismatch naming the first thing in which the saved run differs."""
        net = self.net
        for key in ARCHITECTURE_KEYS:
            mine, theirs = _architecture_of(net)[key], _architecture_of(saved)[key]
            if mine != theirs:
                raise _CheckpointMismatch(f"its network's {key} is {theirs!r}, this network's {mine!r}")
        if saved.optimizer.config() != optimizer_config:
            raise _CheckpointMismatch(f"its optimizer is {saved.optimizer.config()}, this fit's "
                                      f"{optimizer_config}")
        keys = [key for key in RUN_KEYS if key != "ranks"]
        for key in ["ranks"] + keys:  # over MPI, the ranks first: the data is one entry a rank
            theirs, mine = run[key], self.run[key]
            if self.rank is not None and key in ("data", "validation_data"):
                theirs = theirs[self.rank] if isinstance(theirs, list) and len(theirs) == run["ranks"] else theirs
                key = f"{key} on rank {self.rank}"
            if theirs != mine:
                what = key.replace("data", "data (X, T)", 1) if key.startswith("data") else key
                raise _CheckpointMismatch(f"its {what} is {theirs!r}, this fit's {mine!r}")

    def _state(self, archive, position, saved):
        """The State in the position record and the history and best weights arrays."""
        epochs = self.run["epochs"]
        epoch, batch, waited = (_count(position[key], key) for key in ("epoch", "batch", "waited"))
        batches = position["batch"]
        if epoch > epochs or (batch and epoch >= epochs):
            raise ValueError(f"its position (epoch {epoch}, batch {batches}) is past the fit's {epochs} epochs")
        total = position["total_before"]
        if type(total) not in (int, float) or not math.isfinite(total) or (batch == 0 and total != 0):
            raise ValueError(f"its total_before must be a finite number (0 at an epoch's start); got {total!r}")
        best = position["best"]
        if best is not None and (type(best) not in (int, float) or not math.isfinite(best)):
            raise ValueError(f"its best must be a finite number or null; got {best!r}")
        for key in ("finished", "stopped_early", "best_weights"):
            if type(position[key]) is not bool:
                raise ValueError(f"its {key} must be true or false; got {position[key]!r}")
        best_epoch = position["best_epoch"]
        if best_epoch is not None and not 1 <= _count(best_epoch, "best_epoch") <= epoch:
            raise ValueError(f"its best_epoch must be an epoch completed; got {best_epoch!r}")

        history = History()
        keys = ["loss"]
        if self.run["validation_data"] is not None:
            keys.append("val_loss")
            if saved.is_classifier:
                keys.append("val_accuracy")
        for key in keys:
            values = np.empty(epoch, np.float64)
            archive.check_array(f"history_{key}", (epoch,), values.dtype)
            archive.read_into(f"history_{key}", values)
            history.history[key] = values.tolist()
        if {name for name in archive.members if name.startswith("history_")} != {f"history_{k}" for k in keys}:
            raise ValueError(f"its history must be the members {', '.join('history_' + k for k in keys)}")
        history.extend(history.history["loss"])
        history.best_epoch, history.stopped_early = best_epoch, position["stopped_early"]

        best_params = None
        stored = sorted(name for name in archive.members if name.startswith("best_param_"))
        if position["best_weights"]:
            best_params = [np.empty_like(p) for p in saved.parameters()]
            if stored != sorted(f"best_param_{i}" for i in range(len(best_params))):
                raise ValueError("its best weights must be one member best_param_<i> a parameter")
            for i, p in enumerate(best_params):
                archive.check_array(f"best_param_{i}", p.shape, p.dtype)
                archive.read_into(f"best_param_{i}", p)
        elif stored:
            raise ValueError("it holds best weights that its position says it has not")
        epoch_shuffle = _saveformat._shuffle_generator(archive.record("epoch_shuffle_state"))
        return State(history, epoch, batch, float(total), position["finished"],
                     math.inf if best is None else float(best), best_params, waited,
                     epoch_shuffle.bit_generator.state)

    # ------------------------------------------------------------ resuming
    def restore(self, saved, state):
        """The fitting net takes the saved net's weights, optimizer state, counters and shuffle
        stream (as the epoch at hand began, when the checkpoint is inside one)."""
        net = self.net
        for p, q in zip(net.parameters(), saved.parameters(), strict=True):
            p[...] = q
        for mine, theirs in zip(net._engine.optimizer_state(), saved._engine.optimizer_state(), strict=True):
            mine[...] = theirs
        net._engine.set_counters(saved._engine.steps, saved._engine.epochs)
        shuffle = state.epoch_shuffle_state if state.batch else saved._shuffle_rng.bit_generator.state
        net._shuffle_rng.bit_generator.state = shuffle  # the runner holds this very Generator

    # ------------------------------------------------------------ writing
    def write(self, state):
        """The checkpoint of the fit in state, atomically; over MPI rank 0 writes, and an error
        there raises on every rank."""
        if self.comm is None:
            return self._write(state)
        from . import distributed
        error = None
        if self.rank == 0:
            try:
                self._write(state)
            except Exception as e:  # noqa: BLE001 - passed on to the other ranks, then raised
                error = e
        message = self.comm.bcast(distributed._describe(error), root=0)
        if error is not None:
            raise error
        if message is not None:
            raise distributed._remote_error(message, 0, "writing the checkpoint")

    def _write(self, state):
        history = state.history
        position = {"epoch": state.epoch, "batch": state.batch, "total_before": float(state.total_before),
                    "finished": bool(state.finished),
                    "best": None if not math.isfinite(state.best) else float(state.best),
                    "waited": state.waited, "best_epoch": history.best_epoch,
                    "stopped_early": bool(history.stopped_early),
                    "best_weights": state.best_params is not None}
        shuffle = state.epoch_shuffle_state or self.net._shuffle_rng.bit_generator.state
        more = {"run": np.array(_saveformat.json.dumps(self.run)),
                "position": np.array(_saveformat.json.dumps(position)),
                "epoch_shuffle_state": np.array(_saveformat.json.dumps(shuffle))}
        for key, values in history.history.items():
            more[f"history_{key}"] = np.array(values, np.float64).reshape(-1)
        if state.best_params is not None:
            more.update({f"best_param_{i}": p for i, p in enumerate(state.best_params)})
        _saveformat.atomic_write(self.path, lambda file: _saveformat.write(
            self.net, file, _saveformat.CHECKPOINT_FORMAT, VERSION, more))
        self.written += 1


class _CheckpointMismatch(Exception):
    """The checkpoint is of another fit (raised as ValueError by read)."""


def _architecture_of(net):
    return {"sizes": net.sizes, "activation": [l.activation for l in net.layers[:-1]], "output": net.output,
            "loss": net.loss_name, "reduction": net.reduction, "dtype": net.dtype.name, "compute": net.compute,
            "seed": net.seed}


def _count(value, name):
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError(f"its {name} must be a non-negative integer; got {value!r:.40}")
    return value
