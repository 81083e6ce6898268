"""The program that tests/distributed/test_distributed.py runs under mpiexec (``python -m mpi4py``).

    mpiexec -n N python -m mpi4py tests/distributed/mpi_worker.py OUT_DIR SCENARIO

Each scenario trains or fails on every rank and rank 0 writes what every rank
ended with to OUT_DIR/SCENARIO.npz (runs: one entry per run and rank) for the
parent to compare with its own single-process oracle. The problem, the runs
and the row splits are defined here, without MPI, so that the parent builds
the same ones.
"""

import contextlib
import io
import os
import sys

import numpy as np

N_ROWS, N_IN, N_OUT, BATCH = 23, 6, 3, 4


# A run's dtype names a precision of bpfast._precision: mixed_bfloat16 keeps float32 and
# computes its products in bfloat16 (its gradients are float32 and summed as float32's are).
STORAGE = {"float64": "float64", "float32": "float32", "mixed_bfloat16": "float32"}


def problem(dtype):
    """The rows every run trains on: X (N_ROWS, N_IN), integer labels, validation rows."""
    dtype = STORAGE[dtype]
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N_ROWS, N_IN)).astype(dtype)
    labels = rng.integers(0, N_OUT, N_ROWS)
    X_val = rng.standard_normal((11, N_IN)).astype(dtype)
    return X, labels, X_val, rng.integers(0, N_OUT, 11)


def counts(n, size, uneven):
    """Rows per rank: bpfast.distributed.shard's blocks; uneven, blocks that grow with the rank
    (rank 0 runs out of batches first; with 3 ranks it has an empty batch each epoch); "empty",
    shard's blocks over all ranks but the last, which has no rows (when it is not alone)."""
    if uneven == "empty" and size > 1:
        return counts(n, size - 1, False) + [0]
    if uneven in (False, "empty"):
        base, extra = divmod(n, size)
        return [base + (r < extra) for r in range(size)]
    weights = np.arange(1, size + 1)
    cuts = np.floor(np.cumsum(weights) / weights.sum() * n).astype(int)
    return list(np.diff(np.concatenate([[0], cuts])))


def blocks(n, size, uneven):
    """(lo, hi) of every rank's rows."""
    ends = np.cumsum(counts(n, size, uneven))
    return [(int(e - c), int(e)) for e, c in zip(ends, counts(n, size, uneven))]


# name: (dtype, optimizer, reduction, uneven, deterministic, epochs)
RUNS = {
    "sgd_f64": ("float64", "sgd", "mean", False, False, 3),
    "momentum_f64": ("float64", "momentum", "mean", True, False, 3),
    "adam_f64": ("float64", "adam", "mean", False, False, 3),
    "adam_f64_uneven": ("float64", "adam", "mean", True, False, 2),
    "momentum_f64_empty_rank": ("float64", "momentum", "mean", "empty", False, 2),
    "sgd_sum_f64": ("float64", "sgd", "sum", True, False, 2),
    "adam_f32_det": ("float32", "adam", "mean", True, True, 2),
    "momentum_f32_det": ("float32", "momentum", "mean", False, True, 2),
    "adam_f32": ("float32", "adam", "mean", False, False, 2),
    "adam_bf16_det": ("mixed_bfloat16", "adam", "mean", True, True, 2),
}


def make_net(dtype, optimizer, reduction):
    import bpfast
    from bpfast import optim
    scale = 0.1 if reduction == "sum" else 1.0  # a summed loss has larger gradients
    opt = {"sgd": optim.SGD(lr=0.3 * scale), "momentum": optim.SGD(lr=0.1 * scale, momentum=0.9),
           "adam": optim.Adam(lr=0.02)}[optimizer]
    compute = "bfloat16" if dtype == "mixed_bfloat16" else None
    return bpfast.Network([N_IN, 9, N_OUT], output="softmax", reduction=reduction, dtype=STORAGE[dtype],
                          compute=compute, seed=3, optimizer=opt)


def train(comm, out):
    """Every run of RUNS by fit, and a few train_steps; each rank's final weights and history."""
    rank, size = comm.Get_rank(), comm.Get_size()
    results = {}
    for name, (dtype, optimizer, reduction, uneven, deterministic, epochs) in RUNS.items():
        X, labels, X_val, labels_val = problem(dtype)
        lo, hi = blocks(N_ROWS, size, uneven)[rank]
        v_lo, v_hi = blocks(X_val.shape[0], size, False)[rank]
        net = make_net(dtype, optimizer, reduction)
        if rank > 0:  # ranks start apart: fit must hand rank 0's weights round
            for p in net.parameters():
                p += 1.0
        history = net.fit(X[lo:hi], labels[lo:hi], epochs=epochs, batch_size=BATCH, comm=comm,
                          deterministic=deterministic, validation_data=(X_val[v_lo:v_hi], labels_val[v_lo:v_hi]))
        results[name] = (net._engine.flat_parameters().copy(), np.array(history.history["loss"]),
                         np.array(history.history["val_loss"]), np.array(history.history["val_accuracy"]))
    # train_step: three steps of unequal per-rank batches (rank 0's last one empty)
    X, labels, _, _ = problem("float64")
    net = make_net("float64", "momentum", "mean")
    losses = []
    for step in range(3):
        lo, hi = step_rows(step, rank, size)
        losses.append(net.train_step(X[lo:hi], labels[lo:hi], comm=comm))
    results["train_step"] = (net._engine.flat_parameters().copy(), np.array(losses), np.zeros(0), np.zeros(0))
    from bpfast import distributed
    X32 = X.astype(np.float32)
    net = make_net("float32", "adam", "mean")
    for step in range(3):
        lo, hi = step_rows(step, rank, size)
        net.train_step(X32[lo:hi], labels[lo:hi], comm=distributed.deterministic(comm))
    results["train_step_f32_det"] = (net._engine.flat_parameters().copy(), np.zeros(0), np.zeros(0), np.zeros(0))
    gathered = comm.gather(results, root=0)
    if rank == 0:
        arrays = {f"{name}/{r}/{i}": value for r, res in enumerate(gathered)
                  for name, values in res.items() for i, value in enumerate(values)}
        np.savez(os.path.join(out, "train.npz"), **arrays)


def step_rows(step, rank, size):
    """Rows [lo, hi) of rank's batch at train_step number step: 2 + rank + step rows from a
    start that depends on both; rank 0 has none at step 2 when it is not alone."""
    start = 5 * step + 7 * rank
    rows = 0 if (rank == 0 and step == 2 and size > 1) else 2 + rank + step
    return start % 10, start % 10 + rows


def faults(comm, out):
    """Failures that must reach every rank: (kind, message) per case, and a few facts."""
    import bpfast
    from bpfast import distributed
    rank, size = comm.Get_rank(), comm.Get_size()
    last = size - 1
    X, labels, _, _ = problem("float64")
    mine = distributed.shard(X, labels, comm)
    record = {}

    def case(name, run):
        try:
            run()
            record[name] = ("none", "")
        except Exception as error:  # noqa: BLE001 - recorded for the parent
            record[name] = (type(error).__name__, str(error))

    net = make_net("float64", "adam", "mean")
    bad = (np.full_like(mine[0], np.nan), mine[1]) if rank == last else mine
    case("nan_input", lambda: net.fit(*bad, epochs=1, batch_size=BATCH, comm=comm))
    case("batch_size", lambda: net.fit(*mine, epochs=1, batch_size=BATCH + (rank == last), comm=comm))
    case("step_shape", lambda: net.train_step(mine[0][:, :N_IN - (rank == last)], mine[1], comm=comm))

    # a finite input that overflows on the last rank: every rank stops, weights unchanged
    net.fit(*mine, epochs=1, batch_size=BATCH, comm=comm)
    before = net._engine.flat_parameters().copy()
    huge = (mine[0] * 1e305, mine[1]) if rank == last else mine
    case("overflow", lambda: net.fit(*huge, epochs=1, batch_size=BATCH, comm=comm))
    record["overflow_unchanged"] = ("bool", str(np.array_equal(before, net._engine.flat_parameters())))
    case("overflow_step", lambda: net.train_step(*huge, comm=comm))
    # a loss that overflows on the last rank only (its squared error is beyond float64): named
    import bpfast
    regression = bpfast.Network([N_IN, 9, N_OUT], dtype="float64", seed=3)
    targets = np.full((mine[0].shape[0], N_OUT), 1e200 if rank == last else 0.0)
    case("overflow_named", lambda: regression.fit(mine[0], targets, epochs=1, batch_size=BATCH, comm=comm))

    # callbacks: rank 0's decision holds everywhere; an error on one rank stops every rank
    histories = {}
    stop_on_0 = [lambda epoch, logs: rank == 0 and epoch == 2]
    histories["rank0_stops"] = len(net.fit(*mine, epochs=4, batch_size=BATCH, comm=comm,
                                           callbacks=stop_on_0))
    stop_on_last = [lambda epoch, logs: rank == last and epoch == 1]
    histories["other_stops"] = len(net.fit(*mine, epochs=3, batch_size=BATCH, comm=comm,
                                           callbacks=stop_on_last))

    def raising(epoch, logs):
        if rank == last and epoch == 2:
            raise RuntimeError("callback failed on purpose")
    case("callback_raises", lambda: net.fit(*mine, epochs=3, batch_size=BATCH, comm=comm, callbacks=[raising]))
    histories["patience"] = len(net.fit(*mine, epochs=30, batch_size=BATCH, comm=comm, patience=2,
                                        validation_data=mine, lr=5.0))

    # verbose output from rank 0 only; save from rank 0
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        net.fit(*mine, epochs=2, batch_size=BATCH, comm=comm, verbose=True)
    histories["printed_chars"] = len(shown.getvalue())
    path = distributed.save(net, os.path.join(out, "saved"), comm)
    record["saved"] = ("path", os.path.basename(path))
    loaded = bpfast.Network.load(path)
    record["saved_equal"] = ("bool", str(np.array_equal(loaded._engine.flat_parameters(),
                                                        net._engine.flat_parameters())))
    gathered = comm.gather((record, histories), root=0)
    if rank == 0:
        arrays = {}
        for r, (rec, hist) in enumerate(gathered):
            arrays.update({f"{name}/{r}": np.array(list(value)) for name, value in rec.items()})
            arrays.update({f"{name}/{r}": np.array(value) for name, value in hist.items()})
        np.savez(os.path.join(out, "faults.npz"), **arrays)


def fit_until_the_last_rank(comm, fails):
    """fit over MPI in which the last rank calls fails() at epoch 2, from a callback."""
    X, labels, _, _ = problem("float64")
    from bpfast import distributed
    mine = distributed.shard(X, labels, comm)
    net = make_net("float64", "sgd", "mean")

    def callback(epoch, logs):
        if comm.Get_rank() == comm.Get_size() - 1 and epoch == 2:
            fails()
    net.fit(*mine, epochs=50, batch_size=BATCH, comm=comm, callbacks=[callback])


def die(comm, out):
    """The last rank exits in the middle of fit; the others must not wait for it for ever."""
    fit_until_the_last_rank(comm, lambda: os._exit(3))


def stall(comm, out):
    """The last rank hangs (alive, in a callback) while the others wait in a collective."""
    import time
    fit_until_the_last_rank(comm, lambda: time.sleep(300))


def checkpointed_fit(comm, out):
    """fit over MPI with a checkpoint (BPFAST_TEST_CHECKPOINT, none when empty), every
    BPFAST_TEST_EVERY batches, patience BPFAST_TEST_PATIENCE (0: none), deterministic unless
    BPFAST_TEST_DETERMINISTIC is 0; every rank raises from a callback at epoch BPFAST_TEST_STOP_AT
    (0: never), standing for a killed launch. Rank 0 writes out/checkpointed.npz: every rank's
    final weights and optimizer state, and the History; "stopped" when the callback stopped it."""
    import json
    from bpfast import distributed
    rank = comm.Get_rank()
    checkpoint = os.environ.get("BPFAST_TEST_CHECKPOINT") or None
    every = (int(os.environ.get("BPFAST_TEST_EVERY", "0")) or None) if checkpoint else None
    stop_at = int(os.environ.get("BPFAST_TEST_STOP_AT", "0"))
    epochs = int(os.environ.get("BPFAST_TEST_EPOCHS", "4"))
    patience = int(os.environ.get("BPFAST_TEST_PATIENCE", "3")) or None
    dtype = os.environ.get("BPFAST_TEST_DTYPE", "float32")
    deterministic = os.environ.get("BPFAST_TEST_DETERMINISTIC", "1") == "1"
    X, labels, X_val, labels_val = problem(dtype)
    X, labels = np.concatenate([X] * 4), np.concatenate([labels] * 4)
    net = make_net(dtype, os.environ.get("BPFAST_TEST_OPTIMIZER", "adam"), "mean")
    seen = []

    def callback(epoch, logs):
        seen.append(epoch)
        if epoch == stop_at:
            raise RuntimeError("stands for a killed launch")

    try:
        history = net.fit(*distributed.shard(X, labels, comm), epochs=epochs, batch_size=BATCH, comm=comm,
                          deterministic=deterministic, validation_data=distributed.shard(X_val, labels_val, comm),
                          patience=patience, callbacks=[callback], checkpoint=checkpoint, checkpoint_every=every)
    except RuntimeError:
        history = None
    if rank == 0:
        print("fit done", flush=True)
    state = np.concatenate([net._engine.flat_parameters()] + [s.ravel() for s in net._engine.optimizer_state()])
    gathered = comm.gather(state, root=0)
    if rank == 0:
        record = None if history is None else {"losses": list(history), "history": history.history,
                                               "best_epoch": history.best_epoch,
                                               "stopped_early": history.stopped_early, "seen": seen}
        np.savez(os.path.join(out, "checkpointed.npz"), record=np.array(json.dumps(record)),
                 counters=np.array([net._engine.steps, net._engine.epochs]),
                 **{f"state/{r}": s for r, s in enumerate(gathered)})


def main():
    from mpi4py import MPI

    import bpfast
    bpfast.set_num_threads(1)  # ranks share the machine's cores
    out, scenario = sys.argv[1], sys.argv[2]
    {"train": train, "faults": faults, "die": die, "stall": stall, "checkpointed": checkpointed_fit}[scenario](MPI.COMM_WORLD, out)


if __name__ == "__main__":
    main()
