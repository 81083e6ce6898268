"""The FMA peak probe: the most GFLOP/s this machine can do, per instruction set, dtype and thread count.

bpfast._core.fma_probe runs, in each of `threads` tasks at once, independent
chains of vector FMAs held in registers (cpp/kernels/probe/): nothing but
FMAs, so its rate is the ceiling a GEMM or a training step can approach. The
run probes every float ISA the CPU has (avx512, avx2) in each precision bpfast
is built for that computes in its storage type (float32, float64), and every
bfloat16 ISA it has (amx: AMX tiles; avx512_bf16: VDPBF16PS chains) in each
precision that computes in bfloat16 (mixed_bfloat16), on one thread and on the run's thread count
(every core by default), and keeps the best of a few repeats of about TARGET_S each (a peak: noise only slows it
down). The machine table shows the figures; every GEMM, step and thread row
with a GFLOP/s figure also gets its percentage of the probe for the ISA its
competitor runs and the thread count it used.

On a shared machine another process may hold a core through every repeat of
the k-thread probe. A k-thread figure below SCALING_FLOOR times k times the
1-thread figure is therefore taken as disturbed: the machine table says so,
and the percentages use k times the 1-thread figure instead (the larger
yardstick, which can only lower them).

Which ISA a competitor runs: bpfast its active kernels (bpfast.kernels.isa());
numpy, the numpy reference and numpy plain the kernels of numpy's OpenBLAS
core type (AVX-512 for SkylakeX, Cooperlake, SapphireRapids; AVX2 for
Haswell, Zen and the like); a numpy child on another core type that one;
PyTorch what torch.backends.cpu.get_cpu_capability() reports (its ATen
kernels; MKL makes its own choice inside). When that is unknown, the best ISA
probed. bpfast's isa names avx512_bf16 and amx run avx512's float kernels:
its float rows use the avx512 probe.

A row whose precision computes in bfloat16 (bpfast with compute="bfloat16",
PyTorch under autocast) is measured against the bfloat16 probe of the best
bfloat16 ISA present, whoever ran it; where the CPU has none (no AMX, no
AVX512_BF16: bpfast emulates the rounding on float32 FMAs) such a row gets no
percentage, and its peak_of says why.
"""

import time

from benchmarks.harness import timing

ISAS = ("avx512", "avx2")  # the ISAs with a float probe, best first
BF16_ISAS = ("amx", "avx512_bf16")  # the ISAs with a bfloat16 probe, best first
BF16_INSTRUCTION = {"amx": "AMX tiles, TDPBF16PS", "avx512_bf16": "VDPBF16PS"}
FLOAT_ISA_OF = {"avx512_bf16": "avx512", "amx": "avx512"}  # bpfast isa names whose float kernels are avx512's
NO_BF16_PROBE = "no bfloat16 probe: this CPU has neither AMX nor AVX512_BF16"
TARGET_S = {"full": 0.03, "quick": 0.02, "tiny": 0.002}
REPEATS = {"full": 9, "quick": 3, "tiny": 1}
SCALING_FLOOR = 0.9  # a k-thread figure under this share of k times the 1-thread figure counts as disturbed
AVX512_CORE_TYPES = {"skylakex", "cooperlake", "sapphirerapids"}
AVX2_CORE_TYPES = {"haswell", "zen", "broadwell", "skylake", "excavator", "atom"}


def _supported():
    from bpfast import _core
    return {name for name, ok in _core.build_info()["isas"] if ok}


def available_isas():
    """The float-probed ISAs this build has and this CPU supports, best first."""
    supported = _supported()
    return [isa for isa in ISAS if isa in supported]


def available_bf16_isas():
    """The bfloat16-probed ISAs this build has and this CPU supports, best first."""
    supported = _supported()
    return [isa for isa in BF16_ISAS if isa in supported]


def computes_in_bfloat16(dtype):
    """Whether the precision named dtype (a row of bpfast._precision) computes in bfloat16."""
    from bpfast import _precision
    row = _precision.BY_NAME.get(dtype)
    return row is not None and row.compute == "bfloat16"


def measure(isa, dtype, threads, target_s=TARGET_S["full"], repeats=REPEATS["full"], settle=timing.SETTLE_S):
    """GF/s of the probe: the best of ``repeats`` calls of about target_s each."""
    from bpfast import _core
    before = _core.get_num_threads()
    _core.set_num_threads(max(before, threads))  # the pool must run every task at once
    try:
        rounds = 1 << 12
        while True:  # calibrate: rounds so that one call takes about target_s
            start = time.perf_counter()
            _core.fma_probe(isa, dtype, rounds, threads)
            elapsed = time.perf_counter() - start
            if elapsed >= target_s / 4 or rounds >= 1 << 34:
                break
            rounds *= 4
        rounds = max(1, int(rounds * target_s / max(elapsed, 1e-9)))
        best = 0.0
        for _ in range(repeats):
            if settle:
                timing.wait_until_idle(settle)
            start = time.perf_counter()
            flops, _ = _core.fma_probe(isa, dtype, rounds, threads)
            best = max(best, flops / (time.perf_counter() - start) / 1e9)
        return best
    finally:
        _core.set_num_threads(before)


def probe(thread_counts, mode="full", settle=timing.SETTLE_S):
    """{isa: {dtype: {threads: GF/s}}} at these thread counts: every available float ISA in every precision
    of bpfast._precision that computes in its storage type, every available bfloat16 ISA in every precision
    that computes in bfloat16 (each probed in its compute type)."""
    from bpfast import _precision
    counts = sorted(set(thread_counts))
    floats = [p for p in _precision.PRECISIONS if p.compute == p.storage.name]
    bf16 = [p for p in _precision.PRECISIONS if p.compute == "bfloat16"]
    out = {}
    for isas, precisions in ((available_isas(), floats), (available_bf16_isas(), bf16)):
        for isa in isas:
            if precisions:
                out[isa] = {p.name: {k: measure(isa, p.compute, k, TARGET_S[mode], REPEATS[mode], settle)
                                     for k in counts} for p in precisions}
    return out


def yardstick(peaks):
    """(the peaks the percentages use, {(isa, dtype, k)}: the k-thread figures replaced by k times the
    1-thread one because they fell below SCALING_FLOOR of it)."""
    used, replaced = {}, set()
    for isa, by_dtype in peaks.items():
        for dtype, by_threads in by_dtype.items():
            one = by_threads.get(1)
            row = used.setdefault(isa, {}).setdefault(dtype, {})
            for k, gflops in by_threads.items():
                row[k] = gflops
                if one and k > 1 and gflops < SCALING_FLOOR * k * one:
                    row[k] = k * one
                    replaced.add((isa, dtype, k))
    return used, replaced


def machine_lines(peaks):
    """{machine-table key: text}: one line per float ISA (fma_peak_avx512: "float32 ... GF/s on 1 thread, ...;
    float64 ..."), and one line fma_peak_bfloat16 for the bfloat16 ISAs ("VDPBF16PS (avx512_bf16, for
    mixed_bfloat16) ... GF/s on 1 thread, ..."; it says so when there is none). A disturbed k-thread figure
    says what replaces it."""
    _, replaced = yardstick(peaks)
    out, bf16 = {}, []

    def cells(isa, dtype, by_threads):
        found = []
        for k, gflops in sorted(by_threads.items()):
            cell = f"{gflops:.0f} GF/s on {k} thread{'s' if k != 1 else ''}"
            if (isa, dtype, k) in replaced:
                cell += f" (disturbed: % peak uses {k} x {by_threads[1]:.0f})"
            found.append(cell)
        return ", ".join(found)

    for isa in BF16_ISAS:  # best first
        bf16 += [f"{BF16_INSTRUCTION[isa]} ({isa}, for {dtype}) {cells(isa, dtype, by_threads)}"
                 for dtype, by_threads in peaks.get(isa, {}).items()]
    for isa, by_dtype in peaks.items():
        if isa in BF16_ISAS:
            continue
        out[f"fma_peak_{isa}"] = "; ".join(f"{dtype} {cells(isa, dtype, by_threads)}"
                                           for dtype, by_threads in by_dtype.items())
    out["fma_peak_bfloat16"] = "; ".join(bf16) if bf16 else NO_BF16_PROBE
    return out


def peak(peaks, isa, dtype, threads):
    """The probe's GF/s for this ISA, dtype and thread count; None when it was not probed."""
    return peaks.get(isa, {}).get(dtype, {}).get(threads)


def fraction(gflops, peak_gflops):
    """gflops as a share of the peak (0.83 for 83%); None when either is missing."""
    if gflops is None or not peak_gflops:
        return None
    return gflops / peak_gflops


def isa_of_core_type(core_type, isas):
    """The probed ISA whose kernels an OpenBLAS core type runs; the best of ``isas`` when unknown."""
    name = (core_type or "").strip().lower()
    if name in AVX512_CORE_TYPES and "avx512" in isas:
        return "avx512"
    if name in AVX2_CORE_TYPES and "avx2" in isas:
        return "avx2"
    return isas[0] if isas else None


def torch_isa(isas):
    """The ISA PyTorch's CPU kernels use, from torch.backends.cpu.get_cpu_capability()."""
    from benchmarks.harness import optional
    torch = optional.torch()
    capability = ""
    try:
        capability = torch.backends.cpu.get_cpu_capability().lower() if torch is not None else ""
    except Exception:
        pass
    for isa in isas:
        if capability.startswith(isa):
            return isa
    return isas[0] if isas else None


class CompetitorIsa:
    """competitor name -> the ISA whose float probe its GFLOP/s are measured against (annotate takes rows
    that compute in bfloat16 to the best bfloat16 ISA instead)."""

    BPFAST = ("bpfast", "bpfast + input checks", "train_step", "wrong", "bpfast float32")
    NUMPY = ("numpy", "reference", "numpy plain", "sklearn")

    def __init__(self, bpfast_isa, numpy_core_type, isas, torch_isa_name=None):
        self.isas = list(isas)
        bpfast_isa = FLOAT_ISA_OF.get(bpfast_isa, bpfast_isa)
        self.bpfast = bpfast_isa if bpfast_isa in self.isas else None
        self.numpy = isa_of_core_type(numpy_core_type, self.isas)
        self.torch = torch_isa_name if torch_isa_name is not None else (self.isas[0] if self.isas else None)

    def __call__(self, name):
        if name in self.BPFAST:
            return self.bpfast
        if name == "torch":
            return self.torch
        if name.startswith("numpy ") and name not in self.NUMPY:  # "numpy SkylakeX": a child on that core type
            return isa_of_core_type(name.split(" ", 1)[1], self.isas)
        return self.numpy


def best_bf16_isa(peaks):
    """The best bfloat16 ISA that was probed; None when none was."""
    return next((isa for isa in BF16_ISAS if isa in peaks), None)


def annotate(rows, peaks, isa_of, threads):
    """Give every row with GFLOP/s its share of the probe (row["peak"], a fraction) and what it was
    measured against (row["peak_of"]: "avx512 float32, 2 threads"). threads: the run's thread count;
    a row whose params name a thread count (the threads suite) uses that. A row's precision is
    row["precision"] when the suite set one (a float32 competitor in a mixed_bfloat16 run), else its dtype;
    one that computes in bfloat16 is measured against the best bfloat16 ISA's probe (none: no percentage,
    and peak_of says why)."""
    for row in rows:
        if row.get("gflops") is None:
            continue
        dtype = row.get("precision") or row["dtype"]
        k = row.get("params", {}).get("threads", threads)
        if computes_in_bfloat16(dtype):
            isa = best_bf16_isa(peaks)
            if isa is None:
                row["peak"], row["peak_of"] = None, NO_BF16_PROBE
                continue
        else:
            isa = isa_of(row["competitor"])
        top = peak(peaks, isa, dtype, k) if isa is not None else None
        row["peak"] = fraction(row["gflops"], top)
        row["peak_of"] = None if top is None else f"{isa} {dtype}, {k} thread{'s' if k != 1 else ''}"
    return rows
