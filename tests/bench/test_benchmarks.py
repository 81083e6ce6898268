"""Tests of the benchmark runner (benchmarks/run.py): smoke runs in its testing mode, and unit tests.

--tiny shrinks every suite to a few tiny cases, 2 repeats and no pauses, so
that a run takes seconds. Nothing here looks at the timings: the tests check
that every suite runs, the JSON has its schema, the correctness check marks
a deliberately wrong competitor (--inject-wrong) WRONG with no ratio, the
optional packages may be missing (--pretend-missing), the run states its
expected duration and a line per case, and (with fake timings whose values
the test chooses) that a disturbed case is retried and marked in the plot.
"""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys

import pytest

from conftest import ROOT

RUN = os.path.join(ROOT, "benchmarks", "run.py")
SUITES = {"steps", "kernels", "fit", "sklearn", "threads", "memory", "distributed"}
TABLES = {"steps", "gemm", "elementwise", "fit", "sklearn", "threads", "memory", "distributed"}
ROW_KEYS = {"suite", "table", "case", "competitor", "params", "times", "median", "min", "max", "ratio",
            "gflops", "status", "check", "dtype", "disturbed"}
STATUSES = {"baseline", "ok", "WRONG", "ERROR"}
MACHINE_KEYS = {"date", "cpu", "logical_cores", "usable_cores", "python", "bpfast", "bpfast_isa",
                "bpfast_threads", "numpy", "numpy_blas", "numpy_blas_core_type", "torch", "scikit_learn", "threadpoolctl",
                "foreign_cores_max", "cases_disturbed"}


def _run(tmp_path, *options):
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, RUN, "--quick", "--tiny", "--json", str(out), *options],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"run.py failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    with open(out) as f:
        return json.load(f), done.stdout, done.stderr


def test_ctrl_c_reports_and_writes_the_finished_cases_without_a_traceback(tmp_path):
    # Ctrl-C as a terminal sends it: SIGINT to the run's whole process group (numpy's child
    # process included), once the second case has started timing. The oracle is the run's own
    # line per finished case, printed before the signal: the report holds exactly those cases.
    files = {"--json": tmp_path / "out.json", "--markdown": tmp_path / "out.md", "--plot": tmp_path / "out.png"}
    # A shell's background job (nohup, `&` without job control) starts with SIGINT ignored, and
    # Python then keeps ignoring it; the run starts here as a terminal's foreground job would.
    run = subprocess.Popen([sys.executable, RUN, "--tiny", "--only", "kernels",
                            *[str(part) for option in files.items() for part in option]],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    before = []
    for line in run.stderr:
        before.append(line)
        if line.startswith("[kernels 2/") and ": timing" in line:
            os.killpg(run.pid, signal.SIGINT)
            break
    stdout, after = run.communicate(timeout=120)
    stderr = "".join(before) + after
    assert run.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr + stdout and "KeyboardInterrupt" not in stderr + stdout
    finished = [m.group(1) for line in before for m in [re.match(r"^\[kernels \d+/\d+\] (.+?): \d+\.\d s \(run", line)]
                if m]
    assert finished == ["A@B n=32"]
    said = "interrupted (Ctrl-C) during the kernels suite: the summary and the --json, --markdown and --plot " \
           "files hold the 1 case that finished"
    assert said in after
    assert "== Summary" in stdout and "A@B n=32" in stdout.split("== Summary")[1]
    with open(files["--json"]) as f:
        document = json.load(f)
    assert document["machine"]["interrupted"] == said
    assert [suite["table"] for suite in document["suites"]] == ["gemm"]
    assert {row["case"] for row in _rows(document)} == set(finished)
    assert said in files["--markdown"].read_text()
    if importlib.util.find_spec("matplotlib") is not None:
        assert files["--plot"].stat().st_size > 0


def test_the_step_table_explains_bpfast_with_input_checks_in_the_run_itself(tmp_path):
    # The competitor is named for what it measures, and the printed run says what that is, under
    # the table; the oracle for the claim is the code it names: _checked_train_step validates.
    from benchmarks.suites import step_suite
    document, stdout, _ = _run(tmp_path, "--only", "steps")
    names = {row["competitor"] for row in _rows(document)}
    assert "bpfast + input checks" in names and "bpfast checked" not in names
    table = stdout.split("== Training step")[1].split("== Summary")[0]
    note = [line for line in table.splitlines() if line.startswith("bpfast + input checks is ")]
    assert len(note) == 1 and "ratio under 1 is timing noise" in note[0] and "fast path" in note[0]
    assert note[0] in document["suites"][0]["notes"]


def test_bpfast_with_input_checks_times_the_validating_path(monkeypatch):
    # What the note says it measures: each timed call goes through Network._checked_train_step
    # (the input checks), and plain bpfast's never does.
    import bpfast
    from benchmarks.suites import step_suite
    from benchmarks.suites.cases import step_cases
    calls = []
    real = bpfast.Network._checked_train_step
    monkeypatch.setattr(bpfast.Network, "_checked_train_step",
                        lambda self, *args: calls.append(1) or real(self, *args))
    found = {c.name: c for c in step_suite.competitors(step_cases("tiny")[0], "float32", 0, 1)}
    step = found["bpfast"].build()
    step(), step()
    assert calls == []
    step = found[step_suite.CHECKS].build()
    step(), step()
    assert calls == [1, 1]


def uses_the_benchmark_run(test):
    """A test of `full`: its run takes many seconds and its distributed suite starts mpiexec."""
    return pytest.mark.slow(pytest.mark.mpi(test))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """Every suite, with the wrong competitor injected, the markdown report and the plot."""
    tmp_path = tmp_path_factory.mktemp("bench")
    document, stdout, stderr = _run(tmp_path, "--inject-wrong", "--markdown", str(tmp_path / "out.md"),
                                    "--plot", str(tmp_path / "out.png"))
    return document, stdout, tmp_path, stderr


def _rows(document):
    return [row for suite in document["suites"] for row in suite["results"]]


@uses_the_benchmark_run
def test_json_has_every_suite_and_the_machine_record(full):
    document, _, _, _ = full
    assert {"command", "options", "machine", "elapsed_s", "suites"} <= set(document)
    assert MACHINE_KEYS <= set(document["machine"])
    assert {s["name"] for s in document["suites"]} == SUITES
    assert {s["table"] for s in document["suites"]} == TABLES
    for suite in document["suites"]:
        assert {"name", "table", "title", "note", "explanation", "notes", "dtype", "results"} <= set(suite)
        assert suite["results"], f"suite {suite['table']} has no rows"


@uses_the_benchmark_run
def test_every_measurement_has_the_schema(full):
    document, _, _, _ = full
    for row in _rows(document):
        assert ROW_KEYS <= set(row), f"missing {ROW_KEYS - set(row)} in {row['table']}/{row['case']}"
        assert row["status"] in STATUSES
        assert isinstance(row["check"], str) and row["check"]
        if row["table"] == "memory":
            assert row["times"] == [] and row["median"] is None
            assert {"baseline_rss", "peak_rss", "delta", "param_bytes", "data_bytes", "delta_per_byte"} <= set(row)
            if row["status"] != "ERROR":
                assert row["peak_rss"] >= row["baseline_rss"] > 0
                assert row["delta"] == row["peak_rss"] - row["baseline_rss"]
        elif row["status"] != "ERROR":
            assert len(row["times"]) == 2  # --tiny: 2 repeats
            assert row["min"] <= row["median"] <= row["max"]
        if row["table"] == "threads":
            assert {"threads", "speedup", "efficiency"} <= set(row)


@uses_the_benchmark_run
def test_bpfast_is_the_baseline_of_every_case(full):
    document, _, _, _ = full
    cases = {(row["table"], row["case"]) for row in _rows(document)}
    for table, case in cases:
        statuses = {row["competitor"]: row["status"] for row in _rows(document)
                    if (row["table"], row["case"]) == (table, case)}
        assert statuses.get("bpfast") == "baseline", (table, case, statuses)
        for name, status in statuses.items():
            if name not in ("bpfast", "wrong"):
                assert status == "ok", f"{name} on {table}/{case} is {status}"


@uses_the_benchmark_run
def test_a_wrong_competitor_is_flagged_and_gets_no_ratio(full):
    document, stdout, _, _ = full
    wrong = [row for row in _rows(document) if row["competitor"] == "wrong"]
    assert {row["table"] for row in wrong} == TABLES  # injected into every case of every suite
    for row in wrong:
        assert row["status"] == "WRONG", row
        assert row["ratio"] is None and row["gflops"] is None
    for row in _rows(document):
        if row["competitor"] != "wrong" and row["status"] in ("baseline", "ok") and row["table"] != "memory":
            assert row["ratio"] is not None
    assert "WRONG: wrong on" in stdout


@uses_the_benchmark_run
def test_markdown_report_and_plot(full):
    document, stdout, tmp_path, _ = full
    text = (tmp_path / "out.md").read_text()
    assert "## What the figures mean" in text and "Command: `python benchmarks/run.py" in text
    for suite in document["suites"]:
        assert f"### {suite['title']}" in text
    plot = tmp_path / "out.png"
    if "matplotlib is not installed" in stdout:
        assert not plot.exists()
    else:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_runs_without_the_optional_packages(tmp_path):
    document, stdout, _ = _run(tmp_path, "--pretend-missing", "torch,sklearn,threadpoolctl,matplotlib,mpi4py",
                            "--plot", str(tmp_path / "out.png"))
    assert "matplotlib is not installed" in stdout
    assert not (tmp_path / "out.png").exists()
    assert document["machine"]["torch"] == "not installed"
    assert document["machine"]["scikit_learn"] == "not installed"
    by_table = {s["table"]: s for s in document["suites"]}
    fit = by_table["fit"]
    assert {row["competitor"] for row in fit["results"]} == {"bpfast", "train_step", "reference"}
    assert all(row["params"]["data"] == "blobs" for row in fit["results"])
    assert any("scikit-learn is not installed" in note for note in fit["notes"])
    assert any("threadpoolctl is not installed" in note for note in by_table["threads"]["notes"])
    assert any("mpi4py is not installed" in note for note in by_table["distributed"]["notes"])
    assert {row["competitor"] for row in by_table["distributed"]["results"]} == {"bpfast"}
    assert all(row["competitor"] != "torch" for row in _rows(document))
    assert all(row["status"] in ("baseline", "ok") for row in _rows(document))


# ------------------------------------------------------------------ the bench extra

BENCH_PACKAGES = {"scikit-learn", "matplotlib", "threadpoolctl", "tqdm"}


def _requirement_name(requirement):
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower()


def test_the_bench_extra_brings_the_optional_tools_but_not_torch():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 on
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    names = {_requirement_name(r) for r in extras["bench"]}
    assert BENCH_PACKAGES <= names, f"missing from the bench extra: {BENCH_PACKAGES - names}"
    assert "torch" not in names  # a heavy download: README says how to add it


# ------------------------------------------------------------------ the expected duration

EXPECTED = re.compile(r"^expected duration: about (\d+(?:\.\d+)?) (s|min) \(.*\)")


def _expected_seconds(stdout):
    first = stdout.splitlines()[0]
    match = EXPECTED.match(first)
    assert match, f"the first line does not state the expected duration: {first!r}"
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


@uses_the_benchmark_run
def test_the_run_starts_with_its_expected_duration(full):
    document, stdout, _, _ = full
    assert _expected_seconds(stdout) > 0
    assert "Approximate" in stdout.splitlines()[0]
    assert document["expected_s"] > 0


def test_the_estimate_follows_the_options():
    from benchmarks.harness import estimate
    all_suites = ["steps", "kernels", "fit", "threads", "memory"]
    everything = {"torch", "sklearn"}

    def total(names=all_suites, mode="full", dtype="float32", present=everything, repeats=None):
        return estimate.estimate(names, mode, dtype, present, repeats, cores=2)[0]

    assert 0 < total(mode="tiny") < total(mode="quick") < total(mode="full")
    assert total(present=set()) < total(present={"sklearn"}) < total(present=everything)
    assert total(dtype="float64") > total()
    assert total(["fit"]) < total()
    assert total(repeats=3) < total() < total(repeats=21)
    _, parts = estimate.estimate(["kernels"], "quick", "float32", everything, cores=2)
    assert [table for table, _ in parts] == ["gemm", "elementwise"]
    assert all(seconds > 0 for _, seconds in parts)
    line = estimate.line(["steps"], "quick", "float32", set(), max_wait=5)
    assert line.startswith("expected duration: about ") and "without PyTorch and scikit-learn" in line


# ------------------------------------------------------------------ one line per case

CASE_LINE = re.compile(r"^\[(\w+) (\d+)/(\d+)\] (.+): (\d+\.\d) s \(run \d+:\d\d\); (.+)$")


@uses_the_benchmark_run
def test_a_line_per_case_with_its_time_and_ratios(full):
    document, _, _, stderr = full
    lines = [CASE_LINE.match(line) for line in stderr.splitlines()]
    seen = {(m.group(1), m.group(4)): m.group(6) for m in lines if m}
    for suite in document["suites"]:
        for row in suite["results"]:
            assert (suite["name"], row["case"]) in seen, f"no progress line for {suite['name']}/{row['case']}"
            assert row["case_s"] >= 0
            brief = seen[(suite["name"], row["case"])]
            if row["competitor"] == "wrong":
                assert "wrong WRONG" in brief
            elif row["competitor"] != "bpfast" and row["ratio"] is not None:
                shown = re.search(re.escape(row["competitor"]) + r" (\d+(?:\.\d+)?)x", brief)
                assert shown and float(shown.group(1)) == pytest.approx(row["ratio"], rel=0.01)


def test_case_line_says_when_a_case_was_retried():
    from benchmarks.harness import runner
    rows = [{"case": "32-64-64-1 b=16", "competitor": "bpfast", "status": "baseline", "ratio": 1.0,
             "attempts": 2, "kept_attempt": 2, "disturbed": False, "disturbed_by": []},
            {"case": "32-64-64-1 b=16", "competitor": "torch", "status": "ok", "ratio": 23.7,
             "attempts": 2, "kept_attempt": 2, "disturbed": False, "disturbed_by": []}]
    line = runner.case_line("steps", "1/3", rows, 2.04, 75.0)
    assert line == "[steps 1/3] 32-64-64-1 b=16: 2.0 s (run 1:15); torch 23.7x; retried once, reporting attempt 2"
    rows[1]["ratio"] = 1690.2
    assert "torch 1690x;" in runner.case_line("steps", "1/3", rows, 2.04, 75.0)


# ------------------------------------------------------------------ retrying a disturbed case

def _attempt(foreign=0.0, **times):
    """An Attempt whose competitors took these per-call times, one per repeat."""
    from benchmarks.harness import runner
    from benchmarks.harness.timing import Timing
    return runner.Attempt({name: Timing(1, list(values)) for name, values in times.items()}, foreign)


def _feed(*attempts):
    """measure() that returns these attempts in turn, and the list of calls made."""
    queue, calls = list(attempts), []

    def measure():
        calls.append(len(calls) + 1)
        return queue.pop(0)

    return measure, calls


class _Budget:
    def __init__(self, left):
        self.left, self.waits = left, 0

    def wait(self, at_most_s):
        self.waits += 1
        self.left = 0.0
        return 0.0


CLEAN = dict(bpfast=[1.0, 1.02, 0.99, 1.01, 1.0], torch=[24.0, 23.7, 23.9, 23.5, 24.2])
SCATTERED = dict(bpfast=[1.0, 1.02, 0.99, 1.01, 1.0], torch=[23.7, 1690.0, 1700.0, 1650.0, 25.0])


def test_a_clean_case_is_timed_once():
    from benchmarks.harness import runner
    measure, calls = _feed(_attempt(**CLEAN))
    attempts, kept = runner.time_with_retries(measure, retries=2)
    assert calls == [1] and kept == 0 and not attempts[0].disturbed


def test_a_spread_just_under_the_limit_is_not_retried():
    from benchmarks.harness import runner
    from benchmarks.harness.timing import SPREAD_LIMIT
    measure, calls = _feed(_attempt(bpfast=[1.0, 0.98 * SPREAD_LIMIT, 1.0]))
    runner.time_with_retries(measure, retries=2)
    assert calls == [1]


def test_an_outlier_like_1690x_is_retried_and_the_clean_attempt_reported():
    from benchmarks.harness import runner
    measure, calls = _feed(_attempt(**SCATTERED), _attempt(**CLEAN))
    retried = []
    attempts, kept = runner.time_with_retries(measure, retries=2, on_retry=lambda n, a: retried.append(n))
    assert calls == [1, 2] and retried == [1] and kept == 1
    assert attempts[0].scattered and "torch's slowest repeat took" in attempts[0].reasons()[0]
    timings = attempts[kept].timings
    assert timings["torch"].median / timings["bpfast"].median == pytest.approx(23.9 / 1.0)


def test_retries_stop_at_the_limit_and_keep_the_least_scattered():
    from benchmarks.harness import runner
    worse = _attempt(bpfast=[1.0, 1.0, 1.0], torch=[1.0, 50.0, 50.0])
    bad = _attempt(bpfast=[1.0, 1.0, 1.0], torch=[1.0, 10.0, 10.0])
    worst = _attempt(bpfast=[1.0, 1.0, 1.0], torch=[1.0, 90.0, 90.0])
    measure, calls = _feed(worse, bad, worst, _attempt(**CLEAN))
    attempts, kept = runner.time_with_retries(measure, retries=2)
    assert calls == [1, 2, 3] and kept == 1 and attempts[kept].disturbed
    measure, calls = _feed(_attempt(**SCATTERED), _attempt(**CLEAN))
    runner.time_with_retries(measure, retries=0)
    assert calls == [1]


def test_a_crowded_case_is_retried_only_while_there_is_time_to_wait():
    from benchmarks.harness import runner
    measure, calls = _feed(_attempt(foreign=1.2, **CLEAN), _attempt(**CLEAN))
    attempts, kept = runner.time_with_retries(measure, retries=2)
    assert calls == [1] and attempts[0].crowded and attempts[0].disturbed
    budget = _Budget(5.0)
    measure, calls = _feed(_attempt(foreign=1.2, **CLEAN), _attempt(**CLEAN))
    attempts, kept = runner.time_with_retries(measure, retries=2, budget=budget)
    assert calls == [1, 2] and budget.waits == 1 and kept == 1


def test_retries_stop_when_the_run_has_spent_its_time_for_them():
    from benchmarks.harness import runner
    spent = runner.RetryTime(0.0)
    measure, calls = _feed(_attempt(**SCATTERED), _attempt(**CLEAN))
    attempts, kept = runner.time_with_retries(measure, retries=2, retry_time=spent)
    assert calls == [1] and attempts[0].disturbed and "used up" in attempts[0].not_retried
    some = runner.RetryTime(60.0)
    measure, calls = _feed(_attempt(**SCATTERED), _attempt(**CLEAN))
    runner.time_with_retries(measure, retries=2, retry_time=some)
    assert calls == [1, 2] and some.left < 60.0


class _FakeCase:
    label = "fake 8-4 b=2"
    flops = None

    def params(self):
        return {}


class _FakeSuite:
    """A suite of one case with two competitors that agree; the timings are faked."""

    NAME = TABLE = "steps"
    TITLE, NOTE = "Fake suite", "two competitors that agree"

    @staticmethod
    def competitors(case, dtype, seed, threads):
        from benchmarks.harness.competitor import Competitor
        return [Competitor(name, lambda: 1.0, lambda: (lambda: None)) for name in ("bpfast", "torch")]

    @staticmethod
    def compare(case, dtype, base, value):
        from benchmarks.harness.competitor import Verdict
        return Verdict(base == value, "equal", 0.0)


class _Quiet:
    def start(self):
        return self

    def stop(self):
        return 0.0


class _Silent:
    def show(self, text):
        pass

    def note(self, text):
        self.noted = text


def test_run_case_retries_the_outlier_and_the_rows_say_so(monkeypatch):
    from benchmarks.harness import contention
    from benchmarks.harness import runner
    from benchmarks.harness import timing
    from benchmarks.harness.report import text_table
    served = [SCATTERED, CLEAN]

    def fake_interleaved(fns, repeats, **_):
        times = served.pop(0)
        return {name: timing.Timing(1, list(times[name])) for name in fns}

    monkeypatch.setattr(timing, "interleaved", fake_interleaved)
    monkeypatch.setattr(contention, "ForeignLoad", _Quiet)
    settings = type("Settings", (), dict(dtype="float32", seed=0, threads=1, repeats=5, retries=2,
                                         inject_wrong=False, settle=0.0, target=0.001, retry_time=None))()
    progress = _Silent()
    rows = runner.run_case(_FakeSuite, _FakeCase(), settings, progress, "1/1")
    torch_row = [row for row in rows if row["competitor"] == "torch"][0]
    assert torch_row["attempts"] == 2 and torch_row["kept_attempt"] == 2
    assert torch_row["ratio"] == pytest.approx(23.9)
    assert not torch_row["disturbed"] and torch_row["retried"][0].startswith("attempt 1: torch's slowest")
    assert "attempt 1 disturbed" in progress.noted
    table = text_table(_FakeSuite, "float32", rows)
    assert "retried: fake 8-4 b=2, timed 2 times" in table and "the table shows attempt 2" in table


# ------------------------------------------------------------------ the plot marks disturbed cases

def _row(table, case, competitor, ratio, disturbed, **extra):
    return {"table": table, "case": case, "competitor": competitor, "status": "ok" if ratio else "baseline",
            "ratio": ratio, "disturbed": disturbed, "params": extra.get("params", {}),
            "gflops": extra.get("gflops")}


def test_the_plot_marks_the_disturbed_cases():
    pytest.importorskip("matplotlib")
    from benchmarks.harness import plot
    steps = type("Suite", (), {"TABLE": "steps"})
    gemm = type("Suite", (), {"TABLE": "gemm"})
    step_rows = [_row("steps", "a b=1", "reference", 3.0, False), _row("steps", "c b=2", "reference", 2.0, True)]
    square = {"op": "square", "m": 64}
    gemm_rows = [_row("gemm", "A@B n=64", "bpfast", None, True, params=square, gflops=50.0),
                 _row("gemm", "A@B n=64", "numpy", 1.1, True, params=square, gflops=45.0),
                 _row("gemm", "A@B n=128", "bpfast", None, False, params={"op": "square", "m": 128}, gflops=80.0)]
    fig, marked = plot.draw([(steps, step_rows, []), (gemm, gemm_rows, [])], "float32")
    try:
        assert marked == ["step c b=2", "A@B n=64"]
        left, right = fig.axes
        bars = [patch for patch in left.patches if patch.get_height() == pytest.approx(0.7)]
        assert [bool(patch.get_hatch()) for patch in bars] == [False, True]
        for axis in (left, right):
            assert plot.DISTURBED_LABEL in [text.get_text() for text in axis.get_legend().get_texts()]
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)
    fig, marked = plot.draw([(steps, step_rows[:1], [])], "float32")
    try:
        assert marked == []
        assert plot.DISTURBED_LABEL not in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ the FLOP count of a step

def test_a_step_counts_no_input_gradient_for_the_first_layer():
    from benchmarks.suites.cases import FitCase, StepCase, mlp_gemms
    case = StepCase((784, 128, 10), 32, "softmax", "cross_entropy")
    # by hand: forward and weight gradient of both layers, input gradient of the second only
    assert case.flops == 2 * 32 * (2 * (784 * 128 + 128 * 10) + 128 * 10) == 13_090_816
    for sizes, batch in (((784, 1024, 1024, 10), 256), ((32, 64, 64, 1), 16), ((8, 3), 5)):
        layers = list(zip(sizes[:-1], sizes[1:]))
        products = [g for i, (n_in, n_out) in enumerate(layers) for g in mlp_gemms(batch, n_in, n_out)
                    if not (i == 0 and g.op == "input_grad")]
        assert StepCase(sizes, batch, "softmax", "cross_entropy").flops == sum(g.flops for g in products)
        assert FitCase("blobs", 3 * batch, sizes, batch, 0.1).flops == 3 * sum(g.flops for g in products)


def test_a_fixed_epoch_scikit_learn_fit_counts_its_epochs_products_on_the_training_rows():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from benchmarks.suites.cases import FIXED_EPOCH_CASES, SKLEARN_CASES, dense_step_flops
    X, y = load_digits(return_X_y=True)
    train = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)[0].shape[0]
    by_what = {(case.data, case.what): case for case in FIXED_EPOCH_CASES}
    assert by_what["digits", "adam (100,), 20 epochs"].flops == 20 * dense_step_flops((64, 100, 10), train)
    assert by_what["digits_value", "adam (100,), 20 epochs"].flops == 20 * dense_step_flops((64, 100, 1), train)
    assert by_what["digits", "adam (256, 128), 10 epochs"].flops == 10 * dense_step_flops((64, 256, 128, 10), train)
    assert by_what["digits", "lbfgs (100,), 50 iterations"].flops is None  # evaluations per iteration vary
    regression = next(c for c in SKLEARN_CASES if c.data == "synthetic_regression")
    assert regression.flops == 3 * dense_step_flops((100, 100, 1), 75_000)
    assert SKLEARN_CASES[0].flops is None  # at the defaults the epochs depend on convergence


# ------------------------------------------------------------------ numpy plain, the careful numpy step

PLAIN_NETS = [((784, 128, 10), 32, "relu", "softmax", "cross_entropy"),
              ((13, 9, 7, 4), 5, "tanh", "softmax", "cross_entropy"),
              ((6, 11, 3), 1, "sigmoid", "identity", "squared_error"),
              ((32, 64, 64, 1), 16, "relu", "identity", "squared_error")]
PLAIN_TOLERANCE = {"float32": 2e-5, "float64": 1e-12}  # relative, on the loss and on the weights' change


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes, batch, activation, output, loss", PLAIN_NETS)
def test_numpy_plain_takes_the_same_step_as_bpfast(dtype, sizes, batch, activation, output, loss):
    import numpy as np
    import bpfast
    from benchmarks.workers import numpy_plain
    rng = np.random.default_rng(7)
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    T = (rng.integers(0, sizes[-1], size=batch) if loss == "cross_entropy"
         else rng.standard_normal((batch, sizes[-1])).astype(dtype))
    net = bpfast.Network(list(sizes), activation=activation, output=output, loss=loss, dtype=dtype, seed=3)
    before = [p.copy() for layer in net.layers for p in (layer.W, layer.b)]
    plain = numpy_plain.PlainNet(before[0::2], before[1::2], activation, output, loss, T, dtype)
    lr = 0.5
    expected_loss = float(net.train_step(X, T, lr))
    got_loss = plain.step(X, lr)
    tol = PLAIN_TOLERANCE[dtype]
    assert got_loss == pytest.approx(expected_loss, rel=tol)
    after = [p for layer in net.layers for p in (layer.W, layer.b)]
    for i, (b0, want, got) in enumerate(zip(before, after, plain.parameters())):
        assert got.dtype == np.dtype(dtype)
        change, want_change = got.astype(np.float64) - b0, want.astype(np.float64) - b0
        assert np.linalg.norm(want_change) > 0, f"parameter {i} did not move"
        err = np.linalg.norm(change - want_change) / np.linalg.norm(want_change)
        assert err <= 50 * tol, f"parameter {i}: the update differs from bpfast's by {err:.1e} (relative)"
    # a second step from the updated weights agrees too (the buffers are reused, not stale)
    assert plain.step(X, lr) == pytest.approx(float(net.train_step(X, T, lr)), rel=10 * tol)


def test_numpy_plain_refuses_what_it_does_not_do():
    from benchmarks.workers import numpy_plain
    W, b = [[[1.0, 2.0]]], [[0.0]]
    with pytest.raises(ValueError, match="output/loss"):
        numpy_plain.PlainNet(W, b, "relu", "softmax", "squared_error", [[0.0]], "float64")
    with pytest.raises(ValueError, match="activation"):
        numpy_plain.PlainNet(W, b, "gelu", "identity", "squared_error", [[0.0]], "float64")


# ------------------------------------------------------------------ PyTorch's `@` in the kernels suite

@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_gemm_suite_checks_torch_against_bpfast(dtype):
    torch = pytest.importorskip("torch")
    import numpy as np
    from benchmarks.suites import gemm_suite
    from benchmarks.suites.cases import mlp_gemms, square
    before = torch.get_num_threads()
    try:
        for case in [square(33)] + mlp_gemms(7, 19, 5):
            found = {c.name: c for c in gemm_suite.competitors(case, dtype, 0, 1)}
            # numpy again on the CPU's best OpenBLAS core type ("numpy SkylakeX") where the environment
            # forced a lesser one (OPENBLAS_CORETYPE): the only other competitor there may be
            assert {"bpfast", "numpy", "torch"} <= set(found)
            assert all(name.startswith("numpy ") for name in set(found) - {"bpfast", "numpy", "torch"}), found
            assert torch.get_num_threads() == 1  # the thread count the suite was given
            base, got = found["bpfast"].check(), found["torch"].check()
            assert isinstance(got, np.ndarray) and got.dtype == np.dtype(dtype) and got.shape == (case.m, case.n)
            assert gemm_suite.compare(case, dtype, base, got).ok
            # independently of bpfast: numpy's product of the same operands
            want = found["numpy"].check().astype(np.float64)
            assert np.allclose(got, want, rtol=1e-4 if dtype == "float32" else 1e-12, atol=1e-4)
            assert not gemm_suite.compare(case, dtype, base, got * 1.01).ok  # the check can fail
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------ waiting for other threads to go idle

def test_time_waiting_for_a_cpu_counts_as_busy():
    from benchmarks.harness import timing
    me, pool = ("self", "1"), ("self", "2")
    before = {me: (1.0, 0.0), pool: (5.0, 1.0)}
    # the pool thread ran 2 ms and waited 8 ms for a CPU in a 20 ms window: half a core wanted
    after = {me: (1.02, 0.0), pool: (5.002, 1.008), ("123", "9"): (0.001, 0.0)}  # and a helper's new thread
    assert timing.others_busy(before, after, 0.02, caller=me) == pytest.approx((0.002 + 0.008 + 0.001) / 0.02)
    assert timing.others_busy(before, {me: (1.02, 0.0), pool: (5.0, 1.0)}, 0.02, caller=me) == 0.0


def test_wait_until_idle_waits_for_a_busy_thread_and_sees_it_stop():
    import threading
    from benchmarks.harness import timing
    if timing.thread_times() is None:
        pytest.skip("no per-thread schedstat here")
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [None for _ in iter(stop.is_set, True)])
    spinner.start()
    try:
        assert timing.wait_until_idle(0.2) is False  # still spinning when the wait gave up
    finally:
        stop.set()
        spinner.join()
    assert timing.wait_until_idle(5.0) is True


# ------------------------------------------------------------------ the FMA probe and % of peak

def test_the_fma_probe_gives_positive_gflops_for_every_isa_of_the_cpu():
    from benchmarks.workers import fma_probe
    from bpfast import _core
    isas = fma_probe.available_isas()
    bf16_isas = fma_probe.available_bf16_isas()
    supported = {name for name, ok in _core.build_info()["isas"] if ok}
    assert isas == [isa for isa in ("avx512", "avx2") if isa in supported]
    assert bf16_isas == [isa for isa in ("amx", "avx512_bf16") if isa in supported]
    peaks = fma_probe.probe([1, 2], mode="tiny", settle=0)
    assert list(peaks) == isas + bf16_isas
    lines = fma_probe.machine_lines(peaks)
    for isa in isas:
        assert set(peaks[isa]) == {"float32", "float64"}  # no bfloat16 probe on a float ISA
        for dtype in ("float32", "float64"):
            for k in (1, 2):
                assert fma_probe.peak(peaks, isa, dtype, k) > 0, (isa, dtype, k)
        assert f"fma_peak_{isa}" in lines
    for isa in bf16_isas:  # the precisions computing in bfloat16, probed in bfloat16
        assert set(peaks[isa]) == {"mixed_bfloat16"}
        assert all(fma_probe.peak(peaks, isa, "mixed_bfloat16", k) > 0 for k in (1, 2))
        assert fma_probe.BF16_INSTRUCTION[isa] in lines["fma_peak_bfloat16"]
    if not bf16_isas:
        assert lines["fma_peak_bfloat16"] == fma_probe.NO_BF16_PROBE
    assert fma_probe.peak(peaks, "generic", "float32", 1) is None


def test_the_fma_probe_counts_its_flops():
    from benchmarks.workers import fma_probe  # noqa: F401
    from bpfast import _core
    for isa, lanes in (("avx512", {"float32": 16, "float64": 8}), ("avx2", {"float32": 8, "float64": 4})):
        if isa not in dict(_core.build_info()["isas"]) or not dict(_core.build_info()["isas"])[isa]:
            continue
        for dtype, width in lanes.items():
            flops, checksum = _core.fma_probe(isa, dtype, 1000, 1)
            assert flops == 2 * width * 12 * 1000  # 12 chains, one FMA (2 flops) per lane per round
            # each lane runs acc <- 0.999·acc + 0.001 from 0.5 + 0.01·j: the closed form of that recurrence
            a, b, n = 0.999, 0.001, 1000
            want = sum(width * (a ** n * (0.5 + 0.01 * j) + b * (1 - a ** n) / (1 - a)) for j in range(12))
            assert checksum == pytest.approx(want, rel=1e-3 if dtype == "float32" else 1e-9)
    with pytest.raises(ValueError):
        _core.fma_probe("generic", "float32", 10, 1)
    with pytest.raises(ValueError):
        _core.fma_probe("avx2", "float16", 10, 1)
    with pytest.raises(ValueError):
        _core.fma_probe("avx2", "float32", 10, _core.get_num_threads() + 1)


def test_percent_of_peak_uses_the_isa_and_thread_count_of_each_competitor():
    from benchmarks.workers import fma_probe
    peaks = {"avx512": {"float32": {1: 100.0, 2: 200.0}, "float64": {1: 50.0, 2: 100.0}},
             "avx2": {"float32": {1: 80.0, 2: 160.0}, "float64": {1: 40.0, 2: 80.0}}}
    isa_of = fma_probe.CompetitorIsa("avx512", "Haswell", ["avx512", "avx2"], torch_isa_name="avx2")
    assert [isa_of(n) for n in ("bpfast", "numpy", "reference", "numpy plain", "torch", "numpy SkylakeX")] == \
        ["avx512", "avx2", "avx2", "avx2", "avx2", "avx512"]
    rows = [{"competitor": "bpfast", "dtype": "float32", "gflops": 150.0, "params": {}},
            {"competitor": "numpy", "dtype": "float32", "gflops": 40.0, "params": {}},
            {"competitor": "torch", "dtype": "float64", "gflops": 20.0, "params": {"threads": 1}},
            {"competitor": "numpy SkylakeX", "dtype": "float64", "gflops": 90.0, "params": {}},
            {"competitor": "reference", "dtype": "float32", "gflops": None, "params": {}}]
    fma_probe.annotate(rows, peaks, isa_of, threads=2)
    assert [row.get("peak") for row in rows] == [pytest.approx(0.75), pytest.approx(0.25), pytest.approx(0.5),
                                                 pytest.approx(0.9), None]
    assert rows[0]["peak_of"] == "avx512 float32, 2 threads" and rows[2]["peak_of"] == "avx2 float64, 1 thread"
    assert fma_probe.fraction(10.0, None) is None and fma_probe.fraction(None, 5.0) is None
    generic = fma_probe.CompetitorIsa("generic", "SkylakeX", ["avx512", "avx2"])
    assert generic("bpfast") is None and generic("numpy") == "avx512"


def test_bfloat16_rows_use_the_best_bfloat16_probe_and_float_rows_avx512s():
    from benchmarks.workers import fma_probe
    floats = {"float32": {1: 200.0, 2: 400.0}, "float64": {1: 100.0, 2: 200.0}}
    peaks = {"avx512": floats, "avx2": {"float32": {1: 100.0, 2: 200.0}},
             "avx512_bf16": {"mixed_bfloat16": {1: 400.0, 2: 800.0}}}
    # bpfast's isa avx512_bf16 (or amx) runs avx512's float kernels
    for name in ("avx512_bf16", "amx"):
        isa_of = fma_probe.CompetitorIsa(name, "SkylakeX", ["avx512", "avx2"], torch_isa_name="avx512")
        assert isa_of("bpfast") == "avx512" and isa_of("bpfast float32") == "avx512"

    def rows():
        return [{"competitor": "bpfast", "dtype": "mixed_bfloat16", "precision": "mixed_bfloat16", "gflops": 600.0,
                 "params": {}},
                {"competitor": "bpfast float32", "dtype": "mixed_bfloat16", "precision": "float32", "gflops": 300.0,
                 "params": {}},
                {"competitor": "torch autocast", "dtype": "mixed_bfloat16", "precision": "mixed_bfloat16",
                 "gflops": 200.0, "params": {"threads": 1}},
                {"competitor": "bpfast", "dtype": "float32", "gflops": 100.0, "params": {}}]  # no precision key

    isa_of = fma_probe.CompetitorIsa("avx512_bf16", "SkylakeX", ["avx512", "avx2"], torch_isa_name="avx2")
    got = fma_probe.annotate(rows(), peaks, isa_of, threads=2)
    assert [row["peak"] for row in got] == [pytest.approx(0.75), pytest.approx(0.75), pytest.approx(0.5),
                                            pytest.approx(0.25)]
    assert [row["peak_of"] for row in got] == ["avx512_bf16 mixed_bfloat16, 2 threads", "avx512 float32, 2 threads",
                                               "avx512_bf16 mixed_bfloat16, 1 thread", "avx512 float32, 2 threads"]
    # AMX first when both were probed
    amx = dict(peaks, amx={"mixed_bfloat16": {1: 1000.0, 2: 2000.0}})
    assert fma_probe.annotate(rows(), amx, isa_of, threads=2)[0]["peak_of"] == "amx mixed_bfloat16, 2 threads"
    # no bfloat16 ISA: no percentage for the bfloat16 rows, and they say why; the float rows keep theirs
    del peaks["avx512_bf16"]
    got = fma_probe.annotate(rows(), peaks, isa_of, threads=2)
    assert got[0]["peak"] is None and got[0]["peak_of"] == fma_probe.NO_BF16_PROBE
    assert got[2]["peak"] is None and got[1]["peak"] == pytest.approx(0.75)
    assert fma_probe.machine_lines(peaks)["fma_peak_bfloat16"] == fma_probe.NO_BF16_PROBE
    line = fma_probe.machine_lines(amx)["fma_peak_bfloat16"]
    assert "VDPBF16PS (avx512_bf16, for mixed_bfloat16) 400 GF/s on 1 thread, 800 GF/s on 2 threads" in line
    assert "AMX" in line and line.index("AMX") < line.index("VDPBF16PS")


# ------------------------------------------------------------------ --dtype mixed_bfloat16

MIXED_COMPETITORS = {"steps": {"bpfast", "bpfast float32", "bpfast + input checks", "reference", "numpy plain"},
                     "gemm": {"bpfast", "bpfast float32", "numpy"},
                     "fit": {"bpfast", "bpfast float32", "train_step", "reference"}}
MIXED_TORCH = {"steps": {"torch", "torch autocast"}, "gemm": {"torch", "torch autocast", "torch bf16"},
               "fit": {"torch", "torch autocast"}}


@pytest.mark.slow
def test_a_mixed_bfloat16_run_times_bpfast_in_both_precisions_and_pytorch_under_autocast(tmp_path):
    document, stdout, _ = _run(tmp_path, "--dtype", "mixed_bfloat16", "--inject-wrong")
    torch = "torch" in {row["competitor"] for row in _rows(document)}
    assert {s["name"] for s in document["suites"]} == {"steps", "kernels", "fit"}  # the suites that take it
    assert {s["table"] for s in document["suites"]} == {"steps", "gemm", "fit"}
    assert "fma_peak_bfloat16" in document["machine"]
    for suite in document["suites"]:
        assert suite["dtype"] == "mixed_bfloat16"
        for case in {row["case"] for row in suite["results"]}:
            rows = {row["competitor"]: row for row in suite["results"] if row["case"] == case}
            want = MIXED_COMPETITORS[suite["table"]] | (MIXED_TORCH[suite["table"]] if torch else set())
            assert want <= set(rows), (suite["table"], case, set(rows))
            assert rows["bpfast"]["status"] == "baseline" and rows["wrong"]["status"] == "WRONG"
            for name, row in rows.items():
                assert ROW_KEYS <= set(row) and row["dtype"] == "mixed_bfloat16"
                if name == "wrong":
                    assert row["ratio"] is None
                    continue
                assert row["status"] in ("baseline", "ok"), (suite["table"], case, name, row["check"])
                assert row["ratio"] is not None and row["ratio"] > 0 and len(row["times"]) == 2
                # which probe its % of peak uses: float32 for the float32 competitors, bfloat16 for the others
                floats = name in ("bpfast float32", "torch", "numpy", "numpy plain", "sklearn")
                assert row["precision"] == ("float32" if floats else "mixed_bfloat16"), (name, row["precision"])
                if row.get("peak_of") and "float32" in row["peak_of"]:
                    assert floats
            assert rows["bpfast"]["ratio"] == 1.0
    assert "torch autocast / bpfast" in stdout or not torch
    assert "bpfast float32 / bpfast" in stdout


@pytest.mark.slow
def test_match_times_only_the_cases_it_names(tmp_path):
    document, _, _ = _run(tmp_path, "--only", "kernels", "--match", "d@W")
    cases = {row["case"] for suite in document["suites"] for row in suite["results"]}
    assert cases and all("d@W" in case for case in cases)


def test_a_mixed_precision_refuses_the_suites_that_do_not_take_it():
    from benchmarks import cli
    from benchmarks.suites import mixed
    assert mixed.is_mixed("mixed_bfloat16") and not mixed.is_mixed("float32") and not mixed.is_mixed("float64")
    assert mixed.net_kwargs("mixed_bfloat16") == {"dtype": "float32", "compute": "bfloat16"}
    assert mixed.net_kwargs("float64") == {"dtype": "float64", "compute": None}
    assert cli.suite_names(None, "mixed_bfloat16") == ["steps", "kernels", "fit"]
    assert [m.NAME for m in cli.suite_modules("kernels", "mixed_bfloat16")] == ["kernels"]  # no element-wise
    assert len(cli.suite_modules("kernels", "float32")) == 2
    with pytest.raises(SystemExit):
        cli.check_mixed("threads", "mixed_bfloat16")
    cli.check_mixed("threads", "float32")
    cli.check_mixed("fit", "mixed_bfloat16")


@pytest.mark.slow
def test_the_gemm_suite_in_mixed_bfloat16_checks_every_competitor_against_bpfast():
    import numpy as np
    from bpfast import kernels
    from benchmarks.suites import gemm_suite
    from benchmarks.suites.cases import mlp_gemms, square
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        for case in [square(33)] + mlp_gemms(7, 19, 5):
            found = {c.name: c for c in gemm_suite.competitors(case, "mixed_bfloat16", 0, 1)}
            assert {"bpfast", "bpfast float32", "numpy", "torch", "torch autocast", "torch bf16"} == set(found)
            base = found["bpfast"].check()
            assert base.dtype == np.float32
            # bpfast computed in bfloat16: its product is not the float32 one, but within the mixed tolerance
            assert not np.array_equal(base, found["bpfast float32"].check())
            for name, competitor in found.items():
                got = competitor.check()
                assert got.dtype == np.float32 and got.shape == (case.m, case.n), name
                assert gemm_suite.compare(case, "mixed_bfloat16", base, got).ok, name
                assert not gemm_suite.compare(case, "mixed_bfloat16", base, got * 1.05).ok
        A, B = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32)
        assert np.array_equal(kernels.matmul(A, B, compute="bfloat16"), np.full((4, 2), 3, np.float32))
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------ the summary: the best competitor

def test_the_summary_names_the_fastest_competitor_that_got_it_right():
    from benchmarks.harness import report
    from benchmarks.harness.report import best_competitors

    def row(case, competitor, median, status="ok"):
        return {"case": case, "competitor": competitor, "status": status, "median": median,
                "ratio": None if status in ("WRONG", "ERROR") else median / 2.0, "disturbed": False}

    rows = [row("a", "bpfast", 2.0, "baseline"), row("a", "numpy", 3.0), row("a", "torch", 2.5),
            row("a", "wrong", 0.1, "WRONG"), row("a", "bpfast + input checks", 2.2),
            row("b", "bpfast", 2.0, "baseline"), row("b", "reference", 9.0), row("b", "numpy plain", 1.0),
            row("b", "torch", 0.5, "ERROR"),
            row("c", "bpfast", 2.0, "baseline"), row("c", "wrong", 0.1, "WRONG")]
    picked = {case: (best["competitor"] if best else None) for case, _, best in best_competitors(rows)}
    assert picked == {"a": "torch", "b": "numpy plain", "c": None}
    suite = type("Suite", (), {"TABLE": "steps", "TITLE": "Steps"})
    text = report.text_summary([(suite, rows, [])], "float32")
    assert "torch" in text and "1.25" in text and "numpy plain" in text and "0.50" in text
    assert "geometric mean of best / bpfast: 0.79 over 2 cases" in text  # sqrt(1.25 · 0.5)
    assert "## Summary" in "\n".join(report.markdown_summary([(suite, rows, [])], "float32"))


# ------------------------------------------------------------------ numpy on its best BLAS kernel

ZEN4_FLAGS = {"avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"}
ZEN3_FLAGS = {"avx", "avx2", "fma"}


def _report(*core_types, api="openblas"):
    """A threadpoolctl.threadpool_info() list with one library per core type."""
    return [{"user_api": "blas", "internal_api": api, "architecture": t, "num_threads": 2} for t in core_types]


@pytest.mark.parametrize("flags, report, expected", [
    (ZEN4_FLAGS, _report("Haswell"), "SkylakeX"),        # AVX2 kernels on an AVX-512 CPU: try SkylakeX
    (ZEN4_FLAGS, _report("Zen"), "SkylakeX"),
    (ZEN4_FLAGS, _report("SkylakeX"), None),              # already AVX-512 (this machine)
    (ZEN4_FLAGS, _report("Cooperlake"), None),
    (ZEN4_FLAGS, _report("Haswell", "SkylakeX"), None),   # one library already runs AVX-512
    (ZEN3_FLAGS, _report("Zen"), None),                   # no AVX-512 on the CPU
    (ZEN4_FLAGS - {"avx512bw"}, _report("Haswell"), None),  # AVX-512F alone is not enough for SkylakeX
    (ZEN4_FLAGS, _report("Haswell", api="mkl"), None),    # not OpenBLAS: the variable means nothing
    (ZEN4_FLAGS, [], None),
    # numpy's own library decides, not SciPy's (scikit-learn loads SciPy, which brings its own OpenBLAS)
    (ZEN4_FLAGS, [dict(_report("Haswell")[0], filepath="site-packages/numpy.libs/libscipy_openblas64_.so"),
                  dict(_report("SkylakeX")[0], filepath="site-packages/scipy.libs/libscipy_openblas.so")],
     "SkylakeX"),
])
def test_openblas_core_type_decision(flags, report, expected):
    from benchmarks.workers import blas_kernel
    assert blas_kernel.better_core_type(flags, report) == expected


def test_the_decision_reads_threadpoolctl(monkeypatch):
    from benchmarks.workers import blas_kernel
    from benchmarks.harness import optional
    fake = type("FakeThreadpoolctl", (), {"threadpool_info": staticmethod(lambda: _report("Zen"))})
    monkeypatch.setattr(optional, "load", lambda name: fake if name == "threadpoolctl" else None)
    monkeypatch.setattr(blas_kernel, "cpu_flags", lambda: ZEN4_FLAGS)
    target, why = blas_kernel.decide()
    assert target == "SkylakeX" and "runs Zen" in why and "OPENBLAS_CORETYPE=SkylakeX" in why
    monkeypatch.setattr(blas_kernel, "cpu_flags", lambda: ZEN3_FLAGS)
    assert blas_kernel.decide()[0] is None


def test_the_numpy_child_runs_the_core_type_it_was_given(tmp_path):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy as np
    from benchmarks.workers import blas_kernel
    from benchmarks.suites import gemm_suite
    from benchmarks.harness import timing
    from benchmarks.suites.cases import mlp_gemms
    if not blas_kernel.openblas_core_types(threadpoolctl.threadpool_info()) or "avx2" not in blas_kernel.cpu_flags():
        pytest.skip("needs numpy on OpenBLAS and an AVX2 CPU")
    from benchmarks.workers.numpy_child import NumpyChild
    child = NumpyChild("Haswell")  # every AVX2 CPU runs Haswell's kernels
    try:
        assert child.reported == "Haswell" and child.runs_requested_kernel()
        assert child.process.pid in timing.WATCHED_PIDS
        for case in mlp_gemms(5, 12, 7):
            out = str(tmp_path / "p.npy")
            child.set_case(case, "float64", 3, 1, out)
            _, numpy_fn, _, _ = gemm_suite._products(case, "float64", 3)
            np.testing.assert_allclose(np.load(out), numpy_fn(), rtol=1e-12)  # the same operands
        assert child.time_calls(3) > 0
        with pytest.raises(RuntimeError, match="numpy child"):
            child.ask(op="nonsense")
    finally:
        child.close()
    assert child.process.poll() is not None and child.process.pid not in timing.WATCHED_PIDS


def test_the_gemm_suite_checks_the_child_against_bpfast(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from benchmarks.workers import blas_kernel
    from benchmarks.suites import gemm_suite
    from benchmarks.harness import timing
    from benchmarks.suites.cases import square
    if not blas_kernel.openblas_core_types(threadpoolctl.threadpool_info()) or "avx2" not in blas_kernel.cpu_flags():
        pytest.skip("needs numpy on OpenBLAS and an AVX2 CPU")
    monkeypatch.setattr(gemm_suite, "_best", ("Haswell", "forced by the test"))
    try:
        case = square(40)
        found = {c.name: c for c in gemm_suite.competitors(case, "float32", 0, 1)}
        assert "numpy Haswell" in found
        base, got = found["bpfast"].check(), found["numpy Haswell"].check()
        assert gemm_suite.compare(case, "float32", base, got).ok
        calls = found["numpy Haswell"].build()
        assert timing.time_calls(calls, 2) > 0  # timed by the child
        assert any("numpy Haswell" in note for note in gemm_suite.notes())
    finally:
        gemm_suite._close_child()


def test_a_disturbed_all_thread_probe_is_replaced_by_k_times_one_thread():
    from benchmarks.workers import fma_probe
    peaks = {"avx512": {"float32": {1: 116.0, 2: 134.0}, "float64": {1: 58.0, 2: 115.0}}}
    used, replaced = fma_probe.yardstick(peaks)
    assert replaced == {("avx512", "float32", 2)}
    assert used["avx512"]["float32"] == {1: 116.0, 2: 232.0} and used["avx512"]["float64"] == {1: 58.0, 2: 115.0}
    assert peaks["avx512"]["float32"][2] == 134.0  # the measured figure is kept for the machine table
    line = fma_probe.machine_lines(peaks)["fma_peak_avx512"]
    assert "134 GF/s on 2 threads (disturbed: % peak uses 2 x 116)" in line and line.count("disturbed") == 1


def test_the_gemm_suite_says_which_numpy_was_faster(monkeypatch):
    from benchmarks.suites import gemm_suite
    monkeypatch.setattr(gemm_suite, "_best", ("SkylakeX", "forced by the test"))

    def row(case, competitor, median):
        return {"case": case, "competitor": competitor, "status": "ok", "median": median}

    rows = [row("a", "numpy", 4.0), row("a", "numpy SkylakeX", 1.0), row("b", "numpy", 1.0),
            row("b", "numpy SkylakeX", 1.0), row("c", "numpy", 2.0)]
    gemm_suite.finish(rows)
    line = [n for n in gemm_suite.notes() if n.startswith("numpy on its best BLAS kernel")]
    assert line == ["numpy on its best BLAS kernel: numpy SkylakeX was the faster numpy in 1 of 2 cases; "
                    "geometric mean of the times numpy SkylakeX / numpy: 0.50"]
    gemm_suite._best_numpy.clear()


def test_repeats_that_began_with_busy_threads_are_counted_and_reported(monkeypatch):
    from benchmarks.harness import report
    from benchmarks.harness import timing
    answers = iter([True, False, False, True])
    monkeypatch.setattr(timing, "wait_until_idle", lambda max_wait: next(answers))
    timings = timing.interleaved({"a": lambda: None, "b": lambda: None}, repeats=2, settle=0.5, target=0.0001)
    assert timings["a"].settle_timeouts == 1 and timings["b"].settle_timeouts == 1  # a: T F, b: F T
    rows = [{"case": "c", "competitor": "torch", "settle_timeouts": 3}, {"case": "c", "competitor": "numpy"}]
    assert report._settle_lines(rows) == ["busy threads: 3 of torch's repeats on c began while other threads of "
                                          "the run were still busy (the wait for them gave up)"]


def test_distributed_cases_scale_weakly_and_strongly():
    from benchmarks.suites import cases
    full = cases.distributed_cases("full", cores=4)
    large = (784, 1024, 1024, 10)
    weak = [c for c in full if c.scaling == "weak" and c.sizes == large]
    strong = [c for c in full if c.scaling == "strong"]
    assert [c.ranks for c in weak] == [2, 3, 4] and {c.batch for c in weak} == {256}
    assert [c.ranks for c in strong] == [2, 3, 4]
    assert all(c.sizes == large and c.batch * c.ranks in (255, 256) for c in strong)  # 256 split over the ranks
    assert all(c.overlap for c in weak) and not any(c.overlap for c in strong)
    assert len({c.label for c in full}) == len(full)  # every case has its own name


def test_the_share_of_a_step_the_sum_takes():
    from benchmarks.suites import distributed_suite
    detail = distributed_suite._reduction_share({"allreduce_s": 0.002, "step_s": [0.05, 0.04, 0.06]})
    assert detail == "; sum of gradients 2.00 ms = 4% of a step"
    assert distributed_suite._reduction_share({"step_s": [0.05]}) == ""


def test_a_distributed_step_counts_the_flops_of_one_global_step():
    from benchmarks.suites import cases
    case = cases.DistributedCase((784, 256, 10), 64, 2)
    # closed form: forward and dW of both layers, dX of the second only, over 128 rows
    assert case.flops == 2 * 128 * (2 * (784 * 256 + 256 * 10) + 256 * 10)


def test_one_rule_decides_every_competitors_status():
    from benchmarks.harness.competitor import Verdict, status_of

    def boom():
        raise ValueError("shapes differ")
    good, bad = (lambda: Verdict(True, "rel err 0", 0.0)), (lambda: Verdict(False, "rel err 1", 1.0))
    assert status_of("numpy", {"numpy": "E: x"}, True, good) == ("ERROR", "E: x")
    assert status_of("bpfast", {}, True, bad)[0] == "baseline"
    assert status_of("numpy", {}, False, good) == ("ERROR", "bpfast failed, nothing to check against")
    assert status_of("numpy", {}, True, good) == ("ok", "rel err 0")
    assert status_of("numpy", {}, True, bad) == ("WRONG", "rel err 1")
    assert status_of("numpy", {}, True, boom) == ("WRONG", "could not be compared: ValueError: shapes differ")
