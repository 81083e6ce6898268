"""The public surface: docstrings everywhere, and show_config against independent readings.

show_config's oracles: the instruction set bpfast._core chose (and BPFAST_ISA
in a child process), Linux's own cache description in /sys read here, and
threadpoolctl's report of numpy's BLAS.
"""

import contextlib
import inspect
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import bpfast
from bpfast import _core, history, kernels, optim, reference
from bpfast import sklearn as bpfast_sklearn

PUBLIC_CLASSES = [bpfast.Network, bpfast.Layer, bpfast.History, optim.SGD, optim.Adam, optim.AdamW, optim.Constant,
                  optim.StepDecay, optim.InverseScaling, reference.Engine, reference.Network,
                  bpfast_sklearn.MLPClassifier, bpfast_sklearn.MLPRegressor]


def public_members(owner):
    for name, member in vars(owner).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            yield name, member.fget
        elif isinstance(member, (classmethod, staticmethod)):
            yield name, member.__func__
        elif inspect.isfunction(member):
            yield name, member


def test_every_public_class_method_and_function_has_a_docstring():
    missing = [owner.__name__ for owner in PUBLIC_CLASSES if not inspect.getdoc(owner)]
    missing += [f"{owner.__name__}.{name}" for owner in PUBLIC_CLASSES for name, f in public_members(owner)
                if not inspect.getdoc(f)]
    for module in (bpfast, kernels, reference, optim, history):
        for name in module.__all__:
            value = getattr(module, name)
            if callable(value) and not inspect.getdoc(value):
                missing.append(f"{module.__name__}.{name}")
    assert missing == []


def test_show_config_prints_what_a_bug_report_needs(capsys):
    bpfast.show_config()
    out = capsys.readouterr().out
    assert f"bpfast {bpfast.__version__}" in out
    assert f"isa:          {_core.isa} (the best this CPU supports)" in out or "forced by BPFAST_ISA" in out
    for line_start in ("platform:", "cpu:", "build:", "isas built:", "threads:", "caches:", "gemm:", "small nets:", "numpy BLAS:"):
        assert any(line.startswith(line_start) for line in out.splitlines()), line_start
    assert f"threads:      {bpfast.get_num_threads()}" in out


def test_config_names_the_chosen_and_the_built_instruction_sets():
    info = bpfast.show_config(mode="dicts")
    assert info["isa"] == _core.isa
    assert info["isas"][_core.isa] is True
    names = list(info["isas"])
    assert info["isas"]["generic"] is True  # the last automatic row, then those BPFAST_ISA alone picks
    assert names[names.index("generic") + 1:] == [n for n in names if n.startswith("amx_model")]
    for dtype in ("float32", "float64"):
        mr, nr = info["gemm_tile"][dtype]
        assert mr > 0 and nr > 0
    for dtype in ("float32", "float64"):
        mr, nr = info["gemm_tile"][dtype]
        blocks = info["gemm_blocks"][dtype]
        assert blocks["mc"] % mr == 0 and blocks["nc"] % nr == 0 and blocks["kc"] > 0


def blocking_rule(l2, l3, l3_cpus, mr, nr, value_bytes):
    """The GEMM blocking rule of kernels/gemm/blocking.h, written out again: kc from L2 (the A
    block of 72 rows and two B panels in half of it, a multiple of 64 in [64, 512]), mc from L2
    (the A block in half of it, at most 72 rows), nc from this CPU's share of L3 (the B block in
    half of it, in [4 nr, 8192])."""
    l2 = l2 or 512 << 10
    l3_share = l3 // max(1, l3_cpus) if l3 else 2 << 20
    kc = min(max((l2 // 2) // ((72 + 2 * nr) * value_bytes) // 64 * 64, 64), 512)
    mc = min(max((l2 // 2) // (kc * value_bytes) // mr * mr, mr), 72 // mr * mr)
    nc = min(max((l3_share // 2) // (kc * value_bytes) // nr * nr, 4 * nr), 8192 // nr * nr)
    return mc, kc, nc


CACHES = [(1 << 20, 32 << 20, 2), (2 << 20, 105 << 20, 2), (256 << 10, 8 << 20, 8), (512 << 10, 16 << 20, 0),
          (0, 0, 0), (64 << 10, 0, 0), (32 << 20, 1 << 30, 1)]
TILES = [(8, 32, 4), (8, 16, 8), (6, 16, 4), (6, 8, 8), (4, 8, 4), (4, 8, 8)]


@pytest.mark.parametrize("l2, l3, l3_cpus", CACHES)
@pytest.mark.parametrize("mr, nr, value_bytes", TILES)
def test_the_gemm_blocks_follow_the_caches(l2, l3, l3_cpus, mr, nr, value_bytes):
    got = _core.gemm_blocking_for(32 << 10, l2, l3, l3_cpus, mr, nr, value_bytes)
    assert got == blocking_rule(l2, l3, l3_cpus, mr, nr, value_bytes)
    mc, kc, nc = got
    if l2 >= 256 << 10:  # the blocks fit where the rule puts them
        assert (mc + 2 * nr) * kc * value_bytes <= l2 // 2 or kc == 64


@pytest.mark.skipif(bool(os.environ.get("BPFAST_GEMM_BLOCKS")), reason="BPFAST_GEMM_BLOCKS forces the blocks")
def test_this_cpus_gemm_blocks_are_the_rule_for_its_caches():
    info = bpfast.show_config(mode="dicts")
    caches = info["cache_bytes"]
    for dtype, value_bytes in (("float32", 4), ("float64", 8)):
        mr, nr = info["gemm_tile"][dtype]
        expected = blocking_rule(caches["l2"], caches["l3"], caches["l3_cpus"], mr, nr, value_bytes)
        assert tuple(info["gemm_blocks"][dtype][k] for k in ("mc", "kc", "nc")) == expected


def _with_blocks(blocks, code):
    env = {**os.environ, "BPFAST_GEMM_BLOCKS": blocks}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_forced_gemm_blocks_are_used_rounded_to_the_tile_and_reported():
    code = ("import json, bpfast; i = bpfast.show_config(mode='dicts'); "
            "print(json.dumps([i['gemm_tile'], i['gemm_blocks'], i['forced_gemm_blocks']])); bpfast.show_config()")
    done = _with_blocks("20,100,70", code)
    assert done.returncode == 0, done.stderr
    tiles, blocks, forced = json.loads(done.stdout.splitlines()[0])
    assert forced == "20,100,70"
    for dtype in ("float32", "float64"):
        mr, nr = tiles[dtype]
        assert blocks[dtype] == {"mc": -(-20 // mr) * mr, "kc": 100, "nc": -(-70 // nr) * nr}
    assert "(forced by BPFAST_GEMM_BLOCKS=20,100,70)" in done.stdout


@pytest.mark.parametrize("args, match", [
    ((-1, 1 << 20, 0, 0, 8, 32, 4), "cache sizes"), ((0, 0, 0, -2, 8, 32, 4), "l3_cpus"),
    ((0, 0, 0, 0, 0, 32, 4), "mr must be"), ((0, 0, 0, 0, 80, 32, 4), "mr must be"),
    ((0, 0, 0, 0, 8, 0, 4), "nr"), ((0, 0, 0, 0, 8, 32, 0), "value_bytes"), ((0, 0, 0, 0, 8, 32, 2), "value_bytes")])
def test_the_blocking_rule_refuses_impossible_tiles_and_caches(args, match):
    with pytest.raises(ValueError, match=match):
        _core.gemm_blocking_for(*args)


@pytest.mark.parametrize("text", ["1,2", "0,256,4096", "a,b,c", "72,256,4096,1", "72;256;4096", "-8,256,4096"])
def test_bad_forced_gemm_blocks_fail_at_import_naming_the_variable(text):
    done = _with_blocks(text, "import bpfast")
    assert done.returncode != 0
    assert "BPFAST_GEMM_BLOCKS must be three positive integers" in done.stderr and repr(text) in done.stderr


def test_the_small_net_bound_is_the_l2_cache_within_its_limits():
    info = bpfast.show_config(mode="dicts")
    l2 = info["cache_bytes"]["l2"] or 1 << 20  # 1 MiB when the OS does not say
    assert info["small_net_max_weight_bytes"] == min(max(l2, 256 << 10), 4 << 20)
    assert info["small_net_max_batch"] == 256


@pytest.mark.filterwarnings("ignore:compute='bfloat16' runs on:RuntimeWarning")
def test_show_config_gives_mixed_precisions_small_net_bound_by_its_bfloat16_kernel():
    # the bound of SmallNetBackend::bf16_forward_flops_limit, from the bfloat16 GEMM kernel's name
    info = bpfast.show_config(mode="dicts")
    kernel, bound = info["gemm_kernel"]["bfloat16"], info["small_net_bf16_max_forward_flops"]
    expected = 2.0 ** 20 if kernel.startswith("amx") else 2.0 ** 22 if kernel.startswith("avx512_bf16_") else np.inf
    assert bound == expected
    net = bpfast.Network([100, 100, 10], compute="bfloat16")
    if bpfast._core.f32.small_net.lanes() and np.isfinite(bound):  # the bound itself, on both sides
        largest = int(bound // (2 * (100 * 100 + 100 * 10)))  # 190 rows beside VDPBF16PS, 47 beside AMX
        assert largest < 256 and net._engine.uses_small_net(largest) and not net._engine.uses_small_net(largest + 1)
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        bpfast.show_config()
    line = next(l for l in text.getvalue().splitlines() if l.startswith("small nets:"))
    assert ("every one of them" in line) == np.isinf(bound)
    assert np.isinf(bound) or f"2^{int(np.log2(bound))} flops" in line


def test_the_build_has_no_native_or_fast_math_flags():
    flags = bpfast.show_config(mode="dicts")["cxx_flags"]
    assert "-march=native" not in flags and "-ffast-math" not in flags and "-Ofast" not in flags


def test_a_forced_isa_is_reported_as_forced():
    code = "import bpfast; i = bpfast.show_config(mode='dicts'); print(i['isa'], i['forced_isa'])"
    env = {**os.environ, "BPFAST_ISA": "generic"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["generic", "generic"]


def sysfs_caches():
    """Cache sizes in bytes by (level, type), read from Linux's description of CPU 0."""
    root = "/sys/devices/system/cpu/cpu0/cache"
    sizes = {}
    for entry in sorted(os.listdir(root)):
        if not entry.startswith("index"):
            continue
        read = lambda name: open(os.path.join(root, entry, name)).read().strip()
        size = read("size")
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1], 1)
        sizes[(int(read("level")), read("type"))] = int(size.rstrip("KMG")) * scale
    return sizes


@pytest.mark.skipif(not os.path.isdir("/sys/devices/system/cpu/cpu0/cache"), reason="no Linux cache description")
def test_cache_sizes_are_the_ones_linux_describes():
    expected = sysfs_caches()
    caches = bpfast.show_config(mode="dicts")["cache_bytes"]
    assert caches["l1d"] == expected[(1, "Data")]
    assert caches["l2"] == expected.get((2, "Unified"), expected.get((2, "Data")))
    if (3, "Unified") in expected:
        assert caches["l3"] == expected[(3, "Unified")]


def test_numpy_blas_is_reported_with_its_core_type():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [pool for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
    report = bpfast.show_config(mode="dicts")["numpy_blas"]
    for pool in blas:
        assert pool["internal_api"] in report
        if pool.get("architecture"):
            assert f"core type {pool['architecture']}" in report


def test_show_config_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match=r"\bmode\b"):
        bpfast.show_config(mode="json")


@pytest.mark.parametrize("text", ["8192,8192,64", "72,512,1048576", "1048576,1048576,1048576"])
def test_forced_gemm_blocks_too_large_to_pack_fail_at_import(text):
    done = _with_blocks(text, "import bpfast")
    assert done.returncode != 0
    assert "BPFAST_GEMM_BLOCKS asks for blocks too large to pack" in done.stderr and repr(text) in done.stderr


def test_the_blocks_reported_are_the_ones_read_at_import():
    code = ("import json, os, bpfast; os.environ['BPFAST_GEMM_BLOCKS'] = '8,48,64'; "
            "i = bpfast.show_config(mode='dicts'); print(json.dumps([i['forced_gemm_blocks'], i['gemm_blocks']]))")
    env = {k: v for k, v in os.environ.items() if k != "BPFAST_GEMM_BLOCKS"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    forced, blocks = json.loads(done.stdout)
    assert forced is None and blocks["float32"]["kc"] != 48


def test_the_precision_table_matches_the_core_and_drives_the_network():
    import numpy as np
    from bpfast import _precision
    assert _precision.NAMES == tuple(_core.precisions) == ("float32", "float64", "mixed_bfloat16")
    for p in _precision.PRECISIONS:
        assert p.core is getattr(_core, {"float32": "f32", "float64": "f64", "mixed_bfloat16": "f32_bf16"}[p.name])
        assert p.core.storage == p.storage and p.core.computes_in_storage == (p.compute == p.storage.name)
        net = bpfast.Network([3, 2], dtype=p.storage, compute=p.compute)
        assert isinstance(net._engine, p.core.Network)
        assert all(a.dtype == p.storage for a in net._engine.parameters())
        assert net.compute == p.compute and net.dtype == p.storage
        assert bpfast.kernels.matmul(np.ones((2, 3), p.storage), np.ones((3, 1), p.storage)).dtype == p.storage
        assert 0 < p.rtol <= p.trajectory_rtol < 1
    assert bpfast.show_config(mode="dicts")["precisions"] == {
        "float32": {"storage": "float32", "compute": "float32"}, "float64": {"storage": "float64", "compute": "float64"},
        "mixed_bfloat16": {"storage": "float32", "compute": "bfloat16"}}
    with pytest.raises(ValueError, match="dtype must be float32 or float64; got 'float16'"):
        bpfast.Network([3, 2], dtype="float16")
