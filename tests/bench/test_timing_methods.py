"""The two timing methods of the benchmark runner against each other: alone (each competitor in a
process of its own, the default) and interleaved (every competitor in the runner's process).

The oracle for "the same operation" is the fingerprint of each competitor's first timed call
(harness/digest.py): the loss of one step of a fresh net from the seed, which the runner's process
computes under the interleaved method and the competitor's own process under the alone one. The
oracle for "alone" is the pid each row was timed in: the runner's own under interleaved, and under
alone one process per competitor, none of them the runner, all ended when the case is done.
"""

import json
import math
import os
import subprocess
import sys
import types

import pytest

from conftest import ROOT

RUN = os.path.join(ROOT, "benchmarks", "run.py")
CASE_LABEL = "8-16-3 b=4"  # the steps suite's --tiny case


def _settings(method):
    """What run_case needs from a run: --tiny's speed, one thread, the given method."""
    return types.SimpleNamespace(dtype="float32", seed=0, threads=1, repeats=2, retries=0, inject_wrong=False,
                                 settle=0.0, target=0.002, retry_time=None, method=method)


class _Quiet:
    def show(self, text):
        pass

    def note(self, text):
        pass


def _timed(method):
    from benchmarks.harness import runner
    from benchmarks.suites import step_suite
    from benchmarks.suites.cases import step_cases
    case = step_cases("tiny")[0]
    assert case.label == CASE_LABEL
    return {row["competitor"]: row for row in runner.run_case(step_suite, case, _settings(method), _Quiet(), "1/1")}


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


@pytest.fixture(scope="module")
def both():
    from benchmarks.harness import alone
    return _timed(alone.ALONE), _timed(alone.INTERLEAVED)


def test_both_methods_time_every_competitor_of_the_step(both):
    alone_rows, interleaved_rows = both
    assert set(alone_rows) == set(interleaved_rows) and {"bpfast", "reference", "numpy plain"} <= set(alone_rows)
    for rows in both:
        for name, row in rows.items():
            assert row["status"] in ("baseline", "ok"), (row["method"], name, row["check"])
            assert len(row["times"]) == 2 and all(math.isfinite(t) and t > 0 for t in row["times"])
            assert row["min"] <= row["median"] <= row["max"] and row["ratio"] > 0 and row["gflops"] > 0
            assert row["inner"] >= 1


def test_alone_times_each_competitor_in_a_process_of_its_own(both):
    from benchmarks.harness import timing
    alone_rows, interleaved_rows = both
    assert {row["method"] for row in alone_rows.values()} == {"alone"}
    assert {row["method"] for row in interleaved_rows.values()} == {"interleaved"}
    assert {row["timed_in"] for row in interleaved_rows.values()} == {os.getpid()}
    pids = [row["timed_in"] for row in alone_rows.values()]
    assert all(isinstance(pid, int) for pid in pids) and os.getpid() not in pids
    assert len(set(pids)) == len(pids)  # one process per competitor
    assert not any(_alive(pid) for pid in pids)  # ended with the case (a pool made for it alone)
    assert not set(pids) & timing.WATCHED_PIDS


def test_the_two_methods_timed_the_same_operation(both):
    # The first call of each competitor, in its own process and in the runner's, is the first step of
    # the same fresh net on the same batch: the same loss, to the last bits.
    from benchmarks.harness.digest import same_digest
    alone_rows, interleaved_rows = both
    for name, row in alone_rows.items():
        here = interleaved_rows[name]["first_result"]
        assert row["first_result"] is not None and row["first_result"]["values"] == 1, name
        assert same_digest(row["first_result"], here, rtol=1e-12), (name, row["first_result"], here)
        assert 0.1 < row["first_result"]["sum"] < 10  # a cross-entropy loss of 3 classes at the start


def test_a_competitor_the_child_cannot_build_is_an_error_not_a_crash():
    from benchmarks.harness import alone
    from benchmarks.suites import step_suite
    from benchmarks.suites.cases import step_cases
    pool = alone.ChildPool(step_suite)
    case, settings = step_cases("tiny")[0], _settings(alone.ALONE)
    try:
        timings, errors, pids = pool.time({"bpfast": "bpfast", "nobody": "nobody"}, case, settings)
        assert set(timings) == {"bpfast"} and set(pids) == {"bpfast"}
        assert "no competitor 'nobody'" in errors["nobody"]
        assert timings["bpfast"].median > 0
        assert pool.time({"bpfast": "bpfast"}, case, settings)[2] == pids  # the suite's process, kept
    finally:
        pool.close()
    assert not pool.children


def test_a_child_that_died_is_replaced_at_the_next_timing():
    from benchmarks.harness import alone
    from benchmarks.suites import step_suite
    from benchmarks.suites.cases import step_cases
    pool = alone.ChildPool(step_suite)
    case, settings = step_cases("tiny")[0], _settings(alone.ALONE)
    try:
        first = pool.time({"bpfast": "bpfast"}, case, settings)[2]["bpfast"]
        child = pool.children["bpfast"]
        child.process.kill()  # a crash (this test started the process)
        child.process.wait()
        timings, errors, pids = pool.time({"bpfast": "bpfast"}, case, settings)
        assert not errors and timings["bpfast"].median > 0 and pids["bpfast"] != first
    finally:
        pool.close()


def test_only_pytorchs_process_imports_pytorch(monkeypatch):
    from benchmarks.harness import alone, optional
    assert alone.needs_torch("torch") and alone.needs_torch("torch autocast") and alone.needs_torch("torch bf16")
    assert not any(alone.needs_torch(name) for name in ("bpfast", "numpy", "numpy plain", "reference", "sklearn"))
    assert alone.missing_in("torch") == set() and alone.missing_in("bpfast") == {"torch"}
    monkeypatch.setattr(optional, "pretend_missing", {"sklearn"})  # --pretend-missing reaches the children
    assert alone.missing_in("torch") == {"sklearn"} and alone.missing_in("numpy") == {"sklearn", "torch"}


def _run_json(tmp_path, *options):
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, RUN, "--tiny", "--only", "steps", "--json", str(out), *options],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"run.py failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    with open(out) as f:
        return json.load(f), done.stdout


@pytest.mark.parametrize("option, method", [((), "alone"), (("--method", "interleaved"), "interleaved")])
def test_the_run_says_which_method_timed_it(tmp_path, option, method):
    document, stdout = _run_json(tmp_path, *option)
    assert f"method: {method} (" in stdout  # the run's first lines
    table = stdout.split("== Training step")[1].split("== Summary")[0]
    assert f"\ntimed {method}: " in table  # the line under the table
    assert document["machine"]["timing_method"].startswith(method + ":")
    assert document["options"]["method"] == method
    (suite,) = document["suites"]
    assert suite["method"] == method
    rows = suite["results"]
    assert {row["method"] for row in rows} == {method}
    pids = {row["timed_in"] for row in rows}
    assert len(pids) == (len(rows) if method == "alone" else 1)
    assert all(row["median"] > 0 for row in rows)
