"""numpy's BLAS on its best kernel for the CPU: the "numpy <core type>" GEMM competitor.

OpenBLAS picks its kernels (its "core type") once, when it is loaded. Some
builds pick AVX2 kernels (Haswell, Zen) on CPUs that have AVX-512, for
instance a Zen 4 or Zen 5 that the build does not know: numpy then runs at a
fraction of what the same library can do, and a comparison with it flatters
bpfast. OPENBLAS_CORETYPE, set before the library loads, overrides the choice.

So, when the CPU has AVX-512 and threadpoolctl reports an OpenBLAS core type
below it, the kernels suite runs numpy again in a child process started with
OPENBLAS_CORETYPE=SkylakeX (numpy_child.py), checks its products against
bpfast's like any competitor's, and times it beside numpy; the faster of the
two is numpy on its best BLAS kernel. Where numpy already runs an AVX-512
core type, nothing more is needed.
"""

from benchmarks.harness import optional

TARGET = "SkylakeX"  # the AVX-512 core type asked for: every AVX-512 CPU that OpenBLAS knows runs its kernels
AVX512_CORE_TYPES = {"skylakex", "cooperlake", "sapphirerapids"}
# The AVX-512 subsets SkylakeX's kernels use.
AVX512_FLAGS = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}


def cpu_flags():
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_core_types(info):
    """The core types of numpy's OpenBLAS in a threadpoolctl.threadpool_info() list (each once).

    numpy's is the library under numpy's own directory (numpy.libs in a
    wheel); SciPy, loaded by scikit-learn, brings another. Where no library
    is numpy's by its path, every OpenBLAS library counts.
    """
    openblas = [entry for entry in info if entry.get("internal_api") == "openblas"]
    numpy_own = [entry for entry in openblas if "numpy" in str(entry.get("filepath", "")).lower()]
    types = [entry.get("architecture") or "unknown" for entry in (numpy_own or openblas)]
    return sorted(set(types), key=types.index)


def better_core_type(flags, info):
    """The OpenBLAS core type to try numpy on, or None when there is no better one to try.

    flags: the CPU's feature flags; info: threadpoolctl.threadpool_info(). A
    better one exists when the CPU has AVX-512 (the subsets SkylakeX needs) and
    no OpenBLAS library loaded reports an AVX-512 core type already.
    """
    types = openblas_core_types(info)
    if not types or not AVX512_FLAGS <= set(flags):
        return None
    if any(t.lower() in AVX512_CORE_TYPES for t in types):
        return None
    return TARGET


def decide():
    """(core type to try or None, why) on this machine; None without threadpoolctl."""
    threadpoolctl = optional.load("threadpoolctl")
    if threadpoolctl is None:
        return None, "threadpoolctl is not installed: numpy's core type is unknown"
    info = threadpoolctl.threadpool_info()
    types = openblas_core_types(info)
    target = better_core_type(cpu_flags(), info)
    if target is not None:
        return target, (f"the CPU has AVX-512 but numpy's OpenBLAS runs {', '.join(types)}: numpy is also "
                        f"timed in a child process with OPENBLAS_CORETYPE={target}")
    if not types:
        return None, "numpy's BLAS is not OpenBLAS"
    if not AVX512_FLAGS <= cpu_flags():
        return None, f"no AVX-512 on this CPU; numpy's OpenBLAS runs {', '.join(types)}"
    return None, f"numpy's OpenBLAS already runs an AVX-512 core type ({', '.join(types)})"
