"""Data-parallel training over MPI (bpfast.distributed), checked against one process.

Each case starts ``mpiexec -n N python -m mpi4py tests/distributed/mpi_worker.py`` (N = 1,
2, 3; oversubscribing the machine's cores is fine), which writes every rank's
final weights, losses and errors to an .npz. The oracle is computed here, in a
single process without MPI: the same net stepped with train_step through the
same global batches (each rank's rows of a step, concatenated in rank order).

Tolerances, as in conftest.relative_error: float64 1e-12 (the only difference
is the order in which a step's gradient sum is rounded); float32 with
deterministic=True (and mixed precision, float32 kept with bfloat16 products, whose
gradients are float32): bitwise, against an oracle that sums the same per-rank
partial gradients in rank order (see docs/mpi.md for what "identical" means);
float32 by Allreduce: 1e-4 after a few Adam steps.
"""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import bpfast
from bpfast import distributed

from conftest import assert_close, relative_error

sys.path.insert(0, str(Path(__file__).parent))
import mpi_worker as work  # noqa: E402  (the program the ranks run; its problem and runs, without MPI)

WORKER = Path(__file__).parent / "mpi_worker.py"
LAUNCH_SECONDS = 120  # a launch that takes longer has hung: it is killed and the test fails


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
_skip_without_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                                       reason="needs mpi4py and mpiexec (pip install bpfast[mpi])")


def needs_mpi(test):
    """A test that starts mpiexec: marked mpi, and skipped without mpi4py and an mpiexec."""
    return pytest.mark.mpi(_skip_without_mpi(test))


def launch(n, scenario, out, timeout=LAUNCH_SECONDS, overlap=False, **variables):
    """Run the worker on n ranks, with these environment variables; (return code, seconds, output).
    Kills the whole launch on timeout."""
    command = [MPIEXEC, "-n", str(n), sys.executable, "-m", "mpi4py", str(WORKER), str(out), scenario]
    env = {**os.environ, "BPFAST_OVERLAP": "1" if overlap else "0", **variables}
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env=env)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"mpiexec -n {n} {scenario} did not finish within {timeout} s (a hang):\n{output[-3000:]}")
    return process.returncode, time.monotonic() - started, output


_LAUNCHED = {}


def results(n, scenario, tmp_path_factory, overlap=False):
    """The worker's .npz for n ranks and a scenario (BPFAST_OVERLAP as given), launched once per
    test session."""
    if (n, scenario, overlap) not in _LAUNCHED:
        out = tmp_path_factory.mktemp(f"mpi{n}{scenario}")
        code, _, output = launch(n, scenario, out, overlap=overlap)
        assert code == 0, f"mpiexec -n {n} {scenario} failed ({code}):\n{output[-3000:]}"
        _LAUNCHED[n, scenario, overlap] = dict(np.load(out / f"{scenario}.npz"))
    return _LAUNCHED[n, scenario, overlap]


# ---------------------------------------------------------------- the oracle
def train_launch_and_oracle(n, dtype, optimizer, tmp_path_factory):
    """The "train" scenario's results on n ranks, and the problem and a fresh net for its one-process oracle."""
    X, labels, _, _ = work.problem(dtype)
    return results(n, "train", tmp_path_factory), X, labels, work.make_net(dtype, optimizer, "mean")


def rank_rows(step, n):
    """The rows of X that each of n ranks takes at a train_step step, in rank order."""
    return [np.arange(*work.step_rows(step, rank, n)) for rank in range(n)]


def partial_sum_step(net, X, labels, parts, reverse=False):
    """One step as N ranks take it with deterministic=True, in one process: each part's
    gradient scaled by its share of the rows, summed in rank order (or, reverse, the other
    way round), then one update."""
    engine = net._engine
    total = sum(len(p) for p in parts)
    summed, loss = None, 0.0
    for part in (parts[::-1] if reverse else parts):
        if len(part):
            value = engine.compute_gradients(X[part], None, labels[part])
            grads = engine.flat_gradients().copy()
        else:
            value, grads = 0.0, np.zeros_like(engine.flat_gradients())
        share = len(part) / total
        if share != 1.0:
            np.multiply(grads, grads.dtype.type(share), out=grads)
        loss += value * share
        summed = grads if summed is None else np.add(summed, grads)
    engine.flat_gradients()[...] = summed
    value, finite, _ = engine.apply_update(loss)
    assert finite
    return value


def one_process_fit(name, n, ordered_sum=None, reverse=False):
    """(weights, losses, val_losses, val_accuracies) of one process on the global batches that
    fit(comm=...) on n ranks takes: each rank's permutation of its block, BATCH rows a step.
    ordered_sum (the run's deterministic flag unless given): step by partial_sum_step (with reverse)."""
    dtype, optimizer, reduction, uneven, deterministic, epochs = work.RUNS[name]
    deterministic = deterministic if ordered_sum is None else ordered_sum
    X, labels, X_val, labels_val = work.problem(dtype)
    net = work.make_net(dtype, optimizer, reduction)
    shuffle = np.random.default_rng([3, 1])  # the net's shuffle stream (seed 3), as documented
    blocks = work.blocks(work.N_ROWS, n, uneven)
    steps = max(-(-(hi - lo) // work.BATCH) for lo, hi in blocks)
    losses, val_losses, val_accuracies = [], [], []
    for _ in range(epochs):
        key = int(shuffle.integers(2**63))
        orders = [lo + np.random.default_rng([key, r]).permutation(hi - lo) for r, (lo, hi) in enumerate(blocks)]
        total = 0.0
        for step in range(steps):
            parts = [order[step * work.BATCH:(step + 1) * work.BATCH] for order in orders]
            rows = np.concatenate(parts)
            if deterministic:
                value = partial_sum_step(net, X, labels, parts, reverse)
            else:
                value = net.train_step(X[rows], labels[rows])
            total += value * rows.size if reduction == "mean" else value
        losses.append(total / work.N_ROWS if reduction == "mean" else total)
        val_losses.append(net.loss(X_val, labels_val))
        val_accuracies.append(np.mean(net.predict(X_val) == labels_val))
    return net._engine.flat_parameters().copy(), np.array(losses), np.array(val_losses), np.array(val_accuracies)


@pytest.fixture
def one_thread():
    """The ranks run one thread each; so does the oracle (bitwise comparisons need the same kernels)."""
    threads = bpfast.get_num_threads()
    bpfast.set_num_threads(1)
    yield
    bpfast.set_num_threads(threads)


# ---------------------------------------------------------------- without MPI
class FakeComm:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


@pytest.mark.parametrize("n, size", [(23, 3), (5, 7), (12, 4), (1, 2)])
def test_shard_gives_contiguous_blocks_in_rank_order(n, size):
    X, y = np.arange(2 * n).reshape(n, 2), np.arange(n)
    expected = np.array_split(np.arange(n), size)  # numpy's blocks: the first n % size one longer
    for rank in range(size):
        Xr, yr = distributed.shard(X, y, FakeComm(rank, size))
        assert np.array_equal(yr, expected[rank])
        assert np.array_equal(Xr, X[expected[rank]])


def test_shard_refuses_unequal_lengths():
    with pytest.raises(ValueError, match="same number of rows"):
        distributed.shard(np.zeros((3, 2)), np.zeros(4), FakeComm(0, 2))


def test_importing_bpfast_does_not_import_mpi4py():
    code = "import sys, bpfast, bpfast.distributed; print('mpi4py' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "False"


@pytest.mark.parametrize("engine", ["native", "reference"])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_compute_gradients_tells_each_layer_when_its_gradients_are_final(engine, l2, rng):
    cls = bpfast.Network if engine == "native" else bpfast.reference.Network
    net = cls([5, 7, 6, 3], output="softmax", dtype="float64", seed=2)
    net._engine.set_objective(l2=l2)
    X, labels = rng.standard_normal((9, 5)), rng.integers(0, 3, 9)
    expected_loss = net._engine.compute_gradients(X, None, labels)
    expected = [g.copy() for g in net._engine.gradients()]
    net._engine.flat_gradients().fill(np.nan)  # nothing left over from the first call
    told = []

    def ready(layer):
        grads = net._engine.gradients()
        told.append((layer, grads[2 * layer].copy(), grads[2 * layer + 1].copy()))

    assert net._engine.compute_gradients(X, None, labels, None, ready) == expected_loss
    assert [layer for layer, _, _ in told] == [2, 1, 0]  # the last layer first
    for layer, dW, db in told:  # final when told: as after the call
        assert np.array_equal(dW, expected[2 * layer]) and np.array_equal(db, expected[2 * layer + 1])


def test_an_error_in_ready_is_raised(rng):
    net = bpfast.Network([5, 7, 3], dtype="float64", seed=2)

    def ready(layer):
        raise KeyError(layer)

    with pytest.raises(KeyError):
        net._engine.compute_gradients(rng.standard_normal((4, 5)), rng.standard_normal((4, 3)), None, None, ready)


# ---------------------------------------------------------------- against one process
@needs_mpi
@pytest.mark.parametrize("name", [name for name, run in work.RUNS.items() if run[0] == "float64"])
@pytest.mark.parametrize("n, overlap", [(1, False), (2, False), (3, False), (3, True)])
def test_fit_float64_matches_one_process(n, overlap, name, tmp_path_factory, one_thread):
    got = results(n, "train", tmp_path_factory, overlap)
    weights, losses, val_losses, val_accuracies = one_process_fit(name, n)
    for rank in range(n):
        assert_close(got[f"{name}/{rank}/0"], weights, np.float64)
        assert_close(got[f"{name}/{rank}/1"], losses, np.float64)
        assert_close(got[f"{name}/{rank}/2"], val_losses, np.float64)
        assert np.array_equal(got[f"{name}/{rank}/3"], val_accuracies)
    # and training did move the weights: the oracle is not trivially met
    start = work.make_net("float64", *work.RUNS[name][1:3])._engine.flat_parameters()
    assert relative_error(weights, start) > 1e-3


@needs_mpi
@pytest.mark.parametrize("name", [name for name, run in work.RUNS.items()
                                  if run[0] in ("float32", "mixed_bfloat16") and run[4]])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_fit_float32_deterministic_is_bitwise_the_ordered_sum(n, name, tmp_path_factory, one_thread):
    got = results(n, "train", tmp_path_factory)
    weights, losses, _, _ = one_process_fit(name, n)
    for rank in range(n):
        assert np.array_equal(got[f"{name}/{rank}/0"], weights), \
            f"rank {rank}: {relative_error(got[f'{name}/{rank}/0'], weights):.2e} from the ordered sum"
        assert_close(got[f"{name}/{rank}/1"], losses, np.float64, rtol=1e-6)
    if n == 3:  # the order matters here: the comparison can tell a sum in another order
        other_order, _, _, _ = one_process_fit(name, n, reverse=True)
        assert not np.array_equal(got[f"{name}/0/0"], other_order)


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_fit_float32_by_allreduce_is_close_and_the_same_on_every_rank(n, tmp_path_factory, one_thread):
    got = results(n, "train", tmp_path_factory)
    weights, _, _, _ = one_process_fit("adam_f32", n)
    for rank in range(n):
        assert_close(got[f"adam_f32/{rank}/0"], weights, np.float32, rtol=1e-4)
        assert np.array_equal(got[f"adam_f32/{rank}/0"], got["adam_f32/0/0"])


@needs_mpi
@pytest.mark.parametrize("n", [1, 2, 3])
def test_train_step_matches_one_process(n, tmp_path_factory, one_thread):
    got, X, labels, net = train_launch_and_oracle(n, "float64", "momentum", tmp_path_factory)
    losses = []
    for step in range(3):
        rows = np.concatenate(rank_rows(step, n))
        losses.append(net.train_step(X[rows], labels[rows]))
    for rank in range(n):
        assert_close(got[f"train_step/{rank}/0"], net._engine.flat_parameters(), np.float64)
        assert_close(got[f"train_step/{rank}/1"], losses, np.float64)


@needs_mpi
@pytest.mark.parametrize("n", [1, 2, 3])
def test_deterministic_train_step_is_bitwise_the_ordered_sum(n, tmp_path_factory, one_thread):
    got, X, labels, net = train_launch_and_oracle(n, "float32", "adam", tmp_path_factory)
    for step in range(3):
        partial_sum_step(net, X, labels, rank_rows(step, n))
    for rank in range(n):
        assert np.array_equal(got[f"train_step_f32_det/{rank}/0"], net._engine.flat_parameters())


# ---------------------------------------------------------------- failures reach every rank
@needs_mpi
def test_failures_reach_every_rank(tmp_path_factory):
    n, last = 3, 2
    got = results(n, "faults", tmp_path_factory)

    def each(case):
        return [tuple(got[f"{case}/{rank}"]) for rank in range(n)]

    for case, kind, text in [("nan_input", "ValueError", "X must be finite"),
                             ("batch_size", "ValueError", "agree on batch_size"),
                             ("step_shape", "ValueError", "X must have shape"),
                             ("callback_raises", "RuntimeError", "callback failed on purpose"),
                             ("overflow", "FloatingPointError", "every rank's own batch was finite"),
                             ("overflow_step", "FloatingPointError", "every rank's own batch was finite"),
                             ("overflow_named", "FloatingPointError", f"from the batch of rank {last}")]:
        for rank, (got_kind, message) in enumerate(each(case)):
            assert got_kind == kind and text in message, (case, rank, got_kind, message)
            if case not in ("batch_size",) and not case.startswith("overflow") and rank != last:
                assert f"rank {last}" in message, (case, rank, message)  # the others name the rank
    assert all(flag == ("bool", "True") for flag in each("overflow_unchanged"))
    assert all(flag == ("bool", "True") for flag in each("saved_equal"))


@needs_mpi
def test_decisions_are_rank_0s(tmp_path_factory):
    n = 3
    got = results(n, "faults", tmp_path_factory)
    assert [int(got[f"rank0_stops/{r}"]) for r in range(n)] == [2] * n   # rank 0's callback stops all
    assert [int(got[f"other_stops/{r}"]) for r in range(n)] == [3] * n   # another rank's does not
    patience = [int(got[f"patience/{r}"]) for r in range(n)]
    assert len(set(patience)) == 1 and patience[0] < 30                  # early stopping, together
    printed = [int(got[f"printed_chars/{r}"]) for r in range(n)]
    assert printed[0] > 0 and printed[1:] == [0] * (n - 1)              # verbose from rank 0 only


@needs_mpi
def test_a_rank_that_dies_ends_the_launch(tmp_path):
    # mpiexec usually ends the launch at once; now and then Hydra misses a rank's exit status
    # (MPICH issue 7057), and then the survivor's watchdog must end it: the guarantee is "within
    # a timeout", so the test sets one well inside its own 60 s.
    code, seconds, output = launch(2, "die", tmp_path, timeout=60, BPFAST_MPI_TIMEOUT="15")
    assert code != 0, output[-2000:]
    assert seconds < 60


@pytest.mark.slow
@needs_mpi
def test_a_rank_that_hangs_ends_the_launch_after_the_timeout(tmp_path):
    code, seconds, output = launch(3, "stall", tmp_path, timeout=60, BPFAST_MPI_TIMEOUT="2")
    assert code != 0, output[-2000:]
    assert seconds < 30, seconds
    assert "has waited more than 2 s for the other ranks in the agreement before a callback" in output, \
        output[-2000:]


@pytest.mark.parametrize("text, expected", [(None, 600.0), ("", 600.0), ("2.5", 2.5), ("0", None)])
def test_the_watchdog_limit_defaults_to_ten_minutes_and_0_turns_it_off(text, expected, monkeypatch):
    if text is None:
        monkeypatch.delenv(distributed.TIMEOUT_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(distributed.TIMEOUT_VARIABLE, text)
    assert distributed._timeout() == expected


@pytest.mark.parametrize("text", ["soon", "-1", "nan"])
def test_a_bad_watchdog_limit_is_refused_by_name(text, monkeypatch):
    monkeypatch.setenv(distributed.TIMEOUT_VARIABLE, text)
    with pytest.raises(ValueError, match=distributed.TIMEOUT_VARIABLE):
        distributed._timeout()


class _Rank0:
    """What the watchdog asks of a communicator, counting the aborts instead of aborting."""

    def __init__(self):
        self.aborts = []

    def Get_rank(self):
        return 0

    def Abort(self, code):
        self.aborts.append(code)


def test_one_watchdog_thread_serves_every_communicator_and_fires_only_past_its_limit(capfd):
    slow, fast = _Rank0(), _Rank0()
    dogs = [distributed.Watchdog(_Rank0(), 600.0) for _ in range(20)]
    patient, impatient = distributed.Watchdog(slow, 600.0), distributed.Watchdog(fast, 0.3)
    threads = [t for t in threading.enumerate() if t.name == "bpfast-mpi-watchdog"]
    assert len(threads) == 1
    with patient.waiting("a long sum"), impatient.waiting("the sum of the gradients"):
        deadline = time.monotonic() + 10
        while not fast.aborts and time.monotonic() < deadline:
            time.sleep(0.05)
    assert set(fast.aborts) == {124} and slow.aborts == []
    assert "rank 0 has waited more than 0.3 s for the other ranks in the sum of the gradients" in capfd.readouterr().err
    del dogs


class _AbortFails(_Rank0):
    """A communicator whose Abort raises (MPI gone, say)."""

    def Abort(self, code):
        super().Abort(code)
        raise RuntimeError("MPI_Abort failed")


def _wait_for(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_failing_watchdog_does_not_stop_the_others(capfd):
    broken, healthy = _AbortFails(), _Rank0()
    first = distributed.Watchdog(broken, 0.2)
    with first.waiting("a sum"):
        assert _wait_for(lambda: broken.aborts)
    second = distributed.Watchdog(healthy, 0.2)  # created after the failure: the same thread serves it
    with second.waiting("another sum"):
        assert _wait_for(lambda: healthy.aborts)
    assert [t.name for t in threading.enumerate()].count("bpfast-mpi-watchdog") == 1
    capfd.readouterr()


def test_the_first_collective_of_a_communicator_is_not_watched():
    comm = _Rank0()
    group = object.__new__(distributed.Group)  # the watchdog's part of a Group, without MPI
    group._watchdog, group._met = distributed.Watchdog(comm, 0.2), False
    with group._waiting("the agreement before fit"):
        time.sleep(0.7)  # a rank still loading its data
    assert comm.aborts == [] and group._met
    with group._waiting("the sum of the gradients"):
        assert _wait_for(lambda: comm.aborts)


# ---------------------------------------------------------------- checkpoints over MPI

def _checkpointed(tmp_path, name, **variables):
    """A launch of mpi_worker's checkpointed fit on 2 ranks: (record, counters, each rank's state)."""
    out = tmp_path / name
    out.mkdir()
    code, _, output = launch(2, "checkpointed", out, **{f"BPFAST_TEST_{k.upper()}": str(v)
                                                        for k, v in variables.items()})
    assert code == 0, output[-3000:]
    import json
    with np.load(out / "checkpointed.npz") as saved:
        return json.loads(str(saved["record"])), list(saved["counters"]), [saved["state/0"], saved["state/1"]]


@needs_mpi
@pytest.mark.parametrize("every", [0, 3])
def test_a_fit_over_mpi_resumes_from_rank_0s_checkpoint_bitwise(every, tmp_path):
    oracle, oracle_counters, oracle_state = _checkpointed(tmp_path, "oracle", epochs=5)
    assert oracle_state[0].tobytes() == oracle_state[1].tobytes()
    path = tmp_path / "mpi.npz"
    stopped, _, _ = _checkpointed(tmp_path, "stopped", epochs=5, checkpoint=path, every=every, stop_at=3)
    assert stopped is None and path.exists()
    resumed, counters, state = _checkpointed(tmp_path, "resumed", epochs=5, checkpoint=path, every=every)
    assert resumed.pop("seen") == oracle.pop("seen")[2:]  # the callbacks of epochs 3 on
    assert resumed == oracle and counters == oracle_counters
    for rank_state in state:
        assert rank_state.tobytes() == oracle_state[0].tobytes()
    finished, _, state = _checkpointed(tmp_path, "finished", epochs=5, checkpoint=path, every=every)
    assert finished.pop("seen") == [] and finished == oracle
    assert state[1].tobytes() == oracle_state[0].tobytes()


@needs_mpi
def test_a_fit_over_mpi_by_allreduce_resumes_within_float_rounding(tmp_path):
    # Without deterministic the gradients are summed by Allreduce, in an order MPI chooses: a
    # resumed launch ends where an uninterrupted one does to float32 rounding (as
    # test_fit_float32_by_allreduce_is_close_and_the_same_on_every_rank allows), every rank alike.
    oracle, _, oracle_state = _checkpointed(tmp_path, "oracle", epochs=5, deterministic=0)
    path = tmp_path / "mpi.npz"
    stopped, _, _ = _checkpointed(tmp_path, "stopped", epochs=5, checkpoint=path, every=3, stop_at=3, deterministic=0)
    assert stopped is None and path.exists()
    resumed, _, state = _checkpointed(tmp_path, "resumed", epochs=5, checkpoint=path, every=3, deterministic=0)
    assert resumed.pop("seen") == oracle.pop("seen")[2:]
    assert_close(resumed["losses"], oracle["losses"], np.float32, rtol=1e-4)
    assert state[0].tobytes() == state[1].tobytes()
    assert_close(state[0], oracle_state[0], np.float32, rtol=1e-4)


@needs_mpi
def test_a_checkpoint_of_another_fit_over_mpi_is_refused_on_every_rank(tmp_path):
    path = tmp_path / "mpi.npz"
    _checkpointed(tmp_path, "stopped", epochs=5, checkpoint=path, stop_at=2)
    out = tmp_path / "other"
    out.mkdir()
    code, _, output = launch(2, "checkpointed", out, BPFAST_TEST_EPOCHS="6", BPFAST_TEST_CHECKPOINT=str(path))
    assert code != 0 and "another fit" in output and "its epochs is 5, this fit's 6" in output, output[-3000:]


@needs_mpi
@pytest.mark.slow
def test_a_launch_killed_at_random_instants_resumes_bitwise(tmp_path):
    """The MPI part of the kill campaign: the whole launch (mpiexec and its 2 ranks) is SIGKILLed at
    a random instant and started again until it ends; its end is bitwise the uninterrupted launch's."""
    rng = np.random.default_rng(2028)
    trials, kills, resumes = 6, 0, 0
    for trial in range(trials):
        variables = {"epochs": 40, "every": int(rng.choice([0, 2])), "patience": int(rng.choice([0, 8])),
                     "optimizer": ["sgd", "momentum", "adam"][trial % 3],
                     "dtype": ["float32", "float64"][trial % 2]}
        oracle, oracle_counters, oracle_state = _checkpointed(tmp_path, f"oracle{trial}", **variables)
        # the kill instants are drawn over a launch that writes its checkpoints as the killed ones do:
        # writing them takes most of it, and a launch without them can end before the first is due
        started = time.monotonic()
        _checkpointed(tmp_path, f"timing{trial}", checkpoint=tmp_path / f"timing{trial}.npz", **variables)
        duration = time.monotonic() - started
        path = tmp_path / f"c{trial}.npz"
        for attempt in range(3):
            out = tmp_path / f"run{trial}-{attempt}"
            out.mkdir()
            resumes += path.exists()
            env = {**os.environ, "BPFAST_OVERLAP": "0", "BPFAST_TEST_CHECKPOINT": str(path),
                   **{f"BPFAST_TEST_{k.upper()}": str(v) for k, v in variables.items()}}
            process = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "mpi4py", str(WORKER), str(out),
                                        "checkpointed"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       start_new_session=True, env=env)
            try:
                process.wait(timeout=rng.uniform(0.4, 1.0) * duration if attempt < 2 else LAUNCH_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                kills += 1
                continue
            assert process.returncode == 0, process.stdout.read()[-3000:]
            break
        import json
        with np.load(out / "checkpointed.npz") as saved:
            record = json.loads(str(saved["record"]))
            assert [saved["state/0"].tobytes(), saved["state/1"].tobytes()] == [oracle_state[0].tobytes()] * 2
            assert list(saved["counters"]) == oracle_counters
        record.pop("seen"), oracle.pop("seen")
        assert record == oracle, f"trial {trial}"
    print(f"\nMPI kill campaign: {trials} trials, {kills} kills, {resumes} resumes, {trials} bitwise")
    assert kills >= trials and resumes >= 1
