"""The GEMM micro-kernel candidates and the choice among them (bpfast._tuning).

Every candidate of this ISA, forced one at a time, must give bit for bit what the ISA's default
kernel gives, on products whose shapes are not multiples of any tile (1, primes, depths past
one depth block of 512) in every layout the kernels take, and on a few training steps; and the
default must match bpfast.reference to the dtype's tolerance (conftest.TOLERANCE). Then the
choice: BPFAST_KERNEL forcing and its errors, BPFAST_TUNE=0's table, and the timing with its
cache, in a cache folder of the test's own (tests/conftest.py turns timing off elsewhere).
.ci/run runs this file again under BPFAST_ISA=avx2 and with small forced GEMM blocks.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import bpfast
from bpfast import _core, _cpu, _tuning
from bpfast import kernels as K
from bpfast import reference as R
from conftest import DTYPES, assert_close

DTYPE_NAMES = tuple(np.dtype(d).name for d in DTYPES)

# (M, N, K): ragged edges in every direction, a few columns (the Cᵀ path), one row block and
# many, and depths of two and three depth blocks.
SHAPES = [(7, 13, 5), (8, 32, 64), (13, 33, 129), (1, 70, 40), (30, 1, 17), (25, 65, 300),
          (200, 10, 64), (73, 97, 513), (150, 70, 1030), (3, 300, 200), (96, 130, 33)]


@pytest.fixture
def restore_choice():
    """Leave the process's kernels and choice as they were."""
    before = {dtype: _core.gemm_kernel(dtype) for dtype in DTYPE_NAMES}
    choice = _tuning._choice
    yield
    for dtype, name in before.items():
        _core.use_gemm_kernel(dtype, name)
    _tuning._choice = choice


def _products(rng, dtype):
    """The results of every product kind on SHAPES, for the kernel in use."""
    results = []
    for M, N, Kd in SHAPES:
        A = rng.standard_normal((M, Kd)).astype(dtype)
        B = rng.standard_normal((Kd, N)).astype(dtype)
        results.append(K.matmul(A, B))
        results.append(K.matmul(np.ascontiguousarray(A.T), B, trans_a=True))
        results.append(K.matmul(A, np.ascontiguousarray(B.T), trans_b=True))
        results.append(K.matmul(np.ascontiguousarray(A.T), np.ascontiguousarray(B.T), trans_a=True, trans_b=True))
        delta = rng.standard_normal((Kd, M)).astype(dtype)  # (batch, n_out)
        X = rng.standard_normal((Kd, N)).astype(dtype)  # (batch, n_in)
        dW = rng.standard_normal((M, N)).astype(dtype)
        results.append(K.weight_gradient(delta, X, out=dW, accumulate=True))
    return results


def _training(dtype):
    """The weights after a few steps of a small and a wider network, for the kernel in use."""
    rng = np.random.default_rng(5)
    weights = []
    for sizes, batch in (([37, 29, 11], 19), ([300, 130, 10], 70)):
        net = bpfast.Network(sizes, activation="tanh", output="softmax", loss="cross_entropy", dtype=dtype, seed=3)
        X = rng.standard_normal((batch, sizes[0])).astype(dtype)
        labels = rng.integers(0, sizes[-1], batch)
        for _ in range(3):
            net.train_step(X, labels, lr=0.05)
        weights += [layer.W.copy() for layer in net.layers] + [layer.b.copy() for layer in net.layers]
    return weights


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
def test_every_candidate_gives_the_default_kernels_bits(dtype, restore_choice):
    _tuning.ensure_chosen()  # (so that no first product makes the choice, and overrides ours, in between)
    names = _core.gemm_kernels(dtype)
    _core.use_gemm_kernel(dtype, names[0])
    expected, trained = _products(np.random.default_rng(11), dtype), _training(dtype)
    threads = _core.get_num_threads()
    for name, count in [(n, threads) for n in names[1:]] + [(n, 1) for n in names if threads > 1]:
        _core.use_gemm_kernel(dtype, name)
        _core.set_num_threads(count)  # (the split among threads follows the tile: the sums must not)
        try:
            products, weights = _products(np.random.default_rng(11), dtype), _training(dtype)
        finally:
            _core.set_num_threads(threads)
        assert _core.gemm_kernel(dtype) == name
        for i, (got, want) in enumerate(zip(products, expected)):
            assert got.tobytes() == want.tobytes(), \
                f"{name} on {count} threads: product {i} ({SHAPES[i // 5]}) differs from {names[0]}"
        for got, want in zip(weights, trained):
            assert got.tobytes() == want.tobytes(), f"{name} on {count} threads: training steps differ from {names[0]}"


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
def test_every_candidate_matches_the_reference(dtype, restore_choice, rng):
    _tuning.ensure_chosen()
    for name in _core.gemm_kernels(dtype):
        _core.use_gemm_kernel(dtype, name)
        for M, N, Kd in SHAPES[::2]:
            A = rng.standard_normal((M, Kd)).astype(dtype)
            B = rng.standard_normal((N, Kd)).astype(dtype)
            assert_close(K.matmul(A, B, trans_b=True), R.kernels.matmul(A, B, trans_b=True), dtype)


def test_the_candidates_and_their_names(restore_choice):
    for dtype in DTYPE_NAMES:
        names = _core.gemm_kernels(dtype)
        assert len(names) == len(set(names)) and all(("f32" if dtype == "float32" else "f64") in n for n in names)
        if _core.isa != "generic":
            assert len(names) >= 3, "several candidates per dtype on every vector ISA"
        # the depth blocks, which fix the order of every sum, are the same for every candidate;
        # the row and column blocks are whole tiles of each
        depths = set()
        for name in names:
            _core.use_gemm_kernel(dtype, name)
            info = _core.build_info()
            (mr, nr), blocks = info["gemm_tile"][dtype], info["gemm_blocks"][dtype]
            assert info["gemm_kernel"][dtype] == name and blocks["mc"] % mr == 0 and blocks["nc"] % nr == 0
            depths.add(blocks["kc"])
        assert len(depths) == 1, f"{dtype}: depth blocks differ between candidates: {depths}"
    first = _core.gemm_kernels("float32")[0]
    with pytest.raises(ValueError, match=r"name must name one of the float32 GEMM kernels .*" + first):
        _core.use_gemm_kernel("float32", "no_such_kernel")
    with pytest.raises(ValueError, match="dtype must be"):
        _core.gemm_kernels("float16")


@pytest.fixture
def fresh_choice(monkeypatch, tmp_path, restore_choice):
    """No choice made yet in this process, no BPFAST_KERNEL, and a cache folder of the test's own."""
    monkeypatch.delenv("BPFAST_KERNEL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _tuning._forget()
    yield tmp_path / "cache" / "bpfast" / _tuning.CACHE_FILE
    _tuning._forget()


def test_bpfast_kernel_forces_one_kernel(fresh_choice, monkeypatch):
    name = _core.gemm_kernels("float32")[-1]
    monkeypatch.setenv("BPFAST_KERNEL", name)
    monkeypatch.setenv("BPFAST_TUNE", "0")
    choice = _tuning.choice()
    assert choice["float32"] == {"kernel": name, "how": "forced", "gflops": None}
    assert _core.gemm_kernel("float32") == name
    assert choice["float64"]["how"] == "default table"
    lines = []
    monkeypatch.setattr("builtins.print", lambda text: lines.append(text))
    bpfast.show_config()
    assert f"float32 {name} (forced by BPFAST_KERNEL)" in lines[0]
    assert not fresh_choice.exists()


def test_bpfast_kernel_names_the_valid_kernels_when_wrong(fresh_choice, monkeypatch):
    monkeypatch.setenv("BPFAST_KERNEL", "avx9_f32_99x99")
    with pytest.raises(ValueError, match="BPFAST_KERNEL must name .*" + _core.gemm_kernels("float64")[-1]
                                         + r".*got 'avx9_f32_99x99'"):
        bpfast.kernels.matmul(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
    names = _core.gemm_kernels("float32")
    monkeypatch.setenv("BPFAST_KERNEL", f"{names[0]},{names[-1]}")
    with pytest.raises(ValueError, match="two float32 kernels"):
        _tuning.choice()
    monkeypatch.setenv("BPFAST_KERNEL", f"{names[-1]}, {_core.gemm_kernels('float64')[-1]}")
    assert {c["how"] for c in _tuning.choice().values()} == {"forced"}


def test_bpfast_tune_0_takes_the_default_table(fresh_choice, monkeypatch):
    monkeypatch.setenv("BPFAST_TUNE", "0")
    choice = _tuning.choice()
    for dtype in DTYPE_NAMES:
        assert choice[dtype]["kernel"] == _tuning.default_kernel(dtype) == _core.gemm_kernel(dtype)
        assert choice[dtype]["how"] == "default table" and choice[dtype]["gflops"] is None
    assert not fresh_choice.exists()
    monkeypatch.setenv("BPFAST_TUNE", "maybe")
    _tuning._forget()
    with pytest.raises(ValueError, match="BPFAST_TUNE must be 0"):
        _tuning.choice()


def test_the_default_table(restore_choice):
    # every name the table gives for this ISA's kernels is one of its candidates
    for dtype in DTYPE_NAMES:
        names = _core.gemm_kernels(dtype)
        prefix = names[0].split("_")[0] + "_" + names[0].split("_")[1] + "_"
        for family, preferred in _tuning.DEFAULT_TABLE.items():
            assert all(n in names for n in preferred if n.startswith(prefix)), (family, dtype)
            assert _tuning.default_kernel(dtype, family) in names
        assert _tuning.default_kernel(dtype, "other") == names[0]
    if _core.gemm_kernels("float32")[0].startswith("avx512_"):
        assert _tuning.default_kernel("float32", "intel_server") == "avx512_f32_12x32"
        assert _tuning.default_kernel("float64", "intel_server") == "avx512_f64_12x16"
        assert _tuning.default_kernel("float32", "zen4") == _core.gemm_kernels("float32")[0]
    xeon = {"vendor_id": "GenuineIntel", "cpu family": "6", "model name": "Intel(R) Xeon(R) Platinum 8480+"}
    assert _cpu.family_of(xeon) == "intel_server"
    assert _cpu.family_of({**xeon, "model name": "13th Gen Intel(R) Core(TM) i7-13700K"}) == "intel_client"
    amd = {"vendor_id": "AuthenticAMD", "cpu family": "25", "flags": "fpu avx2 fma"}
    assert _cpu.family_of(amd) == "zen3"
    assert _cpu.family_of({**amd, "flags": "avx2 avx512f"}) == "zen4"
    assert _cpu.family_of({**amd, "cpu family": "26"}) == "zen5"
    assert _cpu.family_of({}) == "other"


def _tunable():
    return [d for d in DTYPE_NAMES if len(_core.gemm_kernels(d)) > 1]


def test_the_first_use_times_the_kernels_then_the_cache_answers(fresh_choice, monkeypatch):
    if not _tunable():
        pytest.skip("one kernel per dtype on this ISA: nothing to time")
    monkeypatch.setenv("BPFAST_TUNE", "1")
    bpfast.kernels.matmul(np.ones((3, 3)), np.ones((3, 3)))  # the first product makes the choice
    tuned = _tuning.choice()
    for dtype in _tunable():
        entry = tuned[dtype]
        assert entry["how"] == "tuned" and entry["kernel"] == _core.gemm_kernel(dtype)
        assert set(entry["rates"]) == set(_core.gemm_kernels(dtype)) and entry["gflops"] > 0
        assert 0 < entry["seconds"] < 5.0  # the limit itself is tested below, on the clock the code reads
    saved = json.loads(fresh_choice.read_text())
    assert saved["format"] == _tuning.CACHE_FORMAT
    machine = saved["machines"][_tuning.cache_key()]
    assert {d: machine[d]["kernel"] for d in _tunable()} == {d: tuned[d]["kernel"] for d in _tunable()}
    assert [p.name for p in fresh_choice.parent.iterdir()] == [_tuning.CACHE_FILE]  # no temporary left

    # a later process (here: this one, its choice forgotten) reads the cache and times nothing
    _tuning._forget()
    monkeypatch.setattr(_core, "time_gemm_kernel", None)  # would fail if called
    cached = _tuning.choice()
    for dtype in _tunable():
        assert cached[dtype]["how"] == "cached" and cached[dtype]["kernel"] == tuned[dtype]["kernel"]
        assert cached[dtype]["gflops"] == tuned[dtype]["gflops"]


def test_a_cache_of_another_version_or_unreadable_is_not_used(fresh_choice, monkeypatch):
    if not _tunable():
        pytest.skip("one kernel per dtype on this ISA: nothing to time")
    monkeypatch.setenv("BPFAST_TUNE", "1")
    fresh_choice.parent.mkdir(parents=True)
    other = _tuning.cache_key().replace("bpfast ", "bpfast 0.0.0-")
    fresh_choice.write_text(json.dumps({"format": 1, "machines": {other: {"float32": {"kernel": "x"}}}}))
    assert all(_tuning.choice()[d]["how"] == "tuned" for d in _tunable())
    assert other in json.loads(fresh_choice.read_text())["machines"]  # other entries are kept
    fresh_choice.write_text(json.dumps({"format": 1, "machines": {_tuning.cache_key(): ["not", "a", "dict"]}}))
    _tuning._forget()
    assert all(_tuning.choice()[d]["how"] == "tuned" for d in _tunable())
    fresh_choice.write_text("{not json")
    _tuning._forget()
    assert all(_tuning.choice()[d]["how"] == "tuned" for d in _tunable())


def test_a_cache_that_cannot_be_written_means_the_default_table(fresh_choice, monkeypatch, tmp_path):
    monkeypatch.setenv("BPFAST_TUNE", "1")
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a_file"))  # no folder can be made under a file
    monkeypatch.setattr(_core, "time_gemm_kernel", None)
    for dtype, entry in _tuning.choice().items():
        assert entry["how"] == "default table" and entry["kernel"] == _tuning.default_kernel(dtype)
    if _tunable():  # bpfast.tune() was asked to time: it does, and says that the cache was not written
        monkeypatch.undo()
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a_file"))
        for dtype in _tunable():
            entry = bpfast.tune()[dtype]
            assert entry["how"] == "tuned" and "could not be written" in entry["note"]


def test_tune_times_again_and_show_config_says_so(fresh_choice, monkeypatch):
    if not _tunable():
        pytest.skip("one kernel per dtype on this ISA: nothing to time")
    monkeypatch.setenv("BPFAST_TUNE", "0")  # bpfast.tune() times even so: it was asked to
    result = bpfast.tune()
    assert all(result[d]["how"] == "tuned" for d in _tunable()), result
    assert fresh_choice.exists(), (result, os.environ.get("XDG_CACHE_HOME"))
    info = bpfast.show_config(mode="dicts")
    assert info["gemm_kernel_choice"]["float32"]["kernel"] == info["gemm_kernel"]["float32"]
    lines = []
    monkeypatch.setattr("builtins.print", lambda text: lines.append(text))
    bpfast.show_config()
    line = next(l for l in lines[0].splitlines() if l.startswith("kernel choice:"))
    assert "tuned" in line and "GF/s" in line


def test_importing_bpfast_times_nothing():
    code = ("import bpfast, bpfast.reference; from bpfast import _tuning; assert _tuning._choice is None; "
            "bpfast.reference.Network([3, 2]); assert _tuning._choice is None; "
            "bpfast.Network([3, 2]); assert _tuning._choice is not None")
    env = {**os.environ, "BPFAST_TUNE": "0"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_timing_stops_at_its_limit_with_each_default_timed(monkeypatch):
    # However slow the machine (a sanitized build takes twice as long per round), the choice
    # stops at TIME_LIMIT; each dtype's default is timed first, and always, so it has a rate.
    if not _tunable():
        pytest.skip("one kernel per dtype on this ISA: nothing to time")
    monkeypatch.setattr(_tuning, "TIME_LIMIT", 0.0)
    timed = _tuning._time_candidates(_tunable())
    for dtype in _tunable():
        names = _core.gemm_kernels(dtype)
        assert timed[dtype]["rates"][names[0]] > 0
        assert all(timed[dtype]["rates"][name] == 0 for name in names[1:])  # nothing timed past the limit
        assert timed[dtype]["kernel"] == names[0]


def test_no_candidate_starts_after_the_limit(monkeypatch):
    # Wall-clock totals vary with the build (a sanitized one is several times slower), so this
    # checks the rule itself: past the defaults, no candidate's timing begins after TIME_LIMIT.
    if not _tunable():
        pytest.skip("one kernel per dtype on this ISA: nothing to time")
    limit = 0.1
    monkeypatch.setattr(_tuning, "TIME_LIMIT", limit)
    clock = [0.0]
    starts = []  # (clock at the call, dtype, kernel)
    real = _core.time_gemm_kernel

    def timed_call(dtype, name, *args):
        starts.append((clock[0], dtype, name))
        clock[0] += 0.01  # each timing costs 10 ms on this clock, whatever it really took
        return real(dtype, name, *args)

    monkeypatch.setattr(_core, "time_gemm_kernel", timed_call)
    monkeypatch.setattr(_tuning, "_clock", lambda: clock[0])
    timed = _tuning._time_candidates(_tunable())
    defaults = {(d, _core.gemm_kernels(d)[0]) for d in _tunable()}
    visits = len(_tuning.SHAPES)
    first_visits = starts[: visits * len(defaults)]
    assert {(d, n) for _, d, n in first_visits} == defaults  # the defaults come first
    later = starts[visits * len(defaults):]
    assert later, "the limit leaves room for more than the defaults"
    # a visit (all SHAPES of one kernel) starts only before the limit, and runs whole
    assert all(t <= limit + 1e-12 for t, _, _ in later[::visits])
    assert len(later) % visits == 0
    assert all(entry["seconds"] == round(clock[0], 3) for entry in timed.values())
