"""save/load: an exact round trip, and clear errors for files that are not bpfast networks.

The oracle for the round trip is the original network itself: after load,
the weights, optimizer settings and state, step and epoch counters and
shuffle Generator must be bit-for-bit equal, so that continuing training
(train_step and shuffled fit) gives bit-for-bit the same losses and weights
on both. A file written by bpfast.Network also loads into
bpfast.reference.Network and trains like it to 1e-10 (float64).
"""

import concurrent.futures
import copy
import io
import json
import multiprocessing
import pickle
import pickletools
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import bpfast
from bpfast import optim, reference
from conftest import assert_close

CLASSES = [bpfast.Network, reference.Network]
CLASS_IDS = ["native", "reference"]
SIZES = [6, 9, 5, 3]
OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=0.1),
    "sgd-nesterov-step": lambda: optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3,
                                           schedule=optim.StepDecay(step_size=2, gamma=0.5)),
    "adam-invscaling-clip": lambda: optim.Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3,
                                               decay_bias=True, clip_norm=0.7,
                                               schedule=optim.InverseScaling(0.4)),
    "adamw": lambda: optim.AdamW(lr=0.01, weight_decay=0.05),
}


def make(cls, dtype, opt, seed=3):
    return cls(SIZES, activation=["tanh", "relu"], output="softmax", loss="cross_entropy", reduction="mean",
               dtype=dtype, seed=seed, optimizer=OPTIMIZERS[opt]())


def training_data(dtype):
    rng = np.random.default_rng(0)
    return rng.standard_normal((29, SIZES[0])).astype(dtype), rng.integers(0, SIZES[-1], 29)


def trained(cls, dtype, opt, seed=3):
    net = make(cls, dtype, opt, seed)
    X, labels = training_data(dtype)
    net.fit(X, labels, epochs=3, batch_size=8)
    net.train_step(X[:5], labels[:5])
    return net


def assert_same_network(a, b):
    assert type(a) is type(b)
    assert repr(a) == repr(b)
    assert (a.sizes, a.output, a.loss_name, a.reduction, a.dtype, a.seed) == \
           (b.sizes, b.output, b.loss_name, b.reduction, b.dtype, b.seed)
    assert [l.activation for l in a.layers] == [l.activation for l in b.layers]
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert p.dtype == q.dtype and p.shape == q.shape
        assert p.tobytes() == q.tobytes()
    assert a.optimizer == b.optimizer and type(a.optimizer) is type(b.optimizer)
    assert a.optimizer.config() == b.optimizer.config()
    for which in (0, 1):
        s, t = a._engine.optimizer_state()[which], b._engine.optimizer_state()[which]
        assert s.dtype == t.dtype and s.tobytes() == t.tobytes()
    assert (a._engine.steps, a._engine.epochs) == (b._engine.steps, b._engine.epochs)


def continue_training(net):
    """Losses of further steps and a shuffled fit, and the final weights."""
    X, labels = training_data(net.dtype)
    losses = [net.train_step(X[5:13], labels[5:13]), net.train_step(X[13:20], labels[13:20])]
    losses += list(net.fit(X, labels, epochs=3, batch_size=7))
    losses.append(net.train_step(X[:9], labels[:9]))
    return losses, [p.copy() for p in net.parameters()]


# ---------------------------------------------------------------- round trip

@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_round_trip_is_exact_and_training_continues_identically(cls, dtype, opt, tmp_path):
    net = trained(cls, dtype, opt)
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = cls.load(path)
    assert_same_network(loaded, net)
    if opt != "sgd":  # the optimizer state is really non-trivial
        assert np.any(net._engine.optimizer_state()[0])
    ours, our_params = continue_training(net)
    theirs, their_params = continue_training(loaded)
    assert ours == theirs
    for p, q in zip(our_params, their_params):
        assert p.tobytes() == q.tobytes()


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_round_trip_restores_the_shuffle_stream_of_an_unseeded_net(cls, tmp_path):
    # seed=None draws the shuffle Generator from the OS; only the saved state can reproduce it.
    net = cls([4, 5, 3], output="softmax", dtype="float64", seed=None)
    rng = np.random.default_rng(1)
    X, labels = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    net.fit(X, labels, epochs=2, batch_size=4)
    net.save(tmp_path / "net.npz")
    loaded = cls.load(tmp_path / "net.npz")
    assert loaded.seed is None
    assert list(net.fit(X, labels, epochs=3, batch_size=4)) == list(loaded.fit(X, labels, epochs=3, batch_size=4))
    for p, q in zip(net.parameters(), loaded.parameters()):
        assert np.array_equal(p, q)


def test_shuffle_state_matters_for_the_continuation(tmp_path):
    # Sanity check of the test above: two nets with equal weights and optimizer state but
    # different shuffle streams do not train alike, so a lost shuffle state would be caught.
    net = trained(bpfast.Network, "float64", "adamw")
    net.save(tmp_path / "net.npz")
    loaded = bpfast.Network.load(tmp_path / "net.npz")
    loaded._shuffle_rng = np.random.default_rng([3, 1])  # as if the state had not been saved
    X, labels = training_data("float64")
    assert list(net.fit(X, labels, epochs=2, batch_size=7)) != list(loaded.fit(X, labels, epochs=2, batch_size=7))


@pytest.mark.parametrize("opt", ["sgd-nesterov-step", "adam-invscaling-clip"])
def test_native_file_loads_into_the_reference_and_trains_alike(opt, tmp_path):
    net = trained(bpfast.Network, "float64", opt)
    net.save(tmp_path / "net.npz")
    ref = reference.Network.load(tmp_path / "net.npz")
    assert type(ref) is reference.Network
    for p, q in zip(net.parameters(), ref.parameters()):
        assert p.tobytes() == q.tobytes()
    assert (ref._engine.steps, ref._engine.epochs) == (net._engine.steps, net._engine.epochs)
    ours, our_params = continue_training(net)
    theirs, their_params = continue_training(ref)
    assert_close(np.array(ours), np.array(theirs), np.float64, 1e-10)
    for p, q in zip(our_params, their_params):
        assert_close(p, q, np.float64, 1e-10)


def test_save_writes_a_file_that_needs_no_pickle(tmp_path):
    net = trained(bpfast.Network, "float32", "adam-invscaling-clip")
    path = tmp_path / "net.npz"
    net.save(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    assert all(a.dtype != object for a in arrays.values())
    assert str(arrays["format"]) == "bpfast-network" and int(arrays["version"]) == 1
    architecture = json.loads(str(arrays["architecture"]))
    assert architecture["sizes"] == SIZES and architecture["dtype"] == "float32"
    assert json.loads(str(arrays["optimizer"])) == net.optimizer.config()
    assert np.array_equal(arrays["param_0"], net.layers[0].W)


def test_save_and_load_accept_str_paths(tmp_path):
    net = trained(bpfast.Network, "float64", "sgd")
    path = str(tmp_path / "model.npz")
    net.save(path)
    assert_same_network(bpfast.Network.load(path), net)


# ---------------------------------------------------------------- bad files

def good_file_fields(tmp_path):
    path = tmp_path / "good.npz"
    trained(bpfast.Network, "float64", "adamw").save(path)
    with np.load(path, allow_pickle=False) as data:
        return path, {key: data[key] for key in data.files}


def write_truncated(tmp_path, path):
    good, _ = good_file_fields(tmp_path)
    data = good.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def write_random(tmp_path, path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def write_empty(tmp_path, path):
    path.write_bytes(b"")


def write_unrelated(tmp_path, path):
    np.savez(path, a=np.arange(3), b=np.ones((2, 2)))


def write_changed(key, value):
    def write(tmp_path, path):
        _, fields = good_file_fields(tmp_path)
        fields[key] = value
        np.savez(path, **fields)
    return write


def write_without(key):
    def write(tmp_path, path):
        _, fields = good_file_fields(tmp_path)
        del fields[key]
        np.savez(path, **fields)
    return write


def write_pickled(tmp_path, path):
    _, fields = good_file_fields(tmp_path)
    fields["architecture"] = np.array([{"sizes": SIZES}], dtype=object)
    np.savez(path, **fields)


def write_npy(tmp_path, path):
    with open(path, "wb") as f:
        np.save(f, np.arange(10.0))


BAD_FILES = {
    "truncated": write_truncated,
    "random bytes": write_random,
    "empty": write_empty,
    "unrelated npz": write_unrelated,
    "wrong format": write_changed("format", np.array("keras-model")),
    "wrong version": write_changed("version", np.array(2)),
    "version 0": write_changed("version", np.array(0)),
    "no weights": write_without("param_3"),
    "wrong weight shape": write_changed("param_0", np.zeros((3, 3))),
    "broken architecture": write_changed("architecture", np.array("{not json")),
    "pickled object array": write_pickled,
    # sizes whose parameter count overflows int64 (it once wrapped to a tiny buffer)
    "overflowing sizes": write_changed("architecture", np.array(json.dumps(
        {"sizes": [2**31, 2**30 - 1] * 4 + [1, 1152921506217459715], "activation": ["relu"] * 9,
         "output": "softmax", "loss": "cross_entropy", "reduction": "mean", "dtype": "float64", "seed": 0}))),
    # a layer of 2^49 weights: refused before anything is allocated
    "a layer above the size limit": write_changed("architecture", np.array(json.dumps(
        {"sizes": [2**24, 2**25, 3], "activation": ["relu"], "output": "softmax", "loss": "cross_entropy",
         "reduction": "mean", "dtype": "float64", "seed": 0}))),
    "NaN weights": write_changed("param_1", np.array([np.nan] * 9)),
    "Inf optimizer state": write_changed("state_1", np.full(SIZES[0] * 9 + 9 + 9 * 5 + 5 + 5 * 3 + 3, np.inf)),
    "negative counters": write_changed("counters", np.array([-1, 0])),
    "plain npy": write_npy,
}


# ---------------------------------------------------------------- hostile files
# Files built to make load allocate, decompress, recurse or unpickle. Each is refused with
# ValueError before anything large is allocated: the test in a memory-capped child below
# and the tracemalloc bound of the in-process test check that.

def good_members(tmp_path):
    """name -> bytes of each member of a good file (a trained [6, 9, 5, 3] AdamW net, float64)."""
    path, _ = good_file_fields(tmp_path)
    with zipfile.ZipFile(path) as archive:
        return {info.filename[:-len(".npy")]: archive.read(info) for info in archive.infolist()}


def npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=True)
    return buffer.getvalue()


def npy_claiming(shape, descr="<f8", data=b"", fortran_order=False):
    """An npy member whose header declares shape and descr, followed by data (whatever its size)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": fortran_order,
                                                  "shape": shape})
    return buffer.getvalue() + data


def raw_npy(header, version=(1, 0), data=b""):
    """An npy member with this header text, written by hand (any length, any format version)."""
    length = struct.pack("<H" if version == (1, 0) else "<I", len(header))
    return b"\x93NUMPY" + bytes(version) + length + header + data


def array_of(member):
    return np.load(io.BytesIO(member), allow_pickle=False)


def record(value):
    """The member of a record: value as JSON, or a str as it is."""
    return npy_bytes(np.array(value if isinstance(value, str) else json.dumps(value)))


def architecture(sizes, **changes):
    arch = {"sizes": sizes, "activation": ["relu"] * (len(sizes) - 2), "output": "softmax",
            "loss": "cross_entropy", "reduction": "mean", "dtype": "float64", "seed": 0}
    return record({**arch, **changes})


def write_members(path, members):
    with zipfile.ZipFile(path, "w") as archive:  # stored, as np.savez writes
        for name, data in members.items():
            archive.writestr(name, data)


def write_with(**changes):
    """A good file with members replaced (bytes, or a function of the good members), added, or
    removed (None)."""
    def write(tmp_path, path):
        members = good_members(tmp_path)
        for name, data in changes.items():
            data = data(members) if callable(data) else data
            if data is None:
                members.pop(name)
            else:
                members[name] = data
        write_members(path, {name + ".npy": data for name, data in members.items()})
    return write


def write_compressed_extra(tmp_path, path):
    write_with()(tmp_path, path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("extra.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.zeros(100 << 17))  # 100 MiB of zeros, ~100 KiB deflated


def write_compressed_copy(tmp_path, path):
    _, fields = good_file_fields(tmp_path)
    np.savez_compressed(path, **fields)


class PicklePayload:
    """Unpickling this creates the file marker: proof that pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def write_pickle_payload(member):
    def write(tmp_path, path):
        payload = np.empty((9, 6), dtype=object)
        payload[...] = PicklePayload(tmp_path / "pickle-ran")
        write_with(**{member: npy_bytes(payload)})(tmp_path, path)
    return write


def write_corrupted(tmp_path, path):
    members = good_members(tmp_path)
    write_with()(tmp_path, path)
    data = bytearray(path.read_bytes())
    data[data.find(members["param_0"]) + len(members["param_0"]) - 3] ^= 0x40  # one bit of W's last value
    path.write_bytes(bytes(data))


def write_duplicate(tmp_path, path):
    members = good_members(tmp_path)
    write_with()(tmp_path, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name, and writes it
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("param_0.npy", members["param_0"])


def write_encrypted(tmp_path, path):
    write_with()(tmp_path, path)
    data = bytearray(path.read_bytes())
    entry = data.find(b"PK\x01\x02")  # the central directory's first entry
    while data[entry + 46:entry + 46 + len(b"param_0.npy")] != b"param_0.npy":
        entry = data.find(b"PK\x01\x02", entry + 4)
    data[entry + 8] |= 0x1  # general purpose flag: encrypted
    path.write_bytes(bytes(data))


def write_other_member(tmp_path, path):
    write_with()(tmp_path, path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("readme.txt", "hello")


def changed_optimizer(**changes):
    return lambda members: record({**json.loads(str(array_of(members["optimizer"]))), **changes})


def changed_shuffle_state(**changes):
    return lambda members: record({**json.loads(str(array_of(members["shuffle_state"]))), **changes})


ONE_LAYER = {f"param_{i}": None for i in range(2, 6)}  # the good file's members of a one-layer net
NPY_HEADER = b"{'descr': '<f8', 'fortran_order': False, 'shape': (9, 6), }"


def w_bytes(members):
    return array_of(members["param_0"]).tobytes()


HOSTILE_FILES = {
    # sizes that would allocate tens of GB to exabytes
    "sizes [100000, 100000]": write_with(architecture=architecture([100000, 100000])),
    "sizes [10**9, 10**9]": write_with(architecture=architecture([10**9, 10**9])),
    "sizes [100000, 100000], one layer's members": write_with(architecture=architecture([100000, 100000]),
                                                              **ONE_LAYER),
    "sizes [10**6, 10**6], headers to match": write_with(
        architecture=architecture([10**6, 10**6]), **ONE_LAYER,
        param_0=npy_claiming((10**6, 10**6), data=bytes(64)), param_1=npy_claiming((10**6,), data=bytes(64)),
        state_0=npy_claiming((10**12 + 10**6,)), state_1=npy_claiming((10**12 + 10**6,))),
    "a header claiming 10**12 float64": write_with(param_1=npy_claiming((10**12,), data=bytes(72))),
    "a header claiming 10**8 characters": write_with(format=npy_claiming((), descr="<U100000000")),
    # compressed members: nothing is ever decompressed
    "a 100 MiB compressed extra member": write_compressed_extra,
    "a compressed copy (np.savez_compressed)": write_compressed_copy,
    # records: nesting, size, values
    "architecture nested 100000 deep": write_with(architecture=record("[" * 100000)),
    "architecture of objects nested 20000 deep": write_with(architecture=record('{"a": ' * 20000)),
    "optimizer nested 5000 deep": write_with(optimizer=record("[" * 5000 + "]" * 5000)),
    "optimizer nested 100000 deep": write_with(optimizer=record("[" * 100000)),
    "shuffle_state nested 3 deep": write_with(shuffle_state=record('{"a": {"b": [1]}}')),
    "architecture above 1 MiB": write_with(architecture=architecture(SIZES, padding=" " * (1 << 18))),
    "format above 64 KiB": write_with(format=record("x" * (1 << 14))),
    "NaN in the architecture": write_with(architecture=architecture(SIZES, seed=float("nan"))),
    "a repeated key": write_with(architecture=record('{"sizes": [6, 3], "sizes": [6, 3]}')),
    "an extra architecture key": write_with(architecture=architecture(SIZES, comment="hi")),
    "sizes holding true": write_with(architecture=architecture([6, True, 5, 3])),
    "sizes holding 9.0": write_with(architecture=architecture([6, 9.0, 5, 3])),
    "sizes as a dict": write_with(architecture=architecture({"6": 9})),
    "activation a string": write_with(architecture=architecture(SIZES, activation="relu")),
    "dtype a list": write_with(architecture=architecture(SIZES, dtype=["float64"])),
    "dtype f8 (not a name save writes)": write_with(architecture=architecture(SIZES, dtype="f8")),
    "seed -1": write_with(architecture=architecture(SIZES, seed=-1)),
    "an unknown optimizer": write_with(optimizer=changed_optimizer(kind="rmsprop")),
    "an optimizer of lr -1": write_with(optimizer=changed_optimizer(lr=-1)),
    "a step size of 2.5": write_with(optimizer=changed_optimizer(schedule="step", step_size=2.5)),
    "an optimizer that is a list": write_with(optimizer=record([1, 2])),
    "an optimizer without lr": write_with(optimizer=lambda m: record(
        {k: v for k, v in json.loads(str(array_of(m["optimizer"]))).items() if k != "lr"})),
    "shuffle_state of MT19937": write_with(shuffle_state=changed_shuffle_state(bit_generator="MT19937")),
    "shuffle_state of a float": write_with(shuffle_state=changed_shuffle_state(state={"state": 1.5, "inc": 1})),
    "shuffle_state of 2**200": write_with(shuffle_state=changed_shuffle_state(state={"state": 2**200, "inc": 1})),
    "counters of float64": write_with(counters=npy_bytes(np.array([1.0, 2.0]))),
    "counters of 2**64 - 1": write_with(counters=npy_bytes(np.array([2**64 - 1, 0], dtype=np.uint64))),
    "version as text": write_with(version=record("1")),
    "an invalid code point": write_with(format=npy_claiming((), descr="<U1", data=b"\xff\xff\xff\xff")),
    # array members
    "a pickled object member": write_pickle_payload("param_0"),
    "a pickled object architecture": write_pickle_payload("architecture"),
    "a Fortran-order member": write_with(param_0=lambda m: npy_bytes(np.asfortranarray(array_of(m["param_0"])))),
    "a float32 member in a float64 net": write_with(
        param_0=lambda m: npy_bytes(array_of(m["param_0"]).astype(np.float32))),
    "a structured member": write_with(param_1=npy_bytes(np.zeros(9, dtype=[("a", "<f4"), ("b", "<f4")]))),
    "truncated member data": write_with(param_0=lambda m: m["param_0"][:-8]),
    "member data beyond its header": write_with(param_0=lambda m: m["param_0"] + bytes(8)),
    "a corrupted byte (bad CRC)": write_corrupted,
    "a member twice": write_duplicate,
    "an encrypted member": write_encrypted,
    "a member that is not .npy": write_other_member,
    "an unknown member": write_with(notes=npy_bytes(np.arange(3))),
    "no state_1": write_with(state_1=None),
    "an npy header of 60000 bytes": write_with(param_0=lambda m: raw_npy(NPY_HEADER + b" " * 60000 + b"\n",
                                                                         data=w_bytes(m))),
    "npy format version 3.0": write_with(param_0=lambda m: raw_npy(NPY_HEADER + b"\n", (3, 0), w_bytes(m))),
    "not an npy member": write_with(param_0=b"PK\x03\x04 not an npy array"),
    "a broken npy header": write_with(param_0=lambda m: raw_npy(b"{'descr': [[[[" + b"[" * 2000 + b"\n",
                                                                data=w_bytes(m))),
}
ALL_BAD_FILES = {**BAD_FILES, **HOSTILE_FILES}


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
@pytest.mark.parametrize("case", list(ALL_BAD_FILES))
def test_bad_file_raises_value_error_naming_the_path(cls, case, tmp_path):
    path = tmp_path / "bad.npz"
    ALL_BAD_FILES[case](tmp_path, path)
    assert path.exists()
    tracemalloc.start()  # numpy's allocations and Python's: a refusal allocates little
    try:
        with pytest.raises(ValueError) as info:
            cls.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 16 << 20, f"{peak} bytes allocated"
    assert not (tmp_path / "pickle-ran").exists()


def test_hostile_files_are_refused_without_a_large_allocation(tmp_path):
    # In a child whose address space is capped at 1.5 GiB, every bad file raises ValueError
    # naming its path, in both classes; before the fix the first five hostile files asked
    # for gigabytes to terabytes (MemoryError or bad_alloc) and the nested ones for RecursionError.
    paths = []
    for i, write in enumerate(ALL_BAD_FILES.values()):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        write(folder, folder / "bad.npz")
        paths.append(str(folder / "bad.npz"))
    child = textwrap.dedent("""
        import json, resource, sys
        import bpfast
        from bpfast import reference
        resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))
        for path in json.loads(sys.stdin.read()):
            for cls in (bpfast.Network, reference.Network):
                try:
                    cls.load(path)
                    print("loaded")
                except ValueError as error:
                    print("refused" if path in str(error) else "refused without the path")
                except BaseException as error:
                    print(type(error).__name__, str(error)[:200].replace("\\n", " "))
    """)
    done = subprocess.run([sys.executable, "-c", child], input=json.dumps(paths), capture_output=True,
                          text=True, timeout=300,
                          env={"BPFAST_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = done.stdout.splitlines()
    cases = [f"{case} ({cls})" for case in ALL_BAD_FILES for cls in CLASS_IDS]
    assert len(outcomes) == len(cases), done.stdout[-2000:]
    assert {case: outcome for case, outcome in zip(cases, outcomes) if outcome != "refused"} == {}
    assert not any((tmp_path / f"case{i}" / "pickle-ran").exists() for i in range(len(paths)))


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_a_big_endian_file_loads_the_same_network(cls, tmp_path):
    net = trained(cls, "float64", "adamw")
    net.save(tmp_path / "net.npz")
    with zipfile.ZipFile(tmp_path / "net.npz") as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    for name, data in members.items():
        array = array_of(data)  # records, counters and arrays alike
        members[name] = npy_bytes(array.astype(array.dtype.newbyteorder(">")))
    write_members(tmp_path / "swapped.npz", members)
    assert_same_network(cls.load(tmp_path / "swapped.npz"), net)


def test_load_reads_an_open_file(tmp_path):
    net = trained(bpfast.Network, "float32", "sgd-nesterov-step")
    net.save(tmp_path / "net.npz")
    with open(tmp_path / "net.npz", "rb") as file:
        assert_same_network(bpfast.Network.load(file), net)


def test_a_deep_net_round_trips_within_the_record_bounds(tmp_path):
    # 3000 hidden layers: an architecture record of 180 KB, under the 1 MiB that load reads
    net = bpfast.Network([3] + [2] * 3000 + [2], activation="identity", dtype="float64", seed=0)
    net.save(tmp_path / "deep.npz")
    assert_same_network(bpfast.Network.load(tmp_path / "deep.npz"), net)


def test_wrong_version_message_says_which(tmp_path):
    path = tmp_path / "bad.npz"
    write_changed("version", np.array(2))(tmp_path, path)
    with pytest.raises(ValueError, match="version 2"):
        bpfast.Network.load(path)


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_missing_file_raises_file_not_found_error(cls, tmp_path):
    with pytest.raises(FileNotFoundError):
        cls.load(tmp_path / "nowhere.npz")


# ---------------------------------------------------------------- pickle, copy, joblib

def pickled(net):
    return pickle.loads(pickle.dumps(net))


def joblib_round_trip(net, tmp_path):
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "net.joblib"
    joblib.dump(net, path)
    return joblib.load(path)


COPIES = {"pickle": lambda net, tmp_path: pickled(net),
          "pickle-protocol-0": lambda net, tmp_path: pickle.loads(pickle.dumps(net, protocol=0)),
          "deepcopy": lambda net, tmp_path: copy.deepcopy(net),
          "copy": lambda net, tmp_path: copy.copy(net),
          "joblib": joblib_round_trip}


@pytest.mark.parametrize("how", list(COPIES))
@pytest.mark.parametrize("opt", ["sgd-nesterov-step", "adam-invscaling-clip"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_copies_are_exact_independent_and_train_identically(cls, dtype, opt, how, tmp_path):
    # The oracle is the original: a copy holds the same weights, optimizer state, counters and
    # shuffle stream, so the same further training gives bit-identical losses and weights.
    net = trained(cls, dtype, opt)
    twin = COPIES[how](net, tmp_path)
    assert twin is not net
    assert_same_network(twin, net)
    for p, q in zip(twin.parameters(), net.parameters()):
        assert not np.shares_memory(p, q)
    theirs, their_params = continue_training(twin)  # the copy trains first: the original must not move
    assert_same_network(pickled(net), trained(cls, dtype, opt))
    ours, our_params = continue_training(net)
    assert ours == theirs
    for p, q in zip(our_params, their_params):
        assert p.tobytes() == q.tobytes()


def test_pickle_goes_through_the_save_format_not_native_objects():
    net = trained(bpfast.Network, "float32", "adamw")
    data = pickle.dumps(net)
    names = {arg for op, arg, _ in pickletools.genops(data) if op.name in ("GLOBAL", "STACK_GLOBAL", "SHORT_BINUNICODE",
                                                                         "BINUNICODE", "UNICODE")}
    assert "_from_saved_bytes" in names
    assert not any("_core" in str(name) for name in names)
    buffer = io.BytesIO()
    net.save(buffer)
    assert buffer.getvalue() in data  # exactly the bytes save() writes


def forward_in_a_child(net, X):
    return net.forward(X)


def test_a_net_crosses_processes():
    # multiprocessing pickles the net into a fresh interpreter (spawn), which rebuilds it
    net = trained(bpfast.Network, "float64", "sgd")
    X, _ = training_data(np.float64)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        remote = pool.submit(forward_in_a_child, net, X).result(timeout=120)
    assert remote.tobytes() == net.forward(X).tobytes()


def test_optimizers_and_history_pickle():
    for opt in OPTIMIZERS.values():
        assert pickled(opt()) == opt()
    net = make(bpfast.Network, "float64", "sgd")
    X, labels = training_data(np.float64)
    history = net.fit(X, labels, epochs=2, batch_size=8)
    again = pickled(history)
    assert list(again) == list(history) and again.history == history.history
    assert again.best_epoch == history.best_epoch


# ---------------------------------------------------------------- paths and file objects

@pytest.mark.parametrize("given", ["model", "model.npz", "dir.v2/model", "model.bin"])
def test_save_and_load_name_one_file_with_or_without_the_suffix(given, tmp_path):
    (tmp_path / "dir.v2").mkdir()
    net = trained(bpfast.Network, "float32", "sgd")
    written = net.save(tmp_path / given)
    expected = tmp_path / (given if given.endswith(".npz") else given + ".npz")
    assert written == str(expected) and expected.is_file()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [expected.name]
    for name in (tmp_path / given, str(tmp_path / given), expected):
        assert_same_network(bpfast.Network.load(name), net)


def test_load_reads_a_file_named_exactly_as_given_first(tmp_path):
    # a file renamed without its suffix still loads under its own name
    net = trained(bpfast.Network, "float64", "adamw")
    net.save(tmp_path / "a.npz")
    (tmp_path / "a.npz").rename(tmp_path / "renamed")
    assert_same_network(bpfast.Network.load(tmp_path / "renamed"), net)


def test_save_and_load_file_objects():
    net = trained(reference.Network, "float64", "adam-invscaling-clip")
    buffer = io.BytesIO()
    assert net.save(buffer) is buffer
    buffer.seek(0)
    assert_same_network(reference.Network.load(buffer), net)


def test_load_of_a_missing_file_names_both_candidates(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\b.*nothing\.npz|nothing\.npz"):
        bpfast.Network.load(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError):
        bpfast.Network.load(tmp_path / "nothing.npz")


@pytest.mark.parametrize("bad", [3, None, 2.5, ["a"]])
def test_save_and_load_refuse_what_is_not_a_path(bad):
    net = make(bpfast.Network, "float32", "sgd")
    with pytest.raises(TypeError, match=r"\bpath\b"):
        net.save(bad)
    with pytest.raises(TypeError, match=r"\bpath\b"):
        bpfast.Network.load(bad)


GARBAGE = {  # file contents: what the error must say it looks like
    "text": (b"hello, this is not a network\n", "text"),
    "npy": (None, "single .npy array"),
    "pickle": (pickle.dumps({"W": [1, 2]}), "pickle"),
    "random": (bytes(np.random.default_rng(1).integers(128, 256, 300, dtype=np.uint8)), "unknown kind"),
    "empty": (b"", "empty"),
}


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_a_garbage_file_says_what_is_wrong_with_it(kind, tmp_path):
    content, said = GARBAGE[kind]
    path = tmp_path / "garbage.npz"
    if content is None:
        np.save(tmp_path / "garbage.npy", np.ones(3))
        (tmp_path / "garbage.npy").rename(path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        bpfast.Network.load(path)
    message = str(info.value)
    assert str(path) in message and said in message, message
    assert "pickled data" not in message and "allow_pickle" not in message
