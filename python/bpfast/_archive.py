"""The .npz archive that Network.save writes, read without trusting it.

Network.load reads the zip directory and the npy header of every member
first and checks them against what the declared architecture needs; only
then does it allocate the network and read each array into it, every read
bounded by the bytes expected. Members must be stored (np.savez, as save
writes them), so nothing is ever decompressed and the arrays a file declares
can never add up to more bytes than the file holds. Records are JSON whose
nesting is checked before it is parsed. Every refusal is a ValueError (or
one of READ_ERRORS) saying what is wrong; load adds the path.
"""

import io
import json
import math
import re
import struct
import zipfile

import numpy as np
from numpy.lib import format as npy

HEADER_BYTES = 4096           # an npy header (save's are 128 bytes)
RECORD_BYTES = 1 << 16        # format, version, optimizer, shuffle_state, counters: npy header and data
ARCHITECTURE_BYTES = 1 << 20  # the architecture record (4 bytes a character): 17,000 layers or so
RECORD_DEPTH = 2              # the deepest nesting save writes: {"sizes": [...]}, {"state": {...}}
CHUNK_BYTES = 1 << 24         # bytes read at a time into a parameter array

# What a malformed archive raises while it is read; load turns each into ValueError.
READ_ERRORS = (ValueError, TypeError, KeyError, OverflowError, EOFError, OSError, RecursionError,
               zipfile.BadZipFile)

_JSON_TOKENS = re.compile(r'["\\\[\]{}]')


def _json_depth_at_most(text, limit):
    """Raise ValueError if the JSON text nests brackets deeper than limit (strings are skipped)."""
    depth, in_string, escaped_at = 0, False, -1
    for token in _JSON_TOKENS.finditer(text):
        position, char = token.start(), token.group()
        if position == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = position + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                raise ValueError(f"it nests deeper than {limit} levels")
        elif char in "]}":
            depth -= 1


def _refuse_constant(name):
    raise ValueError(f"it holds {name}, which is not a finite number")


def _unique_keys(pairs):
    record = {}
    for key, value in pairs:
        if key in record:
            raise ValueError(f"it repeats the key {key!r}")
        record[key] = value
    return record


def parse_record(text, name):
    """The JSON record of a member: dicts, lists, str, int, float, bool and None, nested
    at most RECORD_DEPTH deep (checked before parsing), no NaN or Infinity, no repeated keys."""
    try:
        _json_depth_at_most(text, RECORD_DEPTH)
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{name} is not a bpfast record: {error}") from None


ZIP_START = b"PK\x03\x04"  # the first bytes of a zip archive's first member, where save() puts it


def _looks_like(start, size):
    """What the first bytes of a file that is not a zip archive suggest it is."""
    if start.startswith(b"\x93NUMPY"):
        kind = "a single .npy array (np.save), not an archive"
    elif start[:1] == b"\x80":
        # A pickle of a Network holds the bytes save() writes, which a zip reader would find:
        # it is refused all the same, as nothing but save()'s own files is read.
        kind = "a pickle, which bpfast never reads (pickle.load it if you trust it, then save())"
    elif all(32 <= c < 127 or c in b"\t\r\n" for c in start):
        kind = "text"
    else:
        kind = "binary data of an unknown kind"
    return f"its {size} bytes look like {kind} (they start {start!r})"


class Archive:
    """A bpfast .npz opened for checking: its members are known by name (without .npy).

    Opening checks the zip directory only: no repeated names, no encrypted or
    compressed member, each member's bytes inside the file and all of them
    together no more than the file holds.
    """

    def __init__(self, file):
        self._own = not hasattr(file, "read")
        self._file = open(file, "rb") if self._own else file
        try:
            self.size = self._file.seek(0, io.SEEK_END)  # bytes in the file
            self._file.seek(0)
            if self.size == 0:
                raise ValueError("it is empty (0 bytes)")
            start = self._file.read(16)
            self._file.seek(0)
            if not start.startswith(ZIP_START):  # save() writes the archive from the first byte
                raise ValueError(f"it is not an .npz (zip) archive as save() writes: "
                                 f"{_looks_like(start, self.size)}")
            try:
                self._zip = zipfile.ZipFile(self._file)
            except (zipfile.BadZipFile, EOFError, OSError) as error:
                raise ValueError(f"it is a truncated or damaged zip archive ({self.size} bytes; "
                                 f"{error}): the write of this file did not finish, or it was cut "
                                 "short or changed since") from None
            self.members = self._directory(self._zip.infolist(), self.size)
        except BaseException:
            self.close()
            raise
        self._checked = {}  # member -> (where its data starts, its dtype), once its header is checked

    @staticmethod
    def _directory(infos, end):
        members, total = {}, 0
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise ValueError(f"it holds a member {name!r} that is not an .npy array")
            if name[:-4] in members:
                raise ValueError(f"it holds the member {name!r} twice")
            if info.flag_bits & 0x1:
                raise ValueError(f"its member {name!r} is encrypted")
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise ValueError(f"its member {name!r} is compressed; save() stores members uncompressed")
            if info.header_offset + info.compress_size > end:
                raise ValueError(f"its member {name!r} extends past the end of the file")
            total += info.compress_size
            members[name[:-4]] = info
        if total > end:
            raise ValueError(f"its members claim {total} bytes, more than the file's {end}")
        return members

    def close(self):
        if getattr(self, "_zip", None) is not None:
            self._zip.close()
        if self._own:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ members
    def require(self, names):
        """Raise ValueError unless the members are exactly names."""
        unknown = sorted(set(self.members) - set(names))
        missing = [name for name in names if name not in self.members]
        if unknown:
            listed = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise ValueError(f"it holds {len(unknown)} member(s) that this architecture does not have: {listed}")
        if missing:
            listed = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise ValueError(f"it lacks {len(missing)} member(s): {listed}")

    def _info(self, name):
        info = self.members.get(name)
        if info is None:
            raise ValueError(f"it has no member {name!r}")
        return info

    @staticmethod
    def _read_header(stream, name):
        """(shape, fortran_order, dtype) from the npy header at the start of stream, reading at most
        HEADER_BYTES; the stream is left at the start of the data."""
        try:
            version = npy.read_magic(stream)
        except ValueError as error:
            raise ValueError(f"{name} is not an npy array ({error})") from None
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{name} is in npy format version {version[0]}.{version[1]}; "
                             "save() writes version 1.0")
        length_format = "<H" if version == (1, 0) else "<I"
        length_bytes = stream.read(struct.calcsize(length_format))
        if len(length_bytes) != struct.calcsize(length_format):
            raise ValueError(f"{name} ends inside its npy header")
        length, = struct.unpack(length_format, length_bytes)
        if length > HEADER_BYTES:
            raise ValueError(f"{name} has an npy header of {length} bytes; at most {HEADER_BYTES} are read")
        header = stream.read(length)
        if len(header) != length:
            raise ValueError(f"{name} ends inside its npy header")
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        try:
            return read(io.BytesIO(length_bytes + header))
        except Exception as error:  # numpy's parser of untrusted text: tokenize.TokenError and others
            raise ValueError(f"{name} has an npy header that cannot be read "
                             f"({type(error).__name__}: {error})") from None

    def check_array(self, name, shape, dtype):
        """Check the header of member name: shape, dtype (in either byte order), C order, and
        exactly the data those need. Nothing but the header is read."""
        info = self._info(name)
        with self._zip.open(info) as stream:
            saved_shape, fortran_order, saved_dtype = self._read_header(stream, name)
            data_start = stream.tell()
        if saved_dtype not in (dtype, dtype.newbyteorder()):
            raise ValueError(f"{name} has dtype {saved_dtype}; expected {dtype}")
        if saved_shape != tuple(shape):
            raise ValueError(f"{name} has shape {saved_shape}; expected {tuple(shape)}")
        if fortran_order:
            raise ValueError(f"{name} is in Fortran order; save() writes C order")
        expected = math.prod(shape) * dtype.itemsize
        if info.file_size - data_start != expected:
            raise ValueError(f"{name} holds {info.file_size - data_start} bytes of data; "
                             f"its shape {tuple(shape)} and dtype {dtype} need {expected}")
        self._checked[name] = data_start, saved_dtype

    def read_into(self, name, array):
        """Read member name, checked by check_array, into the C-contiguous array of its
        shape and dtype: exactly the bytes its header promised, a chunk at a time."""
        data_start, saved_dtype = self._checked[name]
        target = memoryview(array).cast("B")  # array's own memory (raises rather than copy)
        with self._zip.open(self._info(name)) as stream:
            stream.read(data_start)
            for start in range(0, len(target), CHUNK_BYTES):
                count = min(CHUNK_BYTES, len(target) - start)
                chunk = stream.read(count)
                if len(chunk) != count:
                    raise ValueError(f"the data of {name} ends early")
                target[start:start + count] = chunk
            if stream.read(1):  # reading to the end also checks the member's CRC
                raise ValueError(f"{name} holds more data than its header says")
        if saved_dtype != array.dtype:
            array.byteswap(inplace=True)

    # ------------------------------------------------------------ records
    def _small(self, name, kinds, shape, limit):
        """The bytes and dtype of a small member: at most limit bytes in all, read only after its
        header says it is of a dtype kind in kinds and of shape."""
        info = self._info(name)
        if info.file_size > limit:
            raise ValueError(f"{name} is {info.file_size} bytes; at most {limit} are read")
        with self._zip.open(info) as stream:
            saved_shape, _, dtype = self._read_header(stream, name)
            if dtype.kind not in kinds or saved_shape != shape:
                raise ValueError(f"{name} has shape {saved_shape} and dtype {dtype}")
            size = math.prod(shape) * dtype.itemsize
            data = stream.read(limit)
            if len(data) != size:
                raise ValueError(f"{name} holds {len(data)} bytes of data; its header says {size}")
        return data, dtype

    def text(self, name, limit=RECORD_BYTES):
        """The string that member name holds (a 0-d unicode array)."""
        data, dtype = self._small(name, "U", (), limit)
        code_points = np.frombuffer(data, np.dtype(np.uint32).newbyteorder(dtype.byteorder))
        try:
            return code_points.astype("<u4").tobytes().decode("utf-32-le").rstrip("\0")
        except UnicodeDecodeError as error:
            raise ValueError(f"{name} holds characters that are not Unicode ({error.reason})") from None

    def record(self, name, limit=RECORD_BYTES):
        """The JSON record that member name holds."""
        return parse_record(self.text(name, limit), name)

    def integers(self, name, shape):
        """The integers that member name holds, as a list of Python ints."""
        data, dtype = self._small(name, "iu", shape, RECORD_BYTES)
        return [int(value) for value in np.frombuffer(data, dtype).reshape(-1)]
