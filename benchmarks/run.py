#!/usr/bin/env python3
"""bpfast benchmark suite: bpfast against numpy, PyTorch and scikit-learn.

    python benchmarks/run.py                      # every suite, float32 (it says how long first)
    python benchmarks/run.py --quick              # a subset, under a minute
    python benchmarks/run.py --only fit --dtype float64 --json out.json --markdown out.md --plot out.png

Suites (--only NAME runs one):
  steps    one training step (train_step) of several nets
  kernels  GEMM (matmul, weight and input gradient) against numpy's `@`, and the
           activation, softmax and loss kernels against bpfast.reference
  fit      one training epoch (fit) on the digits, against a Python loop over
           train_step, the reference, scikit-learn and PyTorch
  sklearn  whole fits of bpfast.sklearn's MLPClassifier and MLPRegressor against
           scikit-learn's, with their test scores (needs scikit-learn)
  threads  thread scaling from 1 thread to every core
  memory   peak resident memory of a fit, in a fresh process per case
  distributed  fit over MPI ranks against one process with as many threads
           (needs mpi4py and mpiexec: the mpi extra)

For each timed case every competitor's result is first checked against
bpfast's (a mismatch marks the competitor WRONG and keeps it out of the
ratios); then the competitors are warmed up and timed in interleaved repeats
(see timing.py). Reported per competitor: median, min and max time per call,
the ratio competitor median / bpfast median (>1 means bpfast is faster) and
GFLOP/s where a FLOP count is defined. Needs only the standard library and
numpy; PyTorch, scikit-learn, threadpoolctl, matplotlib and tqdm join in when
they can be imported, and the output says what was left out without them.

The run first prints how long it expects to take (estimate.py, from durations
measured on a 2-core machine), then, on stderr, a line per finished case: its
name, how long it took, the ratios in brief, and whether it was retried. A
case is disturbed when other processes kept more than a quarter of a core
busy while it was timed, or when some competitor's slowest repeat took more
than 3 times its fastest; a disturbed case is timed again (--retries), and
the cleanest attempt is reported, with a line under its table saying so.

Testing options, hidden from --help: --tiny (a few tiny cases, 2 repeats, no
settle pause, no waiting: checks the machinery in seconds, not the speed),
--inject-wrong (adds a competitor "wrong" to every case that returns bpfast's
result perturbed and is timed with bpfast's callable: it must come out WRONG
with no ratio) and --pretend-missing NAMES (treat these optional packages,
comma-separated, as not installed).
"""

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import time

from competitor import BASELINE, status_of

HERE = os.path.dirname(os.path.abspath(__file__))
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BPFAST_NUM_THREADS")
SUITE_NAMES = ("steps", "kernels", "fit", "sklearn", "threads", "memory", "distributed")
WRONG = "wrong"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Time bpfast against the numpy reference, numpy's BLAS, PyTorch and scikit-learn "
                    "(the last two when importable).")
    parser.add_argument("--quick", action="store_true", help="a subset of the cases and fewer repeats (under a minute)")
    parser.add_argument("--only", choices=SUITE_NAMES, help="run one suite (default: all)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved timed repeats per competitor (default 11, 5 with --quick)")
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


class Progress:
    """What the run is doing, on stderr.

    One line per step of a case (rewritten in place on a terminal) and one
    line that stays per finished case. On a terminal with tqdm installed a
    bar per suite counts the cases and guesses the time left.
    """

    def __init__(self):
        import optional
        self.tty = sys.stderr.isatty()
        self.tqdm = optional.load("tqdm") if self.tty else None
        self.bar = None

    def start(self, name, cases):
        """A suite of ``cases`` cases begins."""
        self.done()
        if self.tqdm is not None and cases > 0:
            self.bar = self.tqdm.tqdm(total=cases, desc=name, unit="case", file=sys.stderr, leave=False,
                                      bar_format="{n_fmt}/{total_fmt} cases [{elapsed}<{remaining}] {desc}")

    def show(self, text):
        if self.bar is not None:
            width = max(20, shutil.get_terminal_size().columns - 40)
            self.bar.set_description_str(text if len(text) <= width else text[:width - 3] + "...")
        elif self.tty:
            sys.stderr.write("\r\033[K" + text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def note(self, text):
        """A line that stays (on a terminal too)."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
            return
        sys.stderr.write(("\r\033[K" if self.tty else "") + text + "\n")
        sys.stderr.flush()

    def case_done(self, text):
        """The line that stays for a finished case."""
        self.note(text)
        if self.bar is not None:
            self.bar.update(1)

    def done(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _error_text(error):
    return f"{type(error).__name__}: {error}"


class Settings:
    """What every case of a run shares."""

    def __init__(self, args, threads):
        import timing
        self.dtype, self.seed, self.threads, self.repeats = args.dtype, args.seed, threads, args.repeats
        self.retries, self.inject_wrong, self.mode = args.retries, args.inject_wrong, args.mode
        tiny = args.mode == "tiny"
        self.settle = 0.0 if tiny else timing.SETTLE_S
        self.target = 0.002 if tiny else timing.TARGET_REPEAT_S
        self.retry_time = None  # a RetryTime; main() sets it from the expected duration


def perturb(result):
    """bpfast's result made wrong: every number and float array moved (for --inject-wrong)."""
    import numpy as np
    if isinstance(result, (bool, str)) or result is None:
        return result
    if isinstance(result, (int, float)):
        return result * 1.5 + 1.0
    if isinstance(result, np.ndarray) and result.dtype.kind == "f":
        return result * 1.5 + 1.0
    if isinstance(result, tuple):
        return tuple(perturb(r) for r in result)
    if isinstance(result, list):
        return [perturb(r) for r in result]
    if isinstance(result, dict):
        return {k: perturb(v) for k, v in result.items()}
    return result


def _wrong_competitor(base):
    """A competitor as fast as bpfast, since it runs bpfast's callable, but with a wrong answer."""
    from competitor import Competitor
    return Competitor(WRONG, lambda: perturb(base.check()), base.build)


class Attempt:
    """One timing of every competitor of a case (name -> timing.Timing), and what disturbed it."""

    def __init__(self, timings, foreign=None):
        self.timings, self.foreign = timings, foreign
        self.not_retried = None  # why a disturbed attempt was not timed again, when it was not

    @property
    def spread(self):
        """The largest spread (slowest repeat / fastest) over the competitors; 1.0 with none."""
        return max((t.spread for t in self.timings.values()), default=1.0)

    @property
    def crowded(self):
        """Other processes used more than FOREIGN_LIMIT cores meanwhile."""
        from contention import FOREIGN_LIMIT
        return self.foreign is not None and self.foreign > FOREIGN_LIMIT

    @property
    def scattered(self):
        """Some competitor's slowest repeat took more than SPREAD_LIMIT times its fastest."""
        from timing import SPREAD_LIMIT
        return self.spread > SPREAD_LIMIT

    @property
    def disturbed(self):
        return self.crowded or self.scattered

    def reasons(self):
        """What disturbed this timing, in words (empty when nothing did)."""
        out = []
        if self.crowded:
            out.append(f"other processes used {self.foreign:.2f} cores")
        if self.scattered:
            worst = max(self.timings, key=lambda name: self.timings[name].spread)
            out.append(f"{worst}'s slowest repeat took {self.timings[worst].spread:.1f}x its fastest")
        return out


class RetryTime:
    """The time a run may spend re-timing disturbed cases, so that a busy machine cannot double the run."""

    def __init__(self, seconds):
        self.left = float(seconds)


RETRY_SHARE = 0.3  # re-timing may add this share of the expected duration, at most


def time_with_retries(measure, retries, budget=None, on_retry=None, retry_time=None):
    """Time a case with measure() -> Attempt, and again while it comes out disturbed.

    A scattered attempt (a spread above SPREAD_LIMIT) is retried up to
    ``retries`` times; one that other processes crowded but that is not
    scattered is retried only while ``budget`` has waiting time left, since
    on a machine that is never quiet it would only come out crowded again.
    Before a retry the run waits for quiet from the budget, when there is
    some. A retry is skipped once ``retry_time`` (a RetryTime, None: no limit)
    is spent; the last attempt's not_retried then says so. on_retry(attempt
    number, Attempt) is called before each retry.
    Returns (every Attempt, the index of the one to report): among the
    undisturbed attempts, or all of them when none is, the one with the
    smallest spread.
    """
    attempts = [measure()]
    while len(attempts) <= retries:
        last = attempts[-1]
        can_wait = budget is not None and budget.left > 0
        if not (last.scattered or (last.crowded and can_wait)):
            break
        if retry_time is not None and retry_time.left <= 0:
            last.not_retried = "the run's time for retries was used up"
            break
        if on_retry is not None:
            on_retry(len(attempts), last)
        if can_wait:
            budget.wait(30.0)
        started = time.perf_counter()  # the waiting has its own budget
        attempts.append(measure())
        if retry_time is not None:
            retry_time.left -= time.perf_counter() - started
    kept = min(range(len(attempts)), key=lambda i: (attempts[i].disturbed, attempts[i].spread))
    return attempts, kept


def run_case(suite, case, settings, progress, position, budget=None):
    """Check, then time, every competitor of one case; returns one row per competitor.

    A disturbed timing is retried (see time_with_retries); the rows say how
    many attempts were made, why, and which one they report.
    """
    context = getattr(suite, "case_context", None)
    with (context(case) if context is not None else contextlib.nullcontext()):
        return _run_case(suite, case, settings, progress, position, budget)


def _run_case(suite, case, settings, progress, position, budget):
    from contention import ForeignLoad
    from timing import interleaved

    dtype = settings.dtype
    progress.show(f"[{suite.NAME} {position}] {case.label}: checking")
    competitors = suite.competitors(case, dtype, settings.seed, settings.threads)
    if settings.inject_wrong:
        base = [c for c in competitors if c.name == BASELINE]
        competitors += [_wrong_competitor(c) for c in base]
    results, errors = {}, {}
    for competitor in competitors:
        try:
            results[competitor.name] = competitor.check()
        except Exception as error:
            errors[competitor.name] = _error_text(error)

    status, detail = {}, {}
    for competitor in competitors:
        name = competitor.name
        status[name], detail[name] = status_of(
            name, errors, BASELINE in results,
            lambda: suite.compare(case, dtype, results[BASELINE], results[name]))

    attempts, kept = [], None
    if status.get(BASELINE) == "baseline":
        fns = {}
        for competitor in competitors:
            if status[competitor.name] == "ERROR":
                continue
            try:
                fns[competitor.name] = competitor.build()
            except Exception as error:
                status[competitor.name], detail[competitor.name] = "ERROR", _error_text(error)

        attempts_made = []

        def measure():
            n = len(attempts_made) + 1
            attempts_made.append(n)
            progress.show(f"[{suite.NAME} {position}] {case.label}: timing {', '.join(fns)}"
                          + (f" (attempt {n})" if n > 1 else ""))
            monitor = ForeignLoad().start()
            timings = interleaved(fns, settings.repeats, settle=settings.settle, target=settings.target)
            return Attempt(timings, monitor.stop())

        def on_retry(n, attempt):
            progress.note(f"[{suite.NAME} {position}] {case.label}: attempt {n} disturbed "
                          f"({'; '.join(attempt.reasons())}); timing it again")

        try:
            attempts, kept = time_with_retries(measure, settings.retries, budget, on_retry, settings.retry_time)
        except Exception as error:
            attempts, kept = [], None
            for name in fns:
                status[name], detail[name] = "ERROR", f"while timing: {_error_text(error)}"

    chosen = attempts[kept] if attempts else Attempt({})
    timings = chosen.timings
    retried = [f"attempt {i + 1}: {'; '.join(a.reasons())}" for i, a in enumerate(attempts[:-1])]
    base = timings.get(BASELINE)
    rows = []
    for competitor in competitors:
        name = competitor.name
        timing = timings.get(name)
        row = {"suite": suite.NAME, "table": suite.TABLE, "dtype": dtype, "case": case.label,
               "params": case.params(), "flops": case.flops, "competitor": name, "status": status[name],
               "check": detail[name], "measure": "time per call",
               "inner": None, "times": [], "median": None, "min": None, "max": None, "spread": None,
               "ratio": None, "gflops": None,
               "foreign_cores": None if chosen.foreign is None else round(chosen.foreign, 3),
               "attempts": len(attempts), "kept_attempt": None if kept is None else kept + 1,
               "retried": retried, "not_retried": attempts[-1].not_retried if attempts else None,
               "disturbed": chosen.disturbed, "disturbed_by": chosen.reasons()}
        if timing is not None:
            row.update(inner=timing.inner, times=timing.times, median=timing.median,
                       min=timing.min, max=timing.max, spread=timing.spread,
                       settle_timeouts=getattr(timing, "settle_timeouts", 0))
            if status[name] in ("baseline", "ok"):  # a wrong answer gets no ratio and no GFLOP/s
                if case.flops:
                    row["gflops"] = case.flops / timing.median / 1e9
                if base is not None:
                    row["ratio"] = timing.median / base.median
        rows.append(row)
    return rows


def case_line(suite_name, position, rows, case_s, run_s):
    """The line that stays for a finished case: its name, how long it took, the ratios in brief."""
    label = rows[0]["case"] if rows else "?"
    ratios = []
    for row in rows:
        if row["competitor"] == BASELINE:
            continue
        if row["status"] in ("WRONG", "ERROR"):
            ratios.append(f"{row['competitor']} {row['status']}")
        elif row.get("ratio") is not None:
            ratio = row["ratio"]
            ratios.append(f"{row['competitor']} {ratio:.0f}x" if ratio >= 999.5 else
                          f"{row['competitor']} {ratio:.3g}x")
    if any(row["status"] == "ERROR" for row in rows if row["competitor"] == BASELINE):
        ratios.insert(0, "bpfast ERROR")
    first = rows[0] if rows else {}
    tail = ""
    if first.get("attempts", 0) > 1:
        times = first["attempts"] - 1
        tail += f"; retried {'once' if times == 1 else f'{times} times'}, reporting attempt {first['kept_attempt']}"
    if first.get("disturbed"):
        tail += f"; disturbed ({'; '.join(first.get('disturbed_by') or [])})"
    if first.get("not_retried"):
        tail += f"; not timed again: {first['not_retried']}"
    minutes, seconds = divmod(int(run_s), 60)
    return (f"[{suite_name} {position}] {label}: {case_s:.1f} s (run {minutes}:{seconds:02d}); "
            + (", ".join(ratios) if ratios else "no ratio") + tail)


def run_suite(suite, settings, progress, budget, run_start=None):
    """Every case of one suite; returns its rows (each with case_s, the seconds its case took)."""
    cases = suite.cases(settings.mode)
    run_start = time.perf_counter() if run_start is None else run_start
    progress.start(suite.NAME, len(cases))
    rows = []
    for i, case in enumerate(cases, 1):
        position = f"{i}/{len(cases)}"
        case_start = time.perf_counter()
        if hasattr(suite, "run_case"):  # a suite that measures something other than time (memory)
            timed = {"repeats": settings.repeats} if getattr(suite, "TIMED", False) else {}
            case_rows = suite.run_case(case, settings.dtype, settings.seed, progress, position,
                                       perturb if settings.inject_wrong else None, **timed)
        else:
            case_rows = run_case(suite, case, settings, progress, position, budget)
        now = time.perf_counter()
        for row in case_rows:
            row["case_s"] = round(now - case_start, 3)
        progress.case_done(case_line(suite.NAME, position, case_rows, now - case_start, now - run_start))
        rows += case_rows
    progress.done()
    finish = getattr(suite, "finish", None)
    return finish(rows) if finish is not None else rows


SUITE_MODULES = {"steps": ["step_suite"], "kernels": ["gemm_suite", "elementwise_suite"], "fit": ["fit_suite"],
                 "sklearn": ["sklearn_suite"], "threads": ["thread_suite"], "memory": ["memory_suite"], "distributed": ["distributed_suite"]}


def suite_modules(only):
    """The suite modules of a run, in order; "kernels" is two tables (GEMM, then element-wise)."""
    import importlib
    return [importlib.import_module(module) for name in SUITE_NAMES if only in (None, name)
            for module in SUITE_MODULES[name]]


def main(argv=None):
    start = time.perf_counter()
    args = parse_args(argv)
    if args.threads is not None:
        for variable in THREAD_VARIABLES:
            os.environ[variable] = str(args.threads)
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import optional
    optional.pretend_missing.update(args.pretend_missing)
    import estimate
    names = [name for name in SUITE_NAMES if args.only in (None, name)]
    present = estimate.present_competitors()
    expected_s = estimate.estimate(names, args.mode, args.dtype, present, args.repeats)[0]
    retry_s = RETRY_SHARE * expected_s if args.retries else 0.0
    print(estimate.line(names, args.mode, args.dtype, present, args.repeats, args.max_wait, retry_s), flush=True)
    import_bpfast()
    if args.threads is not None:
        import bpfast
        if hasattr(bpfast, "set_num_threads"):
            bpfast.set_num_threads(args.threads)

    import fma_probe
    import plot
    import report
    from contention import WaitBudget
    from machine import machine_record

    import bpfast
    # PyTorch and the FMA probe run on bpfast's thread count (BPFAST_NUM_THREADS, else every core)
    threads = args.threads or bpfast.get_num_threads() or os.cpu_count() or 1
    settings = Settings(args, threads)
    settings.retry_time = RetryTime(retry_s)
    progress = Progress()
    budget = WaitBudget(args.max_wait)
    if budget.wait(30.0) > 1.5:
        progress.note(f"waited {args.max_wait - budget.left:.0f} s for other processes to go quiet")
    suites = suite_modules(args.only)
    machine = machine_record(torch_threads=threads)
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
    print(f"mode: {args.mode}; repeats: {args.repeats} interleaved, each about "
          f"{settings.target * 1e3:.0f} ms after waiting (up to {settings.settle:.2f} s) for the process's threads to go idle; dtype {args.dtype}; "
          f"seed {args.seed}; up to {args.retries} retries of a disturbed case, {args.max_wait:.0f} s of "
          f"waiting and {settings.retry_time.left:.0f} s of retries in all")
    print(flush=True)

    done = []
    for suite in suites:
        suite_start = time.perf_counter()
        rows = fma_probe.annotate(run_suite(suite, settings, progress, budget, start), yardstick, isa_of, threads)
        notes = suite.notes()
        print(report.text_table(suite, args.dtype, rows, notes))
        print(f"({suite.TITLE.lower()}: {time.perf_counter() - suite_start:.0f} s)")
        print(flush=True)
        done.append((suite, rows, notes))

    child = getattr(sys.modules.get("gemm_suite"), "_child", None)
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
    print(f"total time: {elapsed:.0f} s (expected about {estimate.fmt_seconds(expected_s)})")
    if args.json:
        document = {"command": command, "options": vars(args), "machine": machine, "elapsed_s": elapsed,
                    "expected_s": expected_s, "fma_probe": peaks,
                    "suites": [{"name": s.NAME, "table": s.TABLE, "title": s.TITLE, "note": s.NOTE,
                                "explanation": s.EXPLANATION, "notes": notes, "dtype": args.dtype,
                                "results": rows} for s, rows, notes in done]}
        with open(args.json, "w") as f:
            json.dump(document, f, indent=1)
            f.write("\n")
    if args.markdown:
        text = report.markdown_document(command, machine, args.dtype, done, elapsed)
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.plot:
        print(plot.write(args.plot, done, args.dtype, machine))
    wrong = [r for _, rows, _ in done for r in rows if r["status"] in ("WRONG", "ERROR")]
    return 1 if any(r["competitor"] == BASELINE for r in wrong) else 0


if __name__ == "__main__":
    sys.exit(main())
