#!/usr/bin/env python3
"""bpfast benchmark suite: training steps and GEMM kernels against numpy and PyTorch.

    python benchmarks/run.py                      # both suites, float32
    python benchmarks/run.py --quick              # a subset, under about a minute
    python benchmarks/run.py --only kernels --dtype float64 --json out.json --markdown out.md

For each case every competitor's result is first checked against bpfast's
(a mismatch marks the competitor WRONG and keeps it out of the ratios); then
the competitors are warmed up and timed in interleaved repeats (see
timing.py). Reported per competitor: median, min and max time per call, the
ratio competitor median / bpfast median (>1 means bpfast is faster) and
GFLOP/s. Needs only the standard library and numpy; PyTorch joins the step
suite when it can be imported.
"""

import argparse
import json
import os
import shlex
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BPFAST_NUM_THREADS")
BASELINE = "bpfast"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Time bpfast against the numpy reference, numpy's BLAS and PyTorch (when importable).")
    parser.add_argument("--quick", action="store_true", help="a subset of the cases and fewer repeats")
    parser.add_argument("--only", choices=["steps", "kernels"], help="run one suite (default: both)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved timed repeats per competitor (default 11, 5 with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the data")
    parser.add_argument("--threads", type=int, default=None,
                        help="thread count for numpy's BLAS, bpfast and PyTorch (sets OPENBLAS_NUM_THREADS, "
                             "OMP_NUM_THREADS, MKL_NUM_THREADS, BPFAST_NUM_THREADS before the imports); "
                             "default: each library's own default, PyTorch: the logical core count")
    parser.add_argument("--retries", type=int, default=2,
                        help="re-time a case up to this many times when other processes disturbed it (default 2)")
    parser.add_argument("--max-wait", type=float, default=120.0, metavar="SECONDS",
                        help="total time the run may spend waiting for other processes to go quiet (default 120)")
    parser.add_argument("--json", metavar="PATH", help="write every measurement and the machine record here")
    parser.add_argument("--markdown", metavar="PATH", help="write the markdown tables here")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.quick else 11
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
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
    """One line on stderr naming the case being run (rewritten in place on a terminal)."""

    def __init__(self):
        self.tty = sys.stderr.isatty()

    def show(self, text):
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def note(self, text):
        """A line that stays (on a terminal too)."""
        sys.stderr.write(("\r\033[K" if self.tty else "") + text + "\n")
        sys.stderr.flush()

    def done(self):
        if self.tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _error_text(error):
    return f"{type(error).__name__}: {error}"


def run_case(suite, case, dtype, seed, threads, repeats, progress, position, retries=0, budget=None):
    """Check, then time, every competitor of one case; returns one row per competitor.

    When other processes used more than FOREIGN_LIMIT cores while the case
    was timed, it waits for quiet (within ``budget``) and times it again, up
    to ``retries`` times; the last timing is kept and its disturbance noted.
    """
    from contention import FOREIGN_LIMIT, ForeignLoad
    from timing import interleaved

    progress.show(f"[{suite.NAME} {position}] {case.label}: checking")
    competitors = suite.competitors(case, dtype, seed, threads)
    results, errors = {}, {}
    for competitor in competitors:
        try:
            results[competitor.name] = competitor.check()
        except Exception as error:
            errors[competitor.name] = _error_text(error)

    status, detail = {}, {}
    for competitor in competitors:
        name = competitor.name
        if name in errors:
            status[name], detail[name] = "ERROR", errors[name]
        elif name == BASELINE:
            status[name], detail[name] = "baseline", "the result the others are checked against"
        elif BASELINE not in results:
            status[name], detail[name] = "ERROR", "bpfast failed, nothing to check against"
        else:
            verdict = suite.compare(case, dtype, results[BASELINE], results[name])
            status[name] = "ok" if verdict.ok else "WRONG"
            detail[name] = verdict.detail

    timings, foreign, attempts = {}, None, 0
    if status.get(BASELINE) == "baseline":
        fns = {}
        for competitor in competitors:
            if status[competitor.name] == "ERROR":
                continue
            try:
                fns[competitor.name] = competitor.build()
            except Exception as error:
                status[competitor.name], detail[competitor.name] = "ERROR", _error_text(error)
        while True:
            attempts += 1
            progress.show(f"[{suite.NAME} {position}] {case.label}: timing {', '.join(fns)}"
                          + (f" (attempt {attempts})" if attempts > 1 else ""))
            monitor = ForeignLoad().start()
            try:
                timings = interleaved(fns, repeats)
            except Exception as error:
                timings = {}
                for name in fns:
                    status[name], detail[name] = "ERROR", f"while timing: {_error_text(error)}"
                break
            foreign = monitor.stop()
            if foreign is None or foreign <= FOREIGN_LIMIT or attempts > retries or budget is None \
                    or budget.left <= 0:
                break
            progress.note(f"[{suite.NAME} {position}] {case.label}: other processes used {foreign:.2f} cores "
                          "meanwhile; waiting for quiet to time it again")
            budget.wait(30.0)

    base = timings.get(BASELINE)
    rows = []
    for competitor in competitors:
        name = competitor.name
        timing = timings.get(name)
        row = {"suite": suite.NAME, "dtype": dtype, "case": case.label, "params": case.params(),
               "flops": case.flops, "competitor": name, "status": status[name], "check": detail[name],
               "inner": None, "times": [], "median": None, "min": None, "max": None,
               "ratio": None, "gflops": None,
               "foreign_cores": None if foreign is None else round(foreign, 3), "attempts": attempts,
               "disturbed": foreign is not None and foreign > FOREIGN_LIMIT}
        if timing is not None:
            row.update(inner=timing.inner, times=timing.times, median=timing.median,
                       min=timing.min, max=timing.max)
            if status[name] in ("baseline", "ok"):  # a wrong answer gets no ratio and no GFLOP/s
                row["gflops"] = case.flops / timing.median / 1e9
                if base is not None:
                    row["ratio"] = timing.median / base.median
        rows.append(row)
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        for variable in THREAD_VARIABLES:
            os.environ[variable] = str(args.threads)
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import_bpfast()
    if args.threads is not None:
        import bpfast
        if hasattr(bpfast, "set_num_threads"):
            bpfast.set_num_threads(args.threads)

    import gemm_suite
    import report
    import step_suite
    from contention import WaitBudget
    from machine import machine_record

    start = time.perf_counter()
    threads = args.threads or os.cpu_count() or 1
    progress = Progress()
    budget = WaitBudget(args.max_wait)
    if budget.wait(30.0) > 1.5:
        progress.note(f"waited {args.max_wait - budget.left:.0f} s for other processes to go quiet")
    machine = machine_record(torch_threads=threads)
    command = "python benchmarks/run.py" + "".join(" " + shlex.quote(a) for a in (argv or sys.argv[1:]))
    busy = machine["cpu_busy_before_start"]
    if isinstance(busy, float) and busy > 0.2:
        print(f"warning: {busy:.0%} of the CPU time was busy just before the start; the timings will be noisy",
              file=sys.stderr, flush=True)
    print(report.text_machine(machine))
    print(f"repeats: {args.repeats} interleaved, each about 20-50 ms; dtype {args.dtype}; seed {args.seed}; "
          f"up to {args.retries} retries of a disturbed case, {args.max_wait:.0f} s of waiting in all")
    print(flush=True)

    suites = [s for s in (step_suite, gemm_suite) if args.only in (None, s.NAME)]
    done = []
    for suite in suites:
        cases = suite.cases(args.quick)
        rows = []
        for i, case in enumerate(cases, 1):
            rows += run_case(suite, case, args.dtype, args.seed, threads, args.repeats, progress,
                             f"{i}/{len(cases)}", args.retries, budget)
        progress.done()
        print(report.text_table(f"== {suite.TITLE}, {args.dtype} ==", suite.NOTE, rows))
        print(flush=True)
        done.append((suite, rows))

    elapsed = time.perf_counter() - start
    foreign = [r["foreign_cores"] for _, rows in done for r in rows if r["foreign_cores"] is not None]
    machine["foreign_cores_max"] = max(foreign) if foreign else "unknown"  # over the kept timings
    disturbed = sorted({r["case"] for _, rows in done for r in rows if r["disturbed"]})
    machine["cases_disturbed"] = len(disturbed)
    print(f"cases disturbed by other processes: {len(disturbed)}; most cores other processes used while "
          f"a case was timed: {machine['foreign_cores_max']}; time spent waiting for quiet: "
          f"{args.max_wait - budget.left:.0f} s")
    print(f"total time: {elapsed:.0f} s")
    if args.json:
        document = {"command": command, "options": vars(args), "machine": machine,
                    "elapsed_s": elapsed,
                    "suites": [{"name": s.NAME, "title": s.TITLE, "note": s.NOTE, "dtype": args.dtype,
                                "results": rows} for s, rows in done]}
        with open(args.json, "w") as f:
            json.dump(document, f, indent=1)
            f.write("\n")
    if args.markdown:
        text = report.markdown_document(command, machine,
                                        [(s.TITLE, s.NOTE, args.dtype, rows) for s, rows in done], elapsed)
        with open(args.markdown, "w") as f:
            f.write(text)
    wrong = [r for _, rows in done for r in rows if r["status"] in ("WRONG", "ERROR")]
    return 1 if any(r["competitor"] == BASELINE for r in wrong) else 0


if __name__ == "__main__":
    sys.exit(main())
