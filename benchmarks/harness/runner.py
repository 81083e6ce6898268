"""Running the cases of a suite: check every competitor, time them (alone or interleaved), retry a disturbed timing.

The rows it returns are what report.py, plot.py and the JSON output read; see
benchmarks/run.py for the run as a whole.
"""

import contextlib
import os
import shutil
import sys
import time

from benchmarks.harness.competitor import BASELINE, status_of

WRONG = "wrong"


class Progress:
    """What the run is doing, on stderr.

    One line per step of a case (rewritten in place on a terminal) and one
    line that stays per finished case. On a terminal with tqdm installed a
    bar per suite counts the cases and guesses the time left.
    """

    def __init__(self):
        from benchmarks.harness import optional
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
        from benchmarks.harness import timing
        self.dtype, self.seed, self.threads, self.repeats = args.dtype, args.seed, threads, args.repeats
        self.retries, self.inject_wrong, self.mode = args.retries, args.inject_wrong, args.mode
        self.match = getattr(args, "match", None)  # --match: only the cases whose label contains it
        from benchmarks.harness import alone
        self.method = getattr(args, "method", alone.DEFAULT)  # --method: alone.ALONE or alone.INTERLEAVED
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
    from benchmarks.harness.competitor import Competitor
    return Competitor(WRONG, lambda: perturb(base.check()), base.build)


class Attempt:
    """One timing of every competitor of a case (name -> timing.Timing), and what disturbed it;
    processes: name -> the pid of the process that timed it."""

    def __init__(self, timings, foreign=None, processes=None):
        self.timings, self.foreign = timings, foreign
        self.processes = processes or {}
        self.not_retried = None  # why a disturbed attempt was not timed again, when it was not

    @property
    def spread(self):
        """The largest spread (slowest repeat / fastest) over the competitors; 1.0 with none."""
        return max((t.spread for t in self.timings.values()), default=1.0)

    @property
    def crowded(self):
        """Other processes used more than FOREIGN_LIMIT cores meanwhile."""
        from benchmarks.harness.contention import FOREIGN_LIMIT
        return self.foreign is not None and self.foreign > FOREIGN_LIMIT

    @property
    def scattered(self):
        """Some competitor's slowest repeat took more than SPREAD_LIMIT times its fastest."""
        from benchmarks.harness.timing import SPREAD_LIMIT
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


def method_of(settings):
    """The timing method of a run (alone.ALONE or alone.INTERLEAVED); settings made without one interleave."""
    from benchmarks.harness import alone
    return getattr(settings, "method", alone.INTERLEAVED)


def run_case(suite, case, settings, progress, position, budget=None, pool=None):
    """Check, then time, every competitor of one case; returns one row per competitor.

    With the alone method each competitor is timed in its own process, from
    `pool` (an alone.ChildPool: the suite's processes), or from a pool made
    for this case alone when none is given. A disturbed timing is retried
    (see time_with_retries); the rows say how many attempts were made, why,
    and which one they report.
    """
    from benchmarks.harness import alone
    own_pool = pool is None and method_of(settings) == alone.ALONE
    if own_pool:
        pool = alone.ChildPool(suite)
    context = getattr(suite, "case_context", None)
    try:
        with (context(case) if context is not None else contextlib.nullcontext()):
            return _run_case(suite, case, settings, progress, position, budget, pool)
    finally:
        if own_pool:
            pool.close()


def _run_case(suite, case, settings, progress, position, budget, pool):
    from benchmarks.harness import alone, timing
    from benchmarks.harness.contention import ForeignLoad
    from benchmarks.harness.digest import result_digest

    dtype = settings.dtype
    method = method_of(settings)
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
    firsts, timing_errors = {}, {}  # name -> digest of its first timed call; name -> why its timing failed
    if status.get(BASELINE) == "baseline":
        fns = {}
        for competitor in competitors:
            if status[competitor.name] == "ERROR":
                continue
            if method == alone.ALONE:  # built in its own process; the wrong one runs bpfast's callable
                fns[competitor.name] = BASELINE if competitor.name == WRONG else competitor.name
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
                          + (" alone" if method == alone.ALONE else "") + (f" (attempt {n})" if n > 1 else ""))
            monitor = ForeignLoad().start()
            if method == alone.ALONE:
                timings, errors, processes = pool.time(fns, case, settings, on_first=firsts.__setitem__)
                timing_errors.update(errors)
                return Attempt(timings, monitor.stop(), processes)
            timings = timing.interleaved(fns, settings.repeats, settle=settings.settle, target=settings.target,
                                         on_first=lambda name, result: firsts.update({name: result_digest(result)}))
            return Attempt(timings, monitor.stop(), {name: os.getpid() for name in fns})

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
    for name, error in timing_errors.items():
        if name not in timings:
            status[name], detail[name] = "ERROR", f"while timing it alone: {error}"
    retried = [f"attempt {i + 1}: {'; '.join(a.reasons())}" for i, a in enumerate(attempts[:-1])]
    base = timings.get(BASELINE)
    rows = []
    for competitor in competitors:
        name = competitor.name
        timing = timings.get(name)
        precision_of = getattr(suite, "precision_of", None)
        row = {"suite": suite.NAME, "table": suite.TABLE, "dtype": dtype, "case": case.label,
               "precision": precision_of(name, dtype) if precision_of is not None else dtype,
               "params": case.params(), "flops": case.flops, "competitor": name, "status": status[name],
               "check": detail[name], "measure": "time per call",
               "inner": None, "times": [], "median": None, "min": None, "max": None, "spread": None,
               "ratio": None, "gflops": None,
               "foreign_cores": None if chosen.foreign is None else round(chosen.foreign, 3),
               "attempts": len(attempts), "kept_attempt": None if kept is None else kept + 1,
               "retried": retried, "not_retried": attempts[-1].not_retried if attempts else None,
               "disturbed": chosen.disturbed, "disturbed_by": chosen.reasons(),
               "method": method, "timed_in": chosen.processes.get(name), "first_result": firsts.get(name)}
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


def run_suite(suite, settings, progress, budget, run_start=None, rows=None):
    """Every case of one suite; returns its rows (each with case_s, the seconds its case took).
    rows: a list the finished cases' rows are added to as each ends, so that a caller keeps
    them when the run is interrupted (finish_rows then completes them)."""
    cases = suite.cases(settings.mode)
    match = getattr(settings, "match", None)
    if match:
        cases = [case for case in cases if match in case.label]
    run_start = time.perf_counter() if run_start is None else run_start
    progress.start(suite.NAME, len(cases))
    rows = [] if rows is None else rows
    from benchmarks.harness import alone
    pool = alone.ChildPool(suite) if method_of(settings) == alone.ALONE else None
    try:
        for i, case in enumerate(cases, 1):
            position = f"{i}/{len(cases)}"
            case_start = time.perf_counter()
            if hasattr(suite, "run_case"):  # a suite that measures something other than time (memory)
                timed = {"repeats": settings.repeats} if getattr(suite, "TIMED", False) else {}
                case_rows = suite.run_case(case, settings.dtype, settings.seed, progress, position,
                                           perturb if settings.inject_wrong else None, **timed)
                for row in case_rows:  # such a suite starts its own processes, whatever the method
                    row.setdefault("method", getattr(suite, "METHOD", None))
            else:
                case_rows = run_case(suite, case, settings, progress, position, budget, pool)
            now = time.perf_counter()
            for row in case_rows:
                row["case_s"] = round(now - case_start, 3)
            progress.case_done(case_line(suite.NAME, position, case_rows, now - case_start, now - run_start))
            rows += case_rows
    finally:
        if pool is not None:
            pool.close()
    progress.done()
    return finish_rows(suite, rows)


def finish_rows(suite, rows):
    """The rows of a suite's cases, completed by the suite's finish (ratios over cases, scores)."""
    finish = getattr(suite, "finish", None)
    return finish(rows) if finish is not None else rows
