"""bpfast.show_config(): what a bug report needs to know about this install."""

import math
import os
import platform
import sys

import numpy as np

from . import _core, _cpu, _precision, _tuning


def _numpy_blas():
    """numpy's BLAS libraries as threadpoolctl reports them (OpenBLAS with its core type), or a
    note saying how to see them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (pip install threadpoolctl to see numpy's BLAS and its core type)"
    found = [f"{pool.get('internal_api')} {pool.get('version')}"
             + (f", core type {pool['architecture']}" if pool.get("architecture") else "")
             + f", {pool.get('num_threads')} threads"
             for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return "; ".join(found) or "none loaded"


def config():
    """The configuration show_config prints, as a dict."""
    from . import __version__
    _tuning.ensure_chosen()  # (before build_info, which names the kernel in use)
    build = _core.build_info()
    return {
        "bpfast": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": _cpu.model_name(),
        "cores": os.cpu_count(),
        "compiler": build["compiler"],
        "build_type": build["build_type"],
        "cxx_flags": build["cxx_flags"],
        "isa": build["isa"],
        "isas": {name: supported for name, supported in build["isas"]},
        "gemm_kernel": build["gemm_kernel"],
        "gemm_kernel_choice": _tuning.choice(),
        "gemm_kernel_candidates": {dtype: _core.gemm_kernels(dtype) for dtype in _tuning.DTYPES},
        "amx": build["amx"],
        "forced_isa": os.environ.get("BPFAST_ISA") or None,
        "threads": _core.get_num_threads(),
        "adaptive_threads": _core.get_adaptive_threads(),
        "cache_bytes": build["cache_bytes"],
        "gemm_blocks": build["gemm_blocks"],
        "forced_gemm_blocks": build["gemm_blocks_forced"] or None,
        "gemm_tile": build["gemm_tile"],
        "precisions": {p.name: {"storage": p.storage.name, "compute": p.compute} for p in _precision.PRECISIONS},
        "small_net_max_weight_bytes": build["small_net_max_weight_bytes"],
        "small_net_max_batch": build["small_net_max_batch"],
        "small_net_bf16_max_forward_flops": build["small_net_bf16_max_forward_flops"],
        "numpy_blas": _numpy_blas(),
    }


def _size(n):
    if not n:
        return "unknown"
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10} KiB"


def _bf16_small_net_text(flops):
    """Where compute="bfloat16" takes the small-network path (rounded operands on float32 FMAs)."""
    if math.isinf(flops):
        return "every one of them (the bfloat16 products are emulated here either way)"
    return (f"those whose forward pass is at most 2^{int(math.log2(flops))} flops "
            "(past that the bfloat16 instructions run)")


def _choice_line(dtype, choice):
    """How dtype's GEMM kernel was chosen, in words."""
    how = choice["how"] + (f", {choice['gflops']:.1f} GF/s" if choice.get("gflops") else "")
    if choice["how"] == "forced":
        how += " by BPFAST_KERNEL"
    if choice.get("note"):
        how += f"; {choice['note']}"
    return f"{dtype} {choice['kernel']} ({how})"


def show_config(mode="stdout"):
    """Print the version, build (compiler, flags), the instruction set chosen and those
    available, each dtype's GEMM kernel with how it was chosen and its rate (bpfast.tune),
    threads, cache sizes, GEMM blocking and the small-network path's bounds, and numpy's BLAS
    (with OpenBLAS's core type when threadpoolctl is installed); mode="dicts" returns them as a
    dict instead."""
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"mode must be 'stdout' or 'dicts'; got {mode!r}")
    info = config()  # (makes the GEMM kernel's choice if no product has yet: timing takes under a second)
    if mode == "dicts":
        return info
    isas = ", ".join(f"{name} ({'yes' if ok else 'not on this CPU'})" for name, ok in info["isas"].items())
    caches, blocks = info["cache_bytes"], info["gemm_blocks"]
    tiles = ", ".join(f"{dtype} {mr}x{nr}" for dtype, (mr, nr) in info["gemm_tile"].items())
    lines = [
        f"bpfast {info['bpfast']} (Python {info['python']}, numpy {info['numpy']})",
        f"platform:     {info['platform']}",
        f"cpu:          {info['cpu']}, {info['cores']} logical cores",
        f"build:        {info['compiler']}, {info['build_type']}, flags: {info['cxx_flags'] or '(none)'}",
        f"isa:          {info['isa']}" + (f" (forced by BPFAST_ISA={info['forced_isa']})" if info["forced_isa"]
                                          else " (the best this CPU supports)"),
        f"isas built:   {isas}",
        "kernels:      " + ", ".join(f"{dtype} {name}" for dtype, name in info["gemm_kernel"].items())
        + ("" if info["gemm_kernel"]["bfloat16"].startswith(("amx", "avx512_bf16_")) else
           " (bfloat16 products on float32 FMAs: no AMX or AVX512_BF16 here)"),
        "kernel choice: " + "; ".join(_choice_line(dtype, c) for dtype, c in info["gemm_kernel_choice"].items()),
        f"amx:          {info['amx']}",
        f"threads:      {info['threads']}" + ("; training steps time one thread against them every 256 steps "
                                                 "and take the faster" if info["adaptive_threads"] else
                                                 "; adaptive thread count off"),
        f"caches:       L1d {_size(caches['l1d'])}, L2 {_size(caches['l2'])}, L3 {_size(caches['l3'])}"
        + (f" shared by {caches['l3_cpus']} CPUs" if caches["l3_cpus"] else ""),
        f"gemm:         blocks " + "; ".join(f"{dtype} MC={b['mc']} KC={b['kc']} NC={b['nc']}" for dtype, b in blocks.items())
        + (f" (forced by BPFAST_GEMM_BLOCKS={info['forced_gemm_blocks']})" if info["forced_gemm_blocks"]
           else " (from the caches)") + f"; micro-tile {tiles}",
        "precisions:   " + ", ".join(f"{name} (products in {p['compute']})" for name, p in info["precisions"].items()),
        f"small nets:   weights up to {_size(info['small_net_max_weight_bytes'])} per layer (from L2), "
        f"batches up to {info['small_net_max_batch']}; in mixed precision "
        + _bf16_small_net_text(info["small_net_bf16_max_forward_flops"]),
        f"numpy BLAS:   {info['numpy_blas']}",
    ]
    print("\n".join(lines))
