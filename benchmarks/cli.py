"""The run as a whole: its options, the suites it runs in order, the machine record and the outputs.

benchmarks/run.py (the command) calls main(); its docstring says what a run does.
"""

import argparse
import json
import os
import shlex
import sys
import time

from benchmarks.harness import alone
from benchmarks.harness.competitor import BASELINE
from benchmarks.harness.runner import RETRY_SHARE, Progress, RetryTime, Settings, finish_rows, run_suite

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BPFAST_NUM_THREADS")
INTERRUPTED = 130  # the exit status of a run Ctrl-C ended (128 + SIGINT, as a shell reports it)
SUITE_NAMES = ("steps", "kernels", "fit", "sklearn", "threads", "memory", "distributed")


def make_parser():
    parser = argparse.ArgumentParser(
        description="Time bpfast against the numpy reference, numpy's BLAS, PyTorch and scikit-learn "
                    "(the last two when importable).")
    parser.add_argument("--quick", action="store_true", help="a subset of the cases and fewer repeats (under a minute)")
    parser.add_argument("--only", choices=SUITE_NAMES, help="run one suite (default: all)")
    # a name of bpfast's precision table, checked by check_dtype once the thread variables are set
    parser.add_argument("--dtype", default="float32",
                        help="a precision bpfast is built for (default float32); mixed_bfloat16 (float32 kept, "
                             "bfloat16 products) runs the steps, kernels (GEMM) and fit suites, each case also "
                             "timing bpfast in float32, PyTorch in float32 and PyTorch under bfloat16 autocast")
    parser.add_argument("--match", default=None, metavar="TEXT",
                        help="time only the cases whose name contains TEXT (e.g. 'n=2048' or '784-1024-1024-10')")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per competitor (default 11, 5 with --quick)")
    parser.add_argument("--method", choices=alone.METHODS, default=alone.DEFAULT,
                        help="alone (default): time each competitor in a process of its own, one after another "
                             "(one process per competitor and suite; only PyTorch's imports PyTorch); "
                             "interleaved: time every competitor in this process, their repeats taking turns")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the data")
    parser.add_argument("--threads", type=int, default=None,
                        help="thread count for numpy's BLAS, bpfast and PyTorch (sets OPENBLAS_NUM_THREADS, "
                             "OMP_NUM_THREADS, MKL_NUM_THREADS, BPFAST_NUM_THREADS before the imports); "
                             "default: each library's own default, PyTorch: bpfast's (the logical core count "
                             "unless BPFAST_NUM_THREADS says otherwise). The threads suite sets its own counts")
    parser.add_argument("--retries", type=int, default=None,
                        help="re-time a case up to this many times when it was disturbed: a competitor's slowest "
                             "repeat over 3 times its fastest, or other processes busy (default 2, 1 with "
                             "--quick); re-timing may add up to 30%% of the expected duration")
    parser.add_argument("--max-wait", type=float, default=None, metavar="SECONDS",
                        help="total time the run may spend waiting for other processes to go quiet "
                             "(default 60, 3 with --quick)")
    parser.add_argument("--json", metavar="PATH", help="write every measurement and the machine record here")
    parser.add_argument("--markdown", metavar="PATH",
                        help="write the report for BENCHMARKS.md here (machine, command, explanations, tables)")
    parser.add_argument("--plot", metavar="PATH",
                        help="write a PNG here: speed-up over the numpy reference per case, and GEMM GFLOP/s "
                             "against size (needs matplotlib)")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inject-wrong", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pretend-missing", default="", metavar="NAMES", help=argparse.SUPPRESS)
    return parser


def parse_args(argv):
    parser = make_parser()
    args = parser.parse_args(argv)
    args.mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    defaults = {"full": (11, 2, 60.0), "quick": (5, 1, 3.0), "tiny": (2, 0, 0.0)}[args.mode]
    for name, default in zip(("repeats", "retries", "max_wait"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.retries < 0:
        parser.error("--retries must be at least 0")
    if args.max_wait < 0:
        parser.error("--max-wait must be at least 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    args.pretend_missing = [name for name in args.pretend_missing.split(",") if name]
    return args


def import_bpfast(attempts=10, pause_s=3.0):
    """Import bpfast, retrying for a while: it may be in the middle of a reinstall."""
    for attempt in range(attempts):
        try:
            import bpfast  # noqa: F401
            import bpfast.kernels  # noqa: F401
            return
        except ImportError as error:
            if attempt == attempts - 1:
                raise
            print(f"import bpfast failed ({error}); retrying in {pause_s:.0f} s", file=sys.stderr, flush=True)
            for name in [m for m in sys.modules if m == "bpfast" or m.startswith("bpfast.")]:
                del sys.modules[name]
            time.sleep(pause_s)


def check_dtype(dtype):
    """Exit as argparse does when dtype names no precision of bpfast._precision (imports bpfast)."""
    from bpfast import _precision
    if dtype not in _precision.NAMES:
        make_parser().error(f"argument --dtype: invalid choice: {dtype!r} "
                            f"(choose from {', '.join(map(repr, _precision.NAMES))})")



SUITE_MODULES = {"steps": ["step_suite"], "kernels": ["gemm_suite", "elementwise_suite"], "fit": ["fit_suite"],
                 "sklearn": ["sklearn_suite"], "threads": ["thread_suite"], "memory": ["memory_suite"], "distributed": ["distributed_suite"]}


def suite_modules(only, dtype="float32"):
    """The suite modules of a run, in order; "kernels" is two tables (GEMM, then element-wise). With a mixed
    precision (--dtype mixed_bfloat16) only the suites that take one (their MIXED is true): steps, the
    GEMM table of kernels, fit."""
    import importlib
    from benchmarks.suites import mixed
    modules = [importlib.import_module(f"benchmarks.suites.{module}") for name in SUITE_NAMES
               if only in (None, name) for module in SUITE_MODULES[name]]
    if mixed.is_mixed(dtype):
        modules = [m for m in modules if getattr(m, "MIXED", False)]
    return modules


def suite_names(only, dtype):
    """The suites a run covers: every one (or --only's), only those that take it for a mixed precision."""
    from benchmarks.suites import mixed
    names = [name for name in SUITE_NAMES if only in (None, name)]
    return [name for name in names if name in mixed.SUITES] if mixed.is_mixed(dtype) else names


def check_mixed(only, dtype):
    """Exit as argparse does when --only names a suite that takes no mixed precision."""
    from benchmarks.suites import mixed
    if mixed.is_mixed(dtype) and only is not None and only not in mixed.SUITES:
        make_parser().error(f"argument --dtype: {dtype} runs the suites {', '.join(mixed.SUITES)} only; "
                            f"--only {only} takes float32 or float64")


def interrupted_text(suite, done, rows):
    """What the run says when Ctrl-C ends it in `suite`: where, and what it kept."""
    cases = len({row["case"] for row in rows}) + sum(len({row["case"] for row in r}) for _, r, _ in done)
    return (f"interrupted (Ctrl-C) during the {suite.NAME} suite: the summary and the --json, --markdown and "
            f"--plot files hold the {cases} case{'' if cases == 1 else 's'} that finished")


def main(argv=None):
    """The run. Ctrl-C during a suite ends it with the finished cases reported and written (run);
    anywhere else with one line; never with a traceback. Either way the status is INTERRUPTED."""
    try:
        return run(argv)
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C) outside the cases: nothing more reported or written", file=sys.stderr,
              flush=True)
        return INTERRUPTED


def run(argv=None):
    start = time.perf_counter()
    args = parse_args(argv)
    if args.threads is not None:
        for variable in THREAD_VARIABLES:
            os.environ[variable] = str(args.threads)
    import_bpfast()  # after the thread variables: numpy's BLAS and bpfast's pool read them on import
    check_dtype(args.dtype)
    check_mixed(args.only, args.dtype)
    from benchmarks.harness import optional
    optional.pretend_missing.update(args.pretend_missing)
    from benchmarks.harness import estimate
    names = suite_names(args.only, args.dtype)
    present = estimate.present_competitors()
    expected_s = estimate.estimate(names, args.mode, args.dtype, present, args.repeats, method=args.method)[0]
    retry_s = RETRY_SHARE * expected_s if args.retries else 0.0
    print(estimate.line(names, args.mode, args.dtype, present, args.repeats, args.max_wait, retry_s,
                        method=args.method), flush=True)
    if args.threads is not None:
        import bpfast
        if hasattr(bpfast, "set_num_threads"):
            bpfast.set_num_threads(args.threads)

    from benchmarks.harness import plot, report
    from benchmarks.harness.contention import WaitBudget
    from benchmarks.harness.machine import machine_record
    from benchmarks.workers import fma_probe

    import bpfast
    # PyTorch and the FMA probe run on bpfast's thread count (BPFAST_NUM_THREADS, else every core)
    threads = args.threads or bpfast.get_num_threads() or os.cpu_count() or 1
    settings = Settings(args, threads)
    settings.retry_time = RetryTime(retry_s)
    progress = Progress()
    budget = WaitBudget(args.max_wait)
    if budget.wait(30.0) > 1.5:
        progress.note(f"waited {args.max_wait - budget.left:.0f} s for other processes to go quiet")
    suites = suite_modules(args.only, args.dtype)
    machine = machine_record(torch_threads=threads)
    machine["timing_method"] = f"{args.method}: {alone.DESCRIPTIONS[args.method]}"
    progress.show("probing the FMA peak (fma_probe.py)")
    peaks = fma_probe.probe([1, threads, os.cpu_count() or 1], args.mode, settings.settle)
    progress.done()
    machine.update(fma_probe.machine_lines(peaks))
    yardstick = fma_probe.yardstick(peaks)[0]
    isas = fma_probe.available_isas()
    isa_of = fma_probe.CompetitorIsa(machine["bpfast_isa"], machine["numpy_blas_core_type"].split(",")[0], isas,
                                     fma_probe.torch_isa(isas) if "torch_threads" in machine else None)
    command = "python benchmarks/run.py" + "".join(" " + shlex.quote(a) for a in (argv or sys.argv[1:]))
    busy = machine["cpu_busy_before_start"]
    if isinstance(busy, float) and busy > 0.2:
        print(f"warning: {busy:.0%} of the CPU time was busy just before the start; the timings will be noisy",
              file=sys.stderr, flush=True)
    print(report.text_machine(machine))
    print(f"mode: {args.mode}; method: {args.method} ({alone.DESCRIPTIONS[args.method]}); "
          f"repeats: {args.repeats}, each about "
          f"{settings.target * 1e3:.0f} ms after waiting (up to {settings.settle:.2f} s) for the process's threads to go idle; dtype {args.dtype}; "
          f"seed {args.seed}; up to {args.retries} retries of a disturbed case, {args.max_wait:.0f} s of "
          f"waiting and {settings.retry_time.left:.0f} s of retries in all")
    print(flush=True)

    done, interrupted = [], None
    for suite in suites:
        suite_start = time.perf_counter()
        finished = []  # this suite's rows, case by case, kept when Ctrl-C ends the run
        try:
            rows = run_suite(suite, settings, progress, budget, start, finished)
        except KeyboardInterrupt:
            progress.done()
            rows = finish_rows(suite, finished) if finished else []
            interrupted = interrupted_text(suite, done, rows)
        rows = fma_probe.annotate(rows, yardstick, isa_of, threads)
        if rows or interrupted is None:
            notes = suite.notes()
            print(report.text_table(suite, args.dtype, rows, notes))
            print(f"({suite.TITLE.lower()}: {time.perf_counter() - suite_start:.0f} s"
                  f"{', interrupted' if interrupted else ''})")
            print(flush=True)
            done.append((suite, rows, notes))
        if interrupted is not None:
            print(interrupted, file=sys.stderr, flush=True)
            machine["interrupted"] = interrupted
            break

    child = getattr(sys.modules.get("benchmarks.suites.gemm_suite"), "_child", None)
    if child is not None:  # the core types numpy actually ran, as its OpenBLAS reported them
        machine["numpy_core_types_used"] = (f"{machine['numpy_blas_core_type']} (numpy), {child.reported} "
                                            f"(numpy {child.core_type}, the child process)")
    print(report.text_summary(done, args.dtype))
    print(flush=True)
    elapsed = time.perf_counter() - start
    foreign = [r["foreign_cores"] for _, rows, _ in done for r in rows if r["foreign_cores"] is not None]
    machine["foreign_cores_max"] = max(foreign) if foreign else "unknown"  # over the kept timings
    disturbed = sorted({(r["table"], r["case"]) for _, rows, _ in done for r in rows if r["disturbed"]})
    retried = sorted({(r["table"], r["case"]) for _, rows, _ in done for r in rows if r.get("attempts", 0) > 1})
    machine["cases_disturbed"] = len(disturbed)
    machine["cases_retried"] = len(retried)
    print(f"cases retried: {len(retried)}; cases still disturbed when reported: {len(disturbed)}; most cores "
          f"other processes used while a case was timed: {machine['foreign_cores_max']}; time spent waiting "
          f"for quiet: {args.max_wait - budget.left:.0f} s")
    print(f"total time: {elapsed:.0f} s (expected about {estimate.fmt_seconds(expected_s)})"
          + ("; interrupted: the summary and the files written hold the finished cases only" if interrupted else ""))
    if args.json:
        document = {"command": command, "options": vars(args), "machine": machine, "elapsed_s": elapsed,
                    "expected_s": expected_s, "fma_probe": peaks,
                    "suites": [{"name": s.NAME, "table": s.TABLE, "title": s.TITLE, "note": s.NOTE,
                                "explanation": s.EXPLANATION, "notes": notes, "dtype": args.dtype,
                                "method": getattr(s, "METHOD", args.method), "results": rows}
                               for s, rows, notes in done]}
        with open(args.json, "w") as f:
            json.dump(document, f, indent=1)
            f.write("\n")
    if args.markdown:
        text = report.markdown_document(command, machine, args.dtype, done, elapsed)
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.plot and any(rows for _, rows, _ in done):
        print(plot.write(args.plot, done, args.dtype, machine))
    elif args.plot:
        print(f"no case finished: {args.plot} not written")
    if interrupted is not None:
        return INTERRUPTED
    wrong = [r for _, rows, _ in done for r in rows if r["status"] in ("WRONG", "ERROR")]
    return 1 if any(r["competitor"] == BASELINE for r in wrong) else 0
