"""The save format of a Network: a versioned .npz of records and arrays (no pickle).

Network.save, load, pickling and copying all go through write and read here;
bpfast._archive reads the file without trusting it.
"""

import errno
import io
import json
import math
import os
import secrets
import zipfile

import numpy as np

from . import _archive
from . import _architecture
from . import _precision
from . import _validate as check
from . import optim

FILE_FORMAT = "bpfast-network"
FILE_VERSION = 1
RECORD_MEMBERS = ("format", "version", "architecture", "optimizer", "shuffle_state", "counters")
ARCHITECTURE_KEYS = ("sizes", "activation", "output", "loss", "reduction", "dtype", "compute", "seed")
# Files written before mixed precision have no compute: they computed in their dtype.
OPTIONAL_KEYS = ("compute",)


def save(net, path):
    """net in the save format at path (a file name, ".npz" added when it lacks it) or into a
    binary file object; returns the path written. A file name is written atomically (see
    atomic_write); a file object is written as it is, at its position."""
    if hasattr(path, "write"):
        write(net, path)
        return path
    file_name = _npz_path(path)
    atomic_write(file_name, lambda file: write(net, file))
    return file_name


def atomic_write(file_name, write_to):
    """Call write_to(file) on a new temporary file in file_name's folder, flush and fsync it,
    rename it over file_name and fsync the folder: file_name holds either its old bytes or
    all the new ones, whenever the process dies. A failure (a full disk, a file-size limit,
    an exception from write_to) removes the temporary and leaves file_name as it was; an
    OSError is raised again naming file_name."""
    target = os.path.realpath(file_name)  # a symbolic link's target is replaced, not the link
    folder, base = os.path.split(target)
    temporary = None
    try:
        while temporary is None:  # a fresh name (O_EXCL); the umask applies as for open()
            name = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
            try:
                descriptor = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                                     0o666)
            except FileExistsError:
                continue
            temporary = name
        with os.fdopen(descriptor, "wb") as file:
            write_to(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
        temporary = None
        _fsync_folder(folder)
    except OSError as error:
        raise OSError(error.errno, f"could not write {file_name}: {error.strerror or error}",
                      os.fsdecode(file_name)) from error
    finally:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass


def _fsync_folder(folder):
    """Make a rename in folder durable (where the file system can: some refuse to fsync a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EROFS):
            raise
    finally:
        os.close(descriptor)


def load(cls, path):
    """The network of class cls saved at path (a file name or a binary file object): every
    check of Network.load's doc, then the net."""
    if not hasattr(path, "read"):
        path = _existing_path(path)
    try:
        with _archive.Archive(path) as archive:
            return read(cls, archive)
    except FileNotFoundError:
        raise
    except zipfile.BadZipFile as error:  # a member's CRC, or a header the directory contradicts
        raise ValueError(f"{_name_of(path)} is not a valid bpfast network file: it is a damaged zip "
                         f"archive ({error})") from None
    except _archive.READ_ERRORS as error:
        raise ValueError(f"{_name_of(path)} is not a valid bpfast network file: {error}") from None


def saved_bytes(net):
    """The bytes save() would write for net."""
    buffer = io.BytesIO()
    write(net, buffer)
    return buffer.getvalue()


def write(net, file, file_format=FILE_FORMAT, version=FILE_VERSION, more=None):
    """The save format of net into a binary file object; a checkpoint (bpfast._checkpoint) gives
    its own format and version, and more members (name: array) to write alongside."""
    architecture = {"sizes": net.sizes, "activation": [l.activation for l in net.layers[:-1]],
                    "output": net.output, "loss": net.loss_name, "reduction": net.reduction,
                    "dtype": net.dtype.name, "compute": net.compute, "seed": net.seed}
    arrays = {f"param_{i}": p for i, p in enumerate(net.parameters())}
    first_moment, second_moment = net._engine.optimizer_state()
    arrays.update(state_0=first_moment, state_1=second_moment)
    arrays.update(more or {})
    np.savez(file, format=np.array(file_format), version=np.array(version),
             architecture=np.array(json.dumps(architecture)),
             optimizer=np.array(json.dumps(net._optimizer.config())),
             shuffle_state=np.array(json.dumps(net._shuffle_rng.bit_generator.state)),
             counters=np.array([net._engine.steps, net._engine.epochs], dtype=np.int64),
             **arrays)


CHECKPOINT_FORMAT = "bpfast-checkpoint"  # bpfast._checkpoint's files: a network and fit's state


def read(cls, archive, expected_format=FILE_FORMAT, expected_version=FILE_VERSION, more=()):
    """The network of class cls in an opened archive: every record and array header is
    checked, then the net is built and each array read into it. more: the names of members
    a checkpoint holds besides the network's (its reader checks them)."""
    file_format = archive.text("format")
    if file_format != expected_format:
        if file_format == CHECKPOINT_FORMAT:
            raise ValueError("it is a checkpoint of Network.fit, not a saved network: pass it to "
                             "fit(checkpoint=...) to resume that fit")
        raise ValueError(f"its format is {file_format!r}; expected {expected_format!r}")
    version, = archive.integers("version", ())
    if version != expected_version:
        raise ValueError(f"it has version {version}; this bpfast reads version {expected_version}")
    arch = archive.record("architecture", _archive.ARCHITECTURE_BYTES)
    if not isinstance(arch, dict) or not set(ARCHITECTURE_KEYS) - set(OPTIONAL_KEYS) <= set(arch) <= set(ARCHITECTURE_KEYS):
        raise ValueError(f"its architecture must be a record of {', '.join(ARCHITECTURE_KEYS)}")
    if not isinstance(arch["activation"], list):
        raise ValueError(f"its activation must be a list of names; got {arch['activation']!r:.80}")
    sizes, hidden, output, loss, reduction, dtype = _architecture.checked(
        arch["sizes"], arch["activation"], arch["output"], arch["loss"], arch["reduction"],
        check.choice(arch["dtype"], check.DTYPES, "dtype"))
    compute = arch.get("compute", dtype.name)
    if not isinstance(compute, str):
        raise ValueError(f"its compute must be a name; got {compute!r:.80}")
    _precision.row(dtype, compute)  # a compute this dtype has
    seed = arch["seed"] if arch["seed"] is None else check.non_negative_int(arch["seed"], "seed")
    optimizer = optim.from_config(archive.record("optimizer"))  # checks every setting
    shuffle = _shuffle_generator(archive.record("shuffle_state"))
    counters = archive.integers("counters", (2,))
    if not all(0 <= c < 2**63 for c in counters):
        raise ValueError(f"counters must be two non-negative integers; got {counters}")

    # The arrays this architecture needs, shaped and sized as the engines lay them out.
    shapes = {f"param_{i}": tuple(shape) for i, shape in enumerate(cls._parameter_shapes(sizes))}
    total = sum(math.prod(shape) for shape in shapes.values())
    if total * dtype.itemsize > archive.size:
        raise ValueError(f"its architecture has {total} parameters, {total * dtype.itemsize} bytes in "
                         f"{dtype}; the file holds {archive.size} bytes")
    shapes["state_0"], shapes["state_1"] = cls._optimizer_state_shapes(optimizer, total)
    archive.require(RECORD_MEMBERS + tuple(shapes) + tuple(more))
    for name, shape in shapes.items():
        archive.check_array(name, shape, dtype)

    # Each array's bytes are in the file (members are stored): only now is the net allocated.
    net = cls(sizes, activation=hidden, output=output, loss=loss, reduction=reduction, dtype=dtype,
              compute=compute, seed=seed, optimizer=optimizer)
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
        return read(cls, archive)


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
