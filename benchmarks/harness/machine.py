"""The machine record: what ran the benchmarks, printed at the top and stored in the JSON."""

import ctypes
import datetime
import os
import platform
import subprocess

from benchmarks.workers import blas_kernel
from benchmarks.harness import optional
from benchmarks.harness.contention import cpu_busy

THREAD_VARIABLES = ("BPFAST_NUM_THREADS", "BPFAST_ISA", "OPENBLAS_NUM_THREADS",
                    "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_family_model():
    """"family F, model M" from /proc/cpuinfo (the model name alone may not tell a Zen 4 from a Zen 5)."""
    found = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip().lower()
                if key in ("cpu family", "model") and key not in found:
                    found[key] = line.split(":", 1)[1].strip()
                if not line.strip():
                    break
    except OSError:
        pass
    return f"family {found['cpu family']}, model {found['model']}" if len(found) == 2 else "unknown"


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _numpy_blas():
    """(description, thread count or None) of the BLAS numpy is linked with."""
    import numpy as np
    name = "unknown"
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:
        pass
    threads = None
    # OpenBLAS reports its own thread count; look for it among the loaded libraries.
    try:
        with open("/proc/self/maps") as f:
            libraries = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
        for path in sorted(libraries):
            library = ctypes.CDLL(path)
            for symbol in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                           "openblas_get_num_threads64_", "openblas_get_num_threads"):
                if hasattr(library, symbol):
                    threads = int(getattr(library, symbol)())
                    break
            if threads is not None:
                break
    except Exception:
        pass
    return name, threads


def _blas_core_type():
    """OpenBLAS's kernel family (its core type: Haswell, SkylakeX, Zen, ...) as threadpoolctl reports it.

    On an AVX-512 CPU a Haswell or Zen core type means numpy runs AVX2 kernels: a handicapped anchor.
    """
    try:
        import threadpoolctl
        types = sorted({info.get("architecture") for info in threadpoolctl.threadpool_info()
                        if info.get("internal_api") == "openblas" and info.get("architecture")})
        return ", ".join(types) if types else "not OpenBLAS"
    except ImportError:
        return "unknown (threadpoolctl is not installed)"
    except Exception:
        return "unknown"


def _torch_capability(torch):
    """What PyTorch's CPU kernels run (AVX512, AVX2, ...) and whether it has MKL and oneDNN."""
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:
        capability = "unknown"
    mkl = "MKL" if torch.backends.mkl.is_available() else "no MKL"
    onednn = "oneDNN" if torch.backends.mkldnn.is_available() else "no oneDNN"
    return f"{capability} ({mkl}, {onednn})"


def _bpfast_threads(bpfast):
    for module in (bpfast, bpfast.kernels, getattr(bpfast.kernels, "_core", None)):
        for name in ("get_num_threads", "num_threads"):
            value = getattr(module, name, None) if module is not None else None
            if callable(value):
                try:
                    return int(value())
                except Exception:
                    pass
            elif isinstance(value, int):
                return value
    return None


def _gemm_kernels(bpfast):
    """Each dtype's GEMM micro-kernel and how bpfast chose it; the choice (which may time the
    kernels, under a second) is made here, before any case is timed."""
    try:
        from bpfast import _tuning
        return "; ".join(f"{dtype} {c['kernel']} ({c['how']})" for dtype, c in _tuning.choice().items())
    except Exception:
        return "not reported by bpfast"


def _core_built(bpfast):
    """When the installed compiled core was written (it may predate the checkout's HEAD)."""
    try:
        path = bpfast.kernels._core.__file__
        stamp = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
        return stamp.strftime("%Y-%m-%d %H:%M UTC")
    except Exception:
        return "unknown"


def _git_commit(directory):
    try:
        head = subprocess.run(["git", "log", "-1", "--format=%h, committed %cd",
                               "--date=format-local:%Y-%m-%d %H:%M UTC"], cwd=directory, capture_output=True,
                              text=True, timeout=10, env={**os.environ, "TZ": "UTC"}).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{head}{' (with uncommitted changes)' if dirty else ''}" if head else "unknown"
    except Exception:
        return "unknown"


def machine_record(torch_threads):
    """An ordered dict of plain values (strings and numbers)."""
    import numpy as np
    import bpfast
    torch = optional.torch()
    torch_version = optional.version("torch")
    busy = cpu_busy()
    blas, blas_threads = _numpy_blas()
    bpfast_threads = _bpfast_threads(bpfast)
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpu_family_model": cpu_family_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "os": platform.platform(),
        "cpu_busy_before_start": "unknown" if busy is None else round(busy, 2),  # fraction of all cores
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "bpfast": bpfast.__version__,
        "bpfast_core_built": _core_built(bpfast),
        "checkout_head": _git_commit(repository),
        "bpfast_isa": bpfast.kernels.isa(),
        "bpfast_gemm_kernels": _gemm_kernels(bpfast),
        "bpfast_threads": bpfast_threads if bpfast_threads is not None else "not reported by bpfast",
        "numpy": np.__version__,
        "numpy_blas": blas,
        "numpy_blas_threads": blas_threads if blas_threads is not None else "unknown",
        "numpy_blas_core_type": _blas_core_type(),
        "numpy_best_kernel": blas_kernel.decide()[1],
        "torch": torch_version,
    }
    if torch is not None:
        record["torch_threads"] = torch_threads
        record["torch_cpu_capability"] = _torch_capability(torch)
    record["scikit_learn"] = optional.version("sklearn")
    record["threadpoolctl"] = optional.version("threadpoolctl")
    record["thread_env"] = ", ".join(f"{k}={os.environ[k]}" for k in THREAD_VARIABLES if k in os.environ) or "none set"
    return record
