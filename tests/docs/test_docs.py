"""README.md and docs/: the README's shape and size, its commands against what CI runs,
its quick start run as written, every link, the facts the long README held, and the
API table against the Network class itself.

Oracles: .ci/run (the test command CI runs), the Network class (its public methods), the
file system (links), onnxruntime (the input dtype the export docs state), and the data
of the quick start, whose classes a linear function separates (a trained net must
classify nearly all of them).
"""

import contextlib
import io
import os
import re

import numpy as np
import pytest

import bpfast
from conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md")), ROOT / "ARCHITECTURE.md", ROOT / "SCALING.md"]


def text(path):
    return path.read_text(encoding="utf-8")


def section(markdown, heading):
    """The body of the `## heading` section."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.M)
    bodies = dict(zip(parts[1::2], parts[2::2]))
    return bodies[heading]


def code_blocks(markdown, language):
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, flags=re.M | re.S)


def test_readme_is_at_most_10_kb():
    assert README.stat().st_size <= 10 * 1024


def test_readme_starts_with_what_bpfast_is_then_install_quick_start_and_the_commands():
    markdown = text(README)
    assert re.findall(r"^## (.+)$", markdown, flags=re.M) == ["Install", "Quick start", "The two commands",
                                                              "Documentation"]
    opening = markdown.split("## Install")[0]
    assert "trains dense feed-forward neural networks" in opening and "C++ core" in opening
    install = section(markdown, "Install")
    for needed in ("git clone", "python3 -m venv", "pip install .", "C++17 compiler", "CMake", "30-40 seconds"):
        assert needed in install, needed


def test_readme_test_command_is_the_one_ci_runs():
    ci = text(ROOT / ".ci" / "run").splitlines()
    command = ci[ci.index("# README.md's test command, exactly:") + 1]
    assert command == 'pip install ".[test]" && python -m pytest'
    commands = section(text(README), "The two commands")
    assert command in [line for block in code_blocks(commands, "bash") for line in block.splitlines()]
    assert 'pip install ".[bench]" && python benchmarks/run.py' in commands


def test_readme_quick_start_runs_as_written(tmp_path, monkeypatch):
    (code,) = code_blocks(section(text(README), "Quick start"), "python")
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    namespace = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md quick start", "exec"), namespace)
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == [f"{e}/10" for e in range(1, 11)]
    scores = eval(next(line for line in lines if line.startswith("{'loss'")))
    X, y, net = namespace["X"], namespace["y"], namespace["net"]
    assert scores["accuracy"] == np.mean(net.predict(X[800:]) == y[800:]) > 0.9  # separable by x0 + x1 = 0
    assert any(line.startswith("total") for line in lines)  # summary's table
    loaded = bpfast.Network.load(tmp_path / "model.npz")
    assert np.array_equal(loaded.forward(X), net.forward(X))


def slug(heading):
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", text(page)):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", text(file), flags=re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: {target}"


def test_readme_links_every_docs_page():
    linked = set(re.findall(r"\]\(docs/([^)#]+)", text(README)))
    assert linked == {p.name for p in DOCS.glob("*.md")}


# What the 27 KB README said, each still said somewhere (README or docs/).
FACTS = [
    "2^48", "MemoryError", "FloatingPointError", "KeyboardInterrupt", "about 50 ms", "decay_bias=False",
    "InverseScaling(power_t)", "StepDecay(step_size, gamma)", "`SGD(0.05, 0.9)` is a `TypeError`",
    "round_to_bfloat16", "VDPBF16PS", "Sapphire Rapids", "Cooper Lake", "RuntimeWarning", "ties to even",
    "½‖y − t‖²", "nothing is unpickled", "single `.npy` array", "MPI_Abort", "BPFAST_MPI_TIMEOUT", "Iallreduce",
    "MPIR_CVAR_ASYNC_PROGRESS=1", "n % size", "((g_0 + g_1) + g_2)", "exit status 124", "600 s",
    "54 ms", "BPFAST_OVERLAP", "check_estimator", "1e-9 relative", "lbfgs", "n_threads", "100,000 × 100",
    "OPENBLAS_CORETYPE=SkylakeX", "6½ minutes", "40 seconds", "more than\n3x", "BPFAST_FUZZ_EXAMPLES",
    "BPFAST_FUZZ_RANDOM", "AddressSanitizer", "mpiexec -n 1, 2 and 3", "BPFAST_GEMM_BLOCKS", "amx_model",
    "BPFAST_ADAPTIVE_THREADS", "1 to 256", "opset", "Softmax(axis=-1)", "transB=1", "pip install torch",
]


def test_the_long_readmes_facts_are_kept():
    everything = "\n".join(text(page) for page in [README, *DOCS.glob("*.md")])
    flat = re.sub(r"\s+", " ", everything)
    missing = [fact for fact in FACTS if fact not in everything and re.sub(r"\s+", " ", fact) not in flat]
    assert missing == []


def test_the_api_page_documents_every_public_method_of_network():
    api = text(DOCS / "api.md")
    public = [name for name in dir(bpfast.Network) if not name.startswith("_")]
    assert {"predict_proba", "evaluate", "summary"} <= set(public)
    for name in public:
        assert re.search(rf"`(net|bpfast\.Network)\.{name}\b", api), name


def test_the_onnx_page_states_the_input_dtype_and_onnxruntime_agrees(tmp_path, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    page = text(DOCS / "onnx.md")
    dtype_section = section(page, "The input dtype")
    assert "**float32**" in dtype_section and "float64" in dtype_section
    net = bpfast.Network([3, 5, 2], output="softmax", seed=0)
    monkeypatch.chdir(tmp_path)
    net.to_onnx("model.onnx")
    X = np.random.default_rng(0).standard_normal((4, 3))  # float64, as numpy makes it
    with pytest.raises(Exception, match="Unexpected input data type"):  # what the page says happens
        ort.InferenceSession("model.onnx").run(None, {"X": X})
    (snippet,) = code_blocks(dtype_section, "python")
    namespace = {"X": X, "np": np}
    exec(compile(snippet, "docs/onnx.md", "exec"), namespace)
    assert namespace["Y"].dtype == np.float32
    assert np.allclose(namespace["Y"], net.forward(X), rtol=1e-5, atol=1e-6)
    assert "must be float32" in __import__("onnx").load("model.onnx").doc_string
