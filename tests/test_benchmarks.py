"""Tests of the benchmark runner (benchmarks/run.py): smoke runs in its testing mode, and unit tests.

--tiny shrinks every suite to a few tiny cases, 2 repeats and no pauses, so
that a run takes seconds. Nothing here looks at the timings: the tests check
that every suite runs, the JSON has its schema, the correctness check marks
a deliberately wrong competitor (--inject-wrong) WRONG with no ratio, the
optional packages may be missing (--pretend-missing), the run states its
expected duration and a line per case, and (with fake timings whose values
the test chooses) that a disturbed case is retried and marked in the plot.
"""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
RUN = os.path.join(BENCHMARKS, "run.py")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
SUITES = {"steps", "kernels", "fit", "threads", "memory"}
TABLES = {"steps", "gemm", "elementwise", "fit", "threads", "memory"}
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


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """Every suite, with the wrong competitor injected, the markdown report and the plot."""
    tmp_path = tmp_path_factory.mktemp("bench")
    document, stdout, stderr = _run(tmp_path, "--inject-wrong", "--markdown", str(tmp_path / "out.md"),
                                    "--plot", str(tmp_path / "out.png"))
    return document, stdout, tmp_path, stderr


def _rows(document):
    return [row for suite in document["suites"] for row in suite["results"]]


def test_json_has_every_suite_and_the_machine_record(full):
    document, _, _, _ = full
    assert {"command", "options", "machine", "elapsed_s", "suites"} <= set(document)
    assert MACHINE_KEYS <= set(document["machine"])
    assert {s["name"] for s in document["suites"]} == SUITES
    assert {s["table"] for s in document["suites"]} == TABLES
    for suite in document["suites"]:
        assert {"name", "table", "title", "note", "explanation", "notes", "dtype", "results"} <= set(suite)
        assert suite["results"], f"suite {suite['table']} has no rows"


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


def test_runs_without_the_optional_packages(tmp_path):
    document, stdout, _ = _run(tmp_path, "--pretend-missing", "torch,sklearn,threadpoolctl,matplotlib",
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
    assert all(row["competitor"] != "torch" for row in _rows(document))
    assert all(row["status"] in ("baseline", "ok") for row in _rows(document))


# ------------------------------------------------------------------ the plot marks disturbed cases

def _row(table, case, competitor, ratio, disturbed, **extra):
    return {"table": table, "case": case, "competitor": competitor, "status": "ok" if ratio else "baseline",
            "ratio": ratio, "disturbed": disturbed, "params": extra.get("params", {}),
            "gflops": extra.get("gflops")}


def test_the_plot_marks_the_disturbed_cases():
    pytest.importorskip("matplotlib")
    import plot
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
