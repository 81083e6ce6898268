"""The public surface: docstrings everywhere, and show_config against independent readings.

show_config's oracles: the instruction set bpfast._core chose (and BPFAST_ISA
in a child process), Linux's own cache description in /sys read here, and
threadpoolctl's report of numpy's BLAS.
"""

import inspect
import os
import subprocess
import sys

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
    assert list(info["isas"])[-1] == "generic" and info["isas"]["generic"] is True
    for dtype in ("float32", "float64"):
        mr, nr = info["gemm_tile"][dtype]
        assert mr > 0 and nr > 0
    assert all(info["gemm_blocks"][key] > 0 for key in ("mc", "kc", "nc"))


def test_the_small_net_bound_is_the_l2_cache_within_its_limits():
    info = bpfast.show_config(mode="dicts")
    l2 = info["cache_bytes"]["l2"] or 1 << 20  # 1 MiB when the OS does not say
    assert info["small_net_max_weight_bytes"] == min(max(l2, 256 << 10), 4 << 20)
    assert info["small_net_max_batch"] == 256


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
