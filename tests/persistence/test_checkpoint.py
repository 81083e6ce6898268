"""fit(checkpoint=...): a fit that is stopped (an exception, a SIGKILL) and started again
resumes from its checkpoint and ends bitwise where the uninterrupted fit ends.

The oracle is an uninterrupted fit of the same net with the same arguments and
no checkpoint: the resumed fit must end with the same weights, optimizer state,
counters and shuffle stream, bit for bit, and an equal History (the same
losses, val_loss, val_accuracy, best_epoch and stopped_early).
"""

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import bpfast
from bpfast import optim, reference

CLASSES = {"native": bpfast.Network, "reference": reference.Network}
OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=0.1),
    "momentum": lambda: optim.SGD(lr=0.05, momentum=0.9, nesterov=True,
                                  schedule=optim.StepDecay(step_size=2, gamma=0.5)),
    "adam": lambda: optim.Adam(lr=0.01, weight_decay=1e-3, schedule=optim.InverseScaling(0.3)),
}


def data(dtype, rows=83, n_in=6, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, n_in)).astype(dtype), rng.integers(0, n_out, rows)


def make(cls="native", opt="adam", dtype="float64", sizes=(6, 11, 3), compute=None, seed=5):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bfloat16 emulated on this CPU
        return CLASSES[cls](list(sizes), activation="tanh", output="softmax", dtype=dtype, compute=compute,
                            seed=seed, optimizer=OPTIMIZERS[opt]())


def fit_arguments(dtype, validation, patience, epochs=7, batch_size=8):
    X, y = data(dtype)
    kwargs = {"epochs": epochs, "batch_size": batch_size, "patience": patience}
    if validation:
        kwargs["validation_data"] = data(dtype, rows=31, seed=1)
    return X, y, kwargs


def assert_same_end(net, history, oracle, oracle_history):
    """Bitwise the oracle's weights, optimizer state, counters and shuffle stream; an equal History."""
    for p, q in zip(net.parameters(), oracle.parameters(), strict=True):
        assert p.tobytes() == q.tobytes()
    for s, t in zip(net._engine.optimizer_state(), oracle._engine.optimizer_state(), strict=True):
        assert s.tobytes() == t.tobytes()
    assert (net._engine.steps, net._engine.epochs) == (oracle._engine.steps, oracle._engine.epochs)
    assert net._shuffle_rng.bit_generator.state == oracle._shuffle_rng.bit_generator.state
    assert list(history) == list(oracle_history)
    assert history.history == oracle_history.history
    assert (history.best_epoch, history.stopped_early) == (oracle_history.best_epoch, oracle_history.stopped_early)


class Killed(Exception):
    """Stands for the process dying."""


def killer(at_epoch, seen):
    def callback(epoch, logs):
        seen.append(epoch)
        if epoch == at_epoch:
            raise Killed
    return callback


# ---------------------------------------------------------------- resume is bitwise

@pytest.mark.parametrize("every", [None, 3])
@pytest.mark.parametrize("validation,patience", [(False, None), (True, 2), (False, 2)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("cls", list(CLASSES))
def test_a_fit_stopped_at_any_epoch_resumes_bitwise(cls, opt, dtype, validation, patience, every, tmp_path):
    X, y, kwargs = fit_arguments(dtype, validation, patience)
    oracle = make(cls, opt, dtype)
    oracle_history = oracle.fit(X, y, **kwargs)
    for at_epoch in sorted({1, (len(oracle_history) + 1) // 2, len(oracle_history)}):
        path = tmp_path / f"at{at_epoch}.npz"
        with pytest.raises(Killed):
            make(cls, opt, dtype).fit(X, y, checkpoint=path, checkpoint_every=every,
                                      callbacks=[killer(at_epoch, [])], **kwargs)
        net, seen = make(cls, opt, dtype), []
        history = net.fit(X, y, checkpoint=path, checkpoint_every=every, callbacks=[killer(None, seen)], **kwargs)
        assert_same_end(net, history, oracle, oracle_history)
        # the callbacks of the epochs the checkpoint holds are not called again
        assert seen == list(range(at_epoch, len(oracle_history) + 1))


def test_checkpoints_do_not_change_the_fit(tmp_path):
    X, y, kwargs = fit_arguments("float32", True, 3)
    oracle = make(dtype="float32")
    oracle_history = oracle.fit(X, y, **kwargs)
    net = make(dtype="float32")
    history = net.fit(X, y, checkpoint=tmp_path / "c", checkpoint_every=1, verbose=False, **kwargs)
    assert_same_end(net, history, oracle, oracle_history)
    assert (tmp_path / "c.npz").exists() and os.listdir(tmp_path) == ["c.npz"]


def test_checkpoints_inside_epochs_shown_by_the_progress_display_do_not_change_the_fit(tmp_path, monkeypatch,
                                                                                       capsys):
    # verbose runs an epoch in spans of its own; checkpoint_every cuts them at its boundaries
    from bpfast import _progress
    monkeypatch.setattr(_progress, "_tqdm", lambda: None)
    monkeypatch.setattr(_progress.Progress, "batches_per_span", lambda self: 2)
    X, y, kwargs = fit_arguments("float32", True, None, epochs=3)
    oracle = make(dtype="float32")
    oracle_history = oracle.fit(X, y, **kwargs)
    net = make(dtype="float32")
    history = net.fit(X, y, checkpoint=tmp_path / "v.npz", checkpoint_every=3, verbose=True, **kwargs)
    assert_same_end(net, history, oracle, oracle_history)
    assert "epoch 3/3" in capsys.readouterr().out


@pytest.mark.parametrize("cls", list(CLASSES))
def test_a_resume_inside_an_epoch_runs_the_rest_of_that_epoch(cls, tmp_path, monkeypatch):
    # Stop the fit right after the checkpoint at batch 6 of epoch 2: the resumed fit starts there.
    X, y, kwargs = fit_arguments("float64", True, None, epochs=3)
    oracle = make(cls)
    oracle_history = oracle.fit(X, y, **kwargs)
    from bpfast import _checkpoint
    write = _checkpoint.Checkpoint.write

    def write_then_die(self, state):
        write(self, state)
        if state.epoch == 1 and state.batch == 6:
            raise Killed

    monkeypatch.setattr(_checkpoint.Checkpoint, "write", write_then_die)
    path = tmp_path / "inside.npz"
    with pytest.raises(Killed):
        make(cls).fit(X, y, checkpoint=path, checkpoint_every=2, **kwargs)
    monkeypatch.setattr(_checkpoint.Checkpoint, "write", write)
    net, seen = make(cls), []
    history = net.fit(X, y, checkpoint=path, checkpoint_every=2, callbacks=[killer(None, seen)], **kwargs)
    assert seen == [2, 3]
    assert_same_end(net, history, oracle, oracle_history)


def test_a_finished_checkpoint_returns_its_history_at_once(tmp_path):
    X, y, kwargs = fit_arguments("float64", True, 2)
    oracle = make()
    oracle_history = oracle.fit(X, y, **kwargs)
    path = tmp_path / "done.npz"
    make().fit(X, y, checkpoint=path, **kwargs)
    net, seen = make(), []
    steps_before = net._engine.steps
    history = net.fit(X, y, checkpoint=path, callbacks=[killer(None, seen)], **kwargs)
    assert seen == []
    assert_same_end(net, history, oracle, oracle_history)
    assert steps_before == 0


def test_a_fit_with_a_new_optimizer_resumes_with_its_state(tmp_path):
    X, y, kwargs = fit_arguments("float64", False, None, epochs=4)
    oracle = make(opt="sgd")
    oracle_history = oracle.fit(X, y, optimizer=optim.Adam(lr=0.02), **kwargs)
    path = tmp_path / "opt.npz"
    with pytest.raises(Killed):
        make(opt="sgd").fit(X, y, optimizer=optim.Adam(lr=0.02), checkpoint=path,
                            callbacks=[killer(2, [])], **kwargs)
    net = make(opt="sgd")
    history = net.fit(X, y, optimizer=optim.Adam(lr=0.02), checkpoint=path, **kwargs)
    assert_same_end(net, history, oracle, oracle_history)
    assert net.optimizer == optim.Adam(lr=0.02)


@pytest.mark.parametrize("cls", list(CLASSES))
def test_mixed_precision_resumes_bitwise_and_keeps_its_compute(cls, tmp_path):
    X, y, kwargs = fit_arguments("float32", True, None, epochs=4)
    oracle = make(cls, dtype="float32", compute="bfloat16")
    oracle_history = oracle.fit(X, y, **kwargs)
    path = tmp_path / "bf16.npz"
    with pytest.raises(Killed):
        make(cls, dtype="float32", compute="bfloat16").fit(X, y, checkpoint=path, checkpoint_every=4,
                                                           callbacks=[killer(3, [])], **kwargs)
    net = make(cls, dtype="float32", compute="bfloat16")
    history = net.fit(X, y, checkpoint=path, checkpoint_every=4, **kwargs)
    assert_same_end(net, history, oracle, oracle_history)
    with pytest.raises(ValueError, match="compute is 'bfloat16', this network's 'float32'"):
        make(cls, dtype="float32").fit(X, y, checkpoint=path, checkpoint_every=4, **kwargs)


# ---------------------------------------------------------------- another fit's checkpoint

def _other_data():
    X, y = data("float64")
    X2 = X.copy()
    X2[40, 2] = np.nextafter(X2[40, 2], 10)  # one bit of one value
    y2 = y.copy()
    y2[3] = (y2[3] + 1) % 3
    return X2, y2


FOREIGN = {  # how a fit differs from the one that wrote the checkpoint -> what the error names
    "X": (lambda: {"X": _other_data()[0]}, "data (X, T)"),
    "T": (lambda: {"y": _other_data()[1]}, "data (X, T)"),
    "validation_data": (lambda: {"validation_data": data("float64", rows=31, seed=2)}, "validation_data"),
    "sizes": (lambda: {"net": make(sizes=(6, 12, 3))}, "sizes"),
    "seed": (lambda: {"net": make(seed=6)}, "seed"),
    "dtype": (lambda: {"net": make(dtype="float32"), "X": data("float32")[0],
                       "validation_data": data("float32", rows=31, seed=1)}, "dtype"),
    "optimizer": (lambda: {"net": make(opt="sgd")}, "optimizer"),
    "optimizer setting": (lambda: {"optimizer": optim.Adam(lr=0.02)}, "optimizer"),
    "engine": (lambda: {"net": make(cls="reference")}, "engine"),
    "epochs": (lambda: {"epochs": 6}, "epochs"),
    "batch_size": (lambda: {"batch_size": 9}, "batch_size"),
    "lr": (lambda: {"lr": 0.5}, "lr"),
    "shuffle": (lambda: {"shuffle": False}, "shuffle"),
    "patience": (lambda: {"patience": 3}, "patience"),
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_a_checkpoint_of_another_fit_is_refused_naming_what_differs(case, tmp_path):
    X, y = data("float64")
    validation = data("float64", rows=31, seed=1)
    path = tmp_path / "theirs.npz"
    with pytest.raises(Killed):
        make().fit(X, y, epochs=5, validation_data=validation, patience=2, checkpoint=path,
                   callbacks=[killer(2, [])])
    before = path.read_bytes()
    change, named = FOREIGN[case]
    args = {"net": make(), "X": X, "y": y, "epochs": 5, "validation_data": validation, "patience": 2}
    args.update(change())
    net = args.pop("net")
    weights = [p.copy() for p in net.parameters()]
    with pytest.raises(ValueError) as info:
        net.fit(args.pop("X"), args.pop("y"), checkpoint=path, **args)
    message = str(info.value)
    assert str(path) in message and "another fit" in message and named in message, message
    assert all(p.tobytes() == q.tobytes() for p, q in zip(net.parameters(), weights))
    assert path.read_bytes() == before


def test_a_damaged_checkpoint_is_refused_naming_the_path(tmp_path):
    X, y = data("float64")
    path = tmp_path / "damaged.npz"
    with pytest.raises(Killed):
        make().fit(X, y, epochs=3, checkpoint=path, callbacks=[killer(2, [])])
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="not a valid bpfast checkpoint.*truncated or damaged") as info:
        make().fit(X, y, epochs=3, checkpoint=path)
    assert str(path) in str(info.value)


def test_a_saved_network_is_not_a_checkpoint_nor_the_other_way_round(tmp_path):
    X, y = data("float64")
    make().save(tmp_path / "net.npz")
    with pytest.raises(ValueError, match="its format is 'bpfast-network'"):
        make().fit(X, y, epochs=2, checkpoint=tmp_path / "net.npz")
    make().fit(X, y, epochs=2, checkpoint=tmp_path / "check.npz")
    with pytest.raises(ValueError, match="checkpoint of Network.fit"):
        bpfast.Network.load(tmp_path / "check.npz")


@pytest.mark.parametrize("bad,message", [({"checkpoint_every": 0}, "checkpoint_every"),
                                         ({"checkpoint_every": 2.5}, "checkpoint_every"),
                                         ({"checkpoint_every": 3, "checkpoint": None}, "checkpoint_every needs"),
                                         ({"checkpoint": 3.5}, "checkpoint must be a file name")])
def test_bad_checkpoint_arguments_are_named(bad, message, tmp_path):
    X, y = data("float64")
    kwargs = {"checkpoint": tmp_path / "c.npz", **bad}
    with pytest.raises((ValueError, TypeError), match=message):
        make().fit(X, y, epochs=2, **kwargs)


# ---------------------------------------------------------------- a full disk

FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    import numpy as np
    import bpfast
    path = sys.argv[1]
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 300)).astype(np.float32), rng.integers(0, 10, 40)
    net = bpfast.Network([300, 200, 10], output="softmax", seed=1)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100000, 100000))  # the checkpoint needs 250 kB
    try:
        net.fit(X, y, epochs=3, checkpoint=path)
    except OSError as error:
        print("OSError", error)
    else:
        print("no error")
""")


def test_a_full_disk_during_a_checkpoint_raises_os_error_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "full.npz"
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 300)).astype(np.float32), rng.integers(0, 10, 40)
    with pytest.raises(Killed):
        bpfast.Network([300, 200, 10], output="softmax", seed=1).fit(X, y, epochs=3, checkpoint=path,
                                                                      callbacks=[killer(2, [])])
    before = path.read_bytes()
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(path)], capture_output=True, text=True,
                          timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OSError") and str(path) in done.stdout, done.stdout
    assert path.read_bytes() == before
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


# ---------------------------------------------------------------- the kill campaign

CHILD = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    import bpfast
    from bpfast import optim, reference
    config, checkpoint, result = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    sys.path.insert(0, config.pop("tests"))
    from test_checkpoint import campaign_fit
    print("ready", flush=True)
    net, history = campaign_fit(config, checkpoint)
    net.save(result)
    with open(result + ".json", "w") as file:
        json.dump({"losses": list(history), "history": history.history, "best_epoch": history.best_epoch,
                   "stopped_early": history.stopped_early}, file)
""")


def campaign_fit(config, checkpoint=None):
    """The fit of one trial of the campaign (in the child, and uninterrupted as its oracle)."""
    rng = np.random.default_rng(config["seed"])
    dtype = config["dtype"]
    X, y = rng.standard_normal((500, 20)).astype(dtype), rng.integers(0, 5, 500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        net = CLASSES[config["cls"]]([20, 48, 32, 5], activation="relu", output="softmax", dtype=dtype,
                                     compute=config["compute"], seed=config["seed"],
                                     optimizer=OPTIMIZERS[config["opt"]]())
    kwargs = {"epochs": 6, "batch_size": 16, "patience": config["patience"]}
    if config["validation"]:
        kwargs["validation_data"] = (X[:100] + 0.1, y[:100])
    if checkpoint is not None:
        kwargs.update(checkpoint=checkpoint, checkpoint_every=config["every"])
    return net, net.fit(X, y, **kwargs)


def campaign_configs(rng, trials):
    for trial in range(trials):
        cls = ["native", "reference"][trial % 2]
        dtype = str(rng.choice(["float32", "float64"]))
        yield {"cls": cls, "opt": ["sgd", "momentum", "adam"][trial % 3], "dtype": dtype,
               "compute": "bfloat16" if dtype == "float32" and rng.random() < 0.25 else None,
               "validation": bool(rng.random() < 0.5), "patience": [None, 2][int(rng.random() < 0.5)],
               "every": [None, 2, 7][int(rng.integers(3))], "seed": int(rng.integers(100)),
               "tests": os.path.dirname(__file__)}


@pytest.mark.slow
def test_a_fit_killed_at_random_instants_resumes_bitwise(tmp_path):
    """SIGKILL a checkpointed fit at random instants, start it again until it ends: its end is
    bitwise the uninterrupted fit's. Counts: trials, kills, resumes (runs that found a checkpoint)."""
    rng = np.random.default_rng(2027)
    trials, kills, resumes, bitwise = 24, 0, 0, 0
    budget = time.monotonic() + 240  # a guard against a runaway, not a timing test
    for trial, config in enumerate(campaign_configs(rng, trials)):
        oracle, oracle_history = campaign_fit({**config, "tests": None})
        started = time.monotonic()
        campaign_fit({**config, "tests": None}, str(tmp_path / f"timing{trial}.npz"))
        duration = time.monotonic() - started
        checkpoint, result = str(tmp_path / f"c{trial}.npz"), str(tmp_path / f"r{trial}.npz")
        for attempt in range(4):
            resumes += os.path.exists(checkpoint)
            child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(config), checkpoint, result],
                                     stdout=subprocess.PIPE, env=os.environ)
            assert child.stdout.readline() == b"ready\n"
            if attempt < 3:
                time.sleep(rng.uniform(0, 1.2 * duration))
                child.send_signal(signal.SIGKILL)
            child.wait(timeout=120)
            if child.returncode == -signal.SIGKILL:
                kills += 1
            else:
                assert child.returncode == 0, f"trial {trial} ({config}): the child failed"
                break
        else:
            pytest.fail(f"trial {trial}: never finished")
        net = CLASSES[config["cls"]].load(result)
        with open(result + ".json") as file:
            saved = json.load(file)
        assert net.compute == oracle.compute
        for p, q in zip(net.parameters(), oracle.parameters(), strict=True):
            assert p.tobytes() == q.tobytes(), f"trial {trial} ({config})"
        for s, t in zip(net._engine.optimizer_state(), oracle._engine.optimizer_state(), strict=True):
            assert s.tobytes() == t.tobytes(), f"trial {trial} ({config})"
        assert (net._engine.steps, net._engine.epochs) == (oracle._engine.steps, oracle._engine.epochs)
        assert net._shuffle_rng.bit_generator.state == oracle._shuffle_rng.bit_generator.state
        assert saved == {"losses": list(oracle_history), "history": oracle_history.history,
                         "best_epoch": oracle_history.best_epoch, "stopped_early": oracle_history.stopped_early}
        bitwise += 1
        assert time.monotonic() < budget, f"the campaign ran past its budget after {trial + 1} trials"
    print(f"\nkill campaign: {trials} trials, {kills} kills, {resumes} resumes, {bitwise} bitwise")
    assert kills >= trials and resumes >= trials // 2
