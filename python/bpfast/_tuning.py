"""Which GEMM micro-kernel runs for each dtype: one of the candidates the chosen instruction set
has (bpfast._core.gemm_kernels), all of which give the same bits, so the choice is a matter of
speed alone.

Made once per process, at the first native Network or product (not at import: timing takes
about 0.4 s on a Zen 5, under a second), or again on bpfast.tune(), which always times:

    BPFAST_KERNEL=name[,name]  these kernels, one per dtype at most ("forced")
    BPFAST_TUNE=0              the built-in table for this CPU's family, no timing ("default table")
    otherwise                  the cache's entry for this CPU model, ISA and bpfast version
                               ("cached"), or else the candidates timed now ("tuned") and the
                               winner written to the cache

The cache is one small JSON file, bpfast/gemm_kernels.json under $XDG_CACHE_HOME (or
~/.cache), replaced whole (write then rename). Where it cannot be written, the default table
is used, so that no process pays for timing that no later one would reuse (bpfast.tune()
times even so, and its choice's note says that the cache was not written).
"""

import datetime
import json
import math
import os
import tempfile
import threading
import time

from . import _core, _cpu

DTYPES = ("float32", "float64")
CACHE_FORMAT = 1
CACHE_FILE = "gemm_kernels.json"

# The timed products per dtype, as (m, n, k, trans_b): a square A·B, whose time goes to the
# micro-kernel, and a layer's X·Wᵀ at batch 64 and 16, where a tile of many rows pads the
# batch (16 rows in tiles of 12 are 24). A candidate's rate is the geometric mean of its
# rates on the three, so that each counts as much.
SHAPES = ((384, 384, 384, False), (64, 512, 784, True), (16, 1024, 784, True))
# On one thread: a micro-kernel's speed is a core's, and one thread's timing is the least
# disturbed by other work on the machine (and disturbs it least).
TIMING_THREADS = 1
TIME_BUDGET = 0.4  # seconds of timing rounds, both dtypes together, past MIN_ROUNDS
MIN_ROUNDS, MAX_ROUNDS = 2, 10
_clock = time.perf_counter  # the timing rounds' clock (a test replaces it)
# A hard stop, rounds or not, so that the choice takes under a second on any machine (a
# sanitized build's rounds take twice as long): a candidate not timed on every shape by then
# counts as slowest; each dtype's default is timed first, and always once.
TIME_LIMIT = 0.9
# A candidate replaces the default only when it is this much faster: less is noise.
MARGIN = 1.03

# The built-in choice per CPU family (bpfast._cpu.family), for BPFAST_TUNE=0 and caches that
# cannot be written: per family, kernel names in preference order; the first one the ISA
# offers for a dtype is taken, and the ISA's default where none is. Intel's server cores
# (two 512-bit FMA ports) take the 24-accumulator tiles, as BLIS's skx configuration does;
# Zen 5 keeps the 8-row defaults, within noise of the 24-accumulator tiles on squares and
# ahead at batch 64 and 16 on a Zen 5 core (BENCHMARKS.md); Zen 4, whose AVX-512 runs on
# 256-bit units, the 16-accumulator default it was tuned with; Zen 3 and Intel's client cores
# the AVX2 default (BLIS's haswell tile, 6x16) and, where a client core has AVX-512 (one FMA
# port), its default.
DEFAULT_TABLE = {
    "intel_server": ("avx512_f32_12x32", "avx512_f64_12x16"),
    "zen5": ("avx512_f32_8x32", "avx512_f64_8x16"),
    "zen4": ("avx512_f32_8x32", "avx512_f64_8x16"),
    "zen3": ("avx2_f32_6x16", "avx2_f64_6x8"),
    "intel_client": ("avx512_f32_8x32", "avx512_f64_8x16", "avx2_f32_6x16", "avx2_f64_6x8"),
}

_lock = threading.Lock()
_choice = None  # dtype -> {"kernel", "how", "gflops", ...}, once made


def ensure_chosen():
    """Make the choice if this process has not yet (cheap once it has)."""
    if _choice is None:
        with _lock:
            if _choice is None:
                _decide(retime=False)


def choice():
    """The choice per dtype: {"kernel": name, "how": "tuned" | "cached" | "default table" |
    "forced", "gflops": the measured rate or None, ...}, made now if it was not yet."""
    ensure_chosen()
    return {dtype: dict(entry) for dtype, entry in _choice.items()}


def tune():
    """Time the GEMM kernels of this machine now (under a second), use the fastest per dtype and
    remember them in the cache; a kernel BPFAST_KERNEL forces stays. Returns the choice, as
    show_config reports it, with each candidate's rate under "rates"."""
    with _lock:
        _decide(retime=True)
    return choice()


def cache_path():
    """Where the cache lives: bpfast/gemm_kernels.json under $XDG_CACHE_HOME (when it is an
    absolute path) or ~/.cache."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bpfast", CACHE_FILE)


def cache_key():
    """The cache's key for this process: CPU model (with its family, model and stepping numbers),
    instruction set and bpfast version."""
    from . import __version__
    return f"{_cpu.identity()} | {_core.isa} | bpfast {__version__}"


def forced_kernels():
    """{dtype: name} from BPFAST_KERNEL (names separated by commas, at most one per dtype);
    ValueError naming the variable and the valid names otherwise."""
    text = os.environ.get("BPFAST_KERNEL", "").strip()
    if not text:
        return {}
    candidates = {dtype: _core.gemm_kernels(dtype) for dtype in DTYPES}
    forced = {}
    for name in (part.strip() for part in text.split(",")):
        dtype = next((d for d in DTYPES if name in candidates[d]), None)
        if dtype is None:
            valid = "; ".join(f"{d}: {', '.join(candidates[d])}" for d in DTYPES)
            raise ValueError(f"BPFAST_KERNEL must name GEMM kernels of this CPU's instruction set "
                             f"({_core.isa}), one per dtype at most ({valid}); got {name!r}")
        if dtype in forced:
            raise ValueError(f"BPFAST_KERNEL names two {dtype} kernels ({forced[dtype]!r} and {name!r}); "
                             f"give one per dtype at most")
        forced[dtype] = name
    return forced


def tuning_on():
    """Whether BPFAST_TUNE allows timing: unset, empty or "1" yes, "0" no; ValueError otherwise."""
    value = os.environ.get("BPFAST_TUNE", "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"BPFAST_TUNE must be 0 (no timing: the built-in table) or 1; got {value!r}")
    return value != "0"


def default_kernel(dtype, family=None):
    """The default table's kernel for dtype on this CPU's family (or the family given)."""
    candidates = _core.gemm_kernels(dtype)
    for name in DEFAULT_TABLE.get(family or _cpu.family(), ()):
        if name in candidates:
            return name
    return candidates[0]


def _decide(retime):
    """Make the choice (see the module's description) and apply it."""
    global _choice
    choice = {}
    for dtype, name in forced_kernels().items():
        choice[dtype] = {"kernel": name, "how": "forced", "gflops": None}
    rest = [d for d in DTYPES if d not in choice]
    if rest and not retime and not tuning_on():
        for dtype in rest:
            choice[dtype] = {"kernel": default_kernel(dtype), "how": "default table", "gflops": None,
                             "note": "BPFAST_TUNE=0"}
        rest = []
    if rest and not retime:
        cached = _machine_entry(_read_cache())
        for dtype in rest:
            entry = cached.get(dtype)
            if isinstance(entry, dict) and entry.get("kernel") in _core.gemm_kernels(dtype):
                choice[dtype] = {"kernel": entry["kernel"], "how": "cached", "gflops": entry.get("gflops"),
                                 "rates": entry.get("rates", {})}
        rest = [d for d in rest if d not in choice]
    for dtype in rest:
        if len(_core.gemm_kernels(dtype)) == 1:
            choice[dtype] = {"kernel": _core.gemm_kernels(dtype)[0], "how": "default table", "gflops": None,
                             "note": "the only kernel of this ISA"}
    rest = [d for d in rest if d not in choice]
    if rest and not retime and not _cache_writable():
        for dtype in rest:
            choice[dtype] = {"kernel": default_kernel(dtype), "how": "default table", "gflops": None,
                             "note": f"the cache ({cache_path()}) cannot be written"}
        rest = []
    if rest:
        timed = _time_candidates(rest)
        for dtype in rest:
            choice[dtype] = timed[dtype]
        note = _write_cache({d: timed[d] for d in rest})
        if note:
            for dtype in rest:
                choice[dtype]["note"] = note
    for dtype, entry in choice.items():
        _core.use_gemm_kernel(dtype, entry["kernel"])
    _choice = choice


def _time_candidates(dtypes):
    """{dtype: {"kernel", "how": "tuned", "gflops", "rates", "seconds"}}: every candidate of each
    dtype timed on SHAPES, in rounds that visit every candidate in turn (so that a slow spell of
    the machine is shared), until TIME_BUDGET; each candidate's best time per shape counts."""
    flops = [2.0 * m * n * k for m, n, k, _ in SHAPES]
    visits = ([(d, names[0]) for d in dtypes for names in [_core.gemm_kernels(d)]]
              + [(d, name) for d in dtypes for name in _core.gemm_kernels(d)[1:]])
    best = {visit: [float("inf")] * len(SHAPES) for visit in visits}
    start = _clock()
    for rounds in range(1, MAX_ROUNDS + 1):
        for index, (dtype, name) in enumerate(visits):
            defaults_timed = rounds > 1 or index >= len(dtypes)  # each default is timed once, limit or not
            if defaults_timed and _clock() - start > TIME_LIMIT:
                break
            for s, (m, n, k, trans_b) in enumerate(SHAPES):
                seconds = _core.time_gemm_kernel(dtype, name, m, n, k, trans_b, 1, TIMING_THREADS)[0]
                best[dtype, name][s] = min(best[dtype, name][s], seconds)
        elapsed = _clock() - start
        if elapsed > TIME_LIMIT or (rounds >= MIN_ROUNDS and elapsed > TIME_BUDGET):
            break
    elapsed = _clock() - start
    result = {}
    for dtype in dtypes:
        names = _core.gemm_kernels(dtype)
        rates = {name: round(math.prod(f / t for f, t in zip(flops, best[dtype, name])) ** (1 / len(SHAPES)) / 1e9, 1)
                 for name in names}
        winner = max(names, key=rates.get)
        if rates[winner] < MARGIN * rates[names[0]]:
            winner = names[0]
        result[dtype] = {"kernel": winner, "how": "tuned", "gflops": rates[winner], "rates": rates,
                         "seconds": round(elapsed, 3)}
    return result


def _read_cache():
    """The cache's entries, {key: {dtype: entry}}; {} when there is no readable cache."""
    try:
        with open(cache_path()) as file:
            data = json.load(file)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("machines"), dict):
        return {}
    return data["machines"]


def _machine_entry(machines):
    """A copy of this machine's entry among the cache's, {} when there is none (or not a dict)."""
    entry = machines.get(cache_key())
    return dict(entry) if isinstance(entry, dict) else {}


def _cache_writable():
    """Whether the cache's folder exists or can be made, and can be written."""
    folder = os.path.dirname(cache_path())
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def _write_cache(timed):
    """Add this machine's winners to the cache, replacing the file whole; a note saying why
    when it could not be written, else None."""
    path = cache_path()
    machines = _read_cache()
    entry = _machine_entry(machines)
    for dtype, result in timed.items():
        entry[dtype] = {"kernel": result["kernel"], "gflops": result["gflops"], "rates": result["rates"]}
    entry["timed"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    machines[cache_key()] = entry
    text = json.dumps({"format": CACHE_FORMAT, "machines": machines}, indent=1, sort_keys=True)
    temporary = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".gemm_kernels.", suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass
        return f"the cache ({path}) could not be written: {error.strerror or error}"
    return None


def _forget():
    """Drop this process's choice (the next use makes it again) and run the defaults; for the tests."""
    global _choice
    with _lock:
        _choice = None
        for dtype in DTYPES:
            _core.use_gemm_kernel(dtype, _core.gemm_kernels(dtype)[0])
