"""save is atomic: a failed or killed save leaves the old file (or the whole new one) and no
temporary; a full disk raises OSError naming the path. Damaged files are named as such.

The oracles are the two networks themselves: whatever the file holds after a
failure or a kill must load and be bit-for-bit the old net or the new one.
"""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import bpfast
from bpfast import _saveformat, reference

CLASSES = [bpfast.Network, reference.Network]
CLASS_IDS = ["native", "reference"]


def same_weights(a, b):
    return all(p.tobytes() == q.tobytes() for p, q in zip(a.parameters(), b.parameters(), strict=True))


def leftovers(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_save_replaces_the_file_and_leaves_no_temporary(cls, tmp_path):
    old, new = cls([4, 5, 2], seed=1), cls([4, 5, 2], seed=2)
    path = tmp_path / "model.npz"
    assert old.save(path) == str(path)
    new.save(path)
    assert same_weights(cls.load(path), new)
    assert leftovers(tmp_path) == []


def test_a_save_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    old, new = bpfast.Network([4, 5, 2], seed=1), bpfast.Network([4, 5, 2], seed=2)
    path = tmp_path / "model.npz"
    old.save(path)
    before = path.read_bytes()

    def half_then_fail(net, file):
        file.write(b"PK\x03\x04 half of an archive")
        raise RuntimeError("the write failed")

    monkeypatch.setattr(_saveformat, "write", half_then_fail)
    with pytest.raises(RuntimeError, match="the write failed"):
        new.save(path)
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_a_save_into_a_missing_folder_raises_os_error_naming_the_path(tmp_path):
    path = tmp_path / "no such folder" / "model.npz"
    with pytest.raises(OSError) as info:
        bpfast.Network([3, 2]).save(path)
    assert str(path) in str(info.value)


def test_save_keeps_the_permissions_that_open_would_give(tmp_path):
    path = tmp_path / "model.npz"
    bpfast.Network([3, 2]).save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_save_into_a_file_object_writes_at_its_position(tmp_path):
    import io
    buffer = io.BytesIO(b"xyz")
    buffer.seek(3)
    net = bpfast.Network([3, 2], seed=4)
    net.save(buffer)
    assert buffer.getvalue()[:3] == b"xyz"
    assert same_weights(bpfast.Network.load(io.BytesIO(buffer.getvalue()[3:])), net)


FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    import bpfast
    path = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
    try:
        bpfast.Network([300, 200, 10], seed=2).save(path)  # 500 kB: past the limit
    except OSError as error:
        print("OSError", error)
    else:
        print("no error")
""")


def test_a_full_disk_raises_os_error_naming_the_path_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.npz"
    old = bpfast.Network([3, 4, 2], seed=1)
    old.save(path)
    before = path.read_bytes()
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(path)], capture_output=True, text=True,
                          timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OSError") and str(path) in done.stdout, done.stdout
    assert path.read_bytes() == before and leftovers(tmp_path) == []
    assert same_weights(bpfast.Network.load(path), old)


SAVER = textwrap.dedent("""
    import sys
    import bpfast
    path, which = sys.argv[1], int(sys.argv[2])
    net = bpfast.Network([256, 256, 256, 10], seed=which)
    print("ready", flush=True)
    while True:
        net.save(path)
""")


@pytest.mark.slow
def test_a_killed_save_leaves_a_loadable_file_equal_to_the_old_or_the_new_net(tmp_path):
    # The campaign: a process rewrites the file in a loop and is SIGKILLed at a random instant.
    rng = np.random.default_rng(27)
    path = tmp_path / "model.npz"
    nets = {seed: bpfast.Network([256, 256, 256, 10], seed=seed) for seed in (1, 2)}
    nets[1].save(path)
    seen = {1: 0, 2: 0}
    trials = 16
    for trial in range(trials):
        child = subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(2 - trial % 2)],
                                 stdout=subprocess.PIPE, env=os.environ)
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        child.wait()
        loaded = bpfast.Network.load(path)
        matches = [seed for seed, net in nets.items() if same_weights(loaded, net)]
        assert len(matches) == 1, f"trial {trial}: the file is neither net"
        seen[matches[0]] += 1
        for name in leftovers(tmp_path):  # a kill can leave a temporary (never the target) behind
            os.unlink(tmp_path / name)
    print(f"\nsave kill campaign: {trials} trials, {trials} kills, the file held net 1 {seen[1]} times, "
          f"net 2 {seen[2]} times (each trial rewrites it with one of them)")
    assert sum(seen.values()) == trials


# ---------------------------------------------------------------- messages

@pytest.mark.parametrize("cut", ["half", "100 bytes", "last 10 bytes missing"])
def test_a_truncated_file_is_named_a_truncated_or_damaged_archive(cut, tmp_path):
    path = tmp_path / "model.npz"
    bpfast.Network([6, 9, 3], seed=1).save(path)
    data = path.read_bytes()
    path.write_bytes({"half": data[:len(data) // 2], "100 bytes": data[:100],
                      "last 10 bytes missing": data[:-10]}[cut])
    with pytest.raises(ValueError) as info:
        bpfast.Network.load(path)
    message = str(info.value)
    assert str(path) in message and "truncated or damaged zip archive" in message, message
    assert "unknown kind" not in message


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_a_pickle_of_a_network_is_refused_though_it_holds_the_saved_bytes(cls, tmp_path):
    net = cls([6, 9, 3], seed=1)
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(net))
    assert _saveformat.saved_bytes(net) in path.read_bytes()
    with pytest.raises(ValueError, match="pickle, which bpfast never reads") as info:
        cls.load(path)
    assert str(path) in str(info.value)
    assert same_weights(pickle.loads(path.read_bytes()), net)  # pickle itself still works
