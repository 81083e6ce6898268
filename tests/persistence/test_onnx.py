"""ONNX export (bpfast.onnx): the written file, run in onnxruntime, against net.forward.

Tolerance: 1e-5 in float32 and 1e-12 in float64, as a maximum absolute error
divided by max(1, max|expected|) (conftest.assert_close). The tests that need
onnx or onnxruntime skip without them; the test extra installs both.
"""

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import bpfast
import bpfast.onnx
import bpfast.reference
from conftest import ROOT, assert_close

HIDDEN = ("relu", "sigmoid", "tanh", "identity")
OUTPUTS = ("identity", "sigmoid", "softmax")
OPS = {"relu": ["Relu"], "sigmoid": ["Sigmoid"], "tanh": ["Tanh"], "identity": [], "softmax": ["Softmax"]}


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime")


def session(ort, path):
    """An onnxruntime CPU session on one thread (the test machines are shared)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def run(sess, X):
    (Y,) = sess.run(["Y"], {"X": X})
    return Y


def random_net(sizes, activation, output, dtype, seed=0, cls=bpfast.Network):
    """A net with its seeded initial weights and random, non-zero biases (they start at zero)."""
    net = cls(sizes, activation=activation, output=output, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for layer in net.layers:
        layer.b = rng.uniform(-1, 1, layer.b.shape)
    return net


def batch(rng, n, n_in, dtype):
    return (2 * rng.standard_normal((n, n_in))).astype(dtype)


def check_runs_like_forward(ort, net, path, rng, batch_sizes=(37,)):
    sess = session(ort, path)
    for n in batch_sizes:
        X = batch(rng, n, net.sizes[0], net.dtype)
        Y = run(sess, X)
        assert Y.dtype == net.dtype and Y.shape == (n, net.sizes[-1])
        assert_close(Y, net.forward(X), net.dtype)


# ------------------------------------------------------------ numbers against net.forward
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", HIDDEN)
def test_every_activation_and_output_runs_like_forward(onnx, ort, tmp_path, rng, dtype, activation, output):
    net = random_net([5, 7, 4], activation, output, dtype)
    path = tmp_path / "net.onnx"
    net.to_onnx(path)
    model = onnx.load(os.fspath(path))
    onnx.checker.check_model(model, full_check=True)
    assert [node.op_type for node in model.graph.node] == ["Gemm", *OPS[activation], "Gemm", *OPS[output]]
    check_runs_like_forward(ort, net, path, rng)


def test_mixed_activations_and_several_hidden_layers(onnx, ort, tmp_path, rng, dtype):
    activations = ["relu", "tanh", "identity", "sigmoid", "relu"]
    net = random_net([9, 16, 11, 8, 13, 6, 5], activations, "softmax", dtype, seed=3)
    path = tmp_path / "deep.onnx"
    net.to_onnx(path)
    model = onnx.load(os.fspath(path))
    expected = [op for name in activations + ["softmax"] for op in ["Gemm", *OPS[name]]]
    assert [node.op_type for node in model.graph.node] == expected
    check_runs_like_forward(ort, net, path, rng, batch_sizes=(1, 37))


def test_trained_net(ort, tmp_path, rng, dtype):
    net = random_net([6, 10, 3], "tanh", "softmax", dtype, seed=5)
    before = [layer.W.copy() for layer in net.layers]
    X = batch(rng, 64, 6, dtype)
    labels = rng.integers(0, 3, 64)
    for _ in range(5):
        net.train_step(X, labels, lr=0.5)
    assert all(not np.array_equal(W, layer.W) for W, layer in zip(before, net.layers))
    path = tmp_path / "trained.onnx"
    net.to_onnx(path)
    check_runs_like_forward(ort, net, path, rng)


def test_dynamic_batch_one_file(onnx, ort, tmp_path, rng, dtype):
    net = random_net([4, 8, 2], "relu", "sigmoid", dtype)
    path = tmp_path / "net.onnx"
    net.to_onnx(path)
    check_runs_like_forward(ort, net, path, rng, batch_sizes=(1, 37, 2))


def test_single_layer_net(onnx, ort, tmp_path, rng, dtype):
    for output in OUTPUTS:
        net = random_net([3, 2], [], output, dtype)
        path = tmp_path / f"single_{output}.onnx"
        net.to_onnx(path)
        check_runs_like_forward(ort, net, path, rng, batch_sizes=(1, 5))


def test_weights_are_a_copy_taken_at_export(onnx, ort, tmp_path, rng, dtype):
    net = random_net([4, 5, 3], "relu", "identity", dtype)
    path = tmp_path / "net.onnx"
    net.to_onnx(path)
    X = batch(rng, 10, 4, dtype)
    expected = net.forward(X)
    net.layers[0].W = np.zeros((5, 4))
    assert_close(run(session(ort, path), X), expected, dtype)


@pytest.mark.parametrize("opset", [13, 15, 17, 19])
def test_opsets_in_range_run(onnx, ort, tmp_path, rng, opset):
    net = random_net([5, 6, 3], "sigmoid", "softmax", np.float32)
    path = tmp_path / f"net{opset}.onnx"
    model = bpfast.onnx.export(net, path, opset=opset)
    assert [(o.domain, o.version) for o in onnx.load(os.fspath(path)).opset_import] == [("", opset)]
    assert model.ir_version == onnx.helper.find_min_ir_version_for(model.opset_import)
    check_runs_like_forward(ort, net, path, rng)


def test_newest_opset_passes_the_checker(onnx, tmp_path):
    newest = onnx.defs.onnx_opset_version()
    net = random_net([5, 6, 3], "tanh", "softmax", np.float64)
    model = net.to_onnx(tmp_path / "newest.onnx", opset=newest)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == newest


# ------------------------------------------------------------ the graph itself
def test_graph_interface_and_metadata(onnx, tmp_path, dtype):
    net = random_net([5, 7, 4], ["tanh"], "softmax", dtype)
    path = tmp_path / "net.onnx"
    net.to_onnx(path)
    model = onnx.load(os.fspath(path))
    onnx.checker.check_model(model, full_check=True)
    elem_type = {np.dtype(np.float32): onnx.TensorProto.FLOAT, np.dtype(np.float64): onnx.TensorProto.DOUBLE}[dtype]
    (x,), (y,) = model.graph.input, model.graph.output
    for value, name, width in ((x, "X", 5), (y, "Y", 4)):
        assert value.name == name
        tensor = value.type.tensor_type
        assert tensor.elem_type == elem_type
        batch_dim, width_dim = tensor.shape.dim
        assert batch_dim.dim_param and not batch_dim.HasField("dim_value")  # symbolic
        assert width_dim.dim_value == width
    assert x.type.tensor_type.shape.dim[0].dim_param == y.type.tensor_type.shape.dim[0].dim_param
    assert model.producer_name == "bpfast" and model.producer_version == bpfast.__version__
    assert "[5, 7, 4]" in model.doc_string and dtype.name in model.doc_string
    assert "tanh" in model.doc_string and "softmax" in model.doc_string
    assert model.opset_import[0].version == bpfast.onnx.DEFAULT_OPSET


def test_nodes_and_initializers_hold_the_weights(onnx, tmp_path, dtype):
    net = random_net([5, 7, 4], "relu", "softmax", dtype)
    model = net.to_onnx(tmp_path / "net.onnx")
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    gemms = [node for node in model.graph.node if node.op_type == "Gemm"]
    assert len(gemms) == len(net.layers) and len(inits) == 2 * len(net.layers)
    for gemm, layer in zip(gemms, net.layers):
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute}
        assert attributes.get("transB") == 1 and attributes.get("transA", 0) == 0
        assert attributes.get("alpha", 1.0) == 1.0 and attributes.get("beta", 1.0) == 1.0
        W, b = inits[gemm.input[1]], inits[gemm.input[2]]
        assert W.dtype == dtype and W.shape == layer.W.shape and np.array_equal(W, layer.W)
        assert b.dtype == dtype and b.shape == layer.b.shape and np.array_equal(b, layer.b)
    (softmax,) = [node for node in model.graph.node if node.op_type == "Softmax"]
    assert onnx.helper.get_attribute_value(softmax.attribute[0]) == -1
    assert softmax.output[0] == "Y"


def test_reference_network_exports_identically(onnx, ort, tmp_path, rng, dtype):
    native = random_net([6, 9, 5, 3], ["relu", "sigmoid"], "softmax", dtype, seed=11)
    numpy_net = random_net([6, 9, 5, 3], ["relu", "sigmoid"], "softmax", dtype, seed=11,
                           cls=bpfast.reference.Network)
    a, b = tmp_path / "native.onnx", tmp_path / "reference.onnx"
    native.to_onnx(a)
    numpy_net.to_onnx(b)
    assert a.read_bytes() == b.read_bytes()
    sess = session(ort, b)
    X = batch(rng, 37, 6, dtype)
    assert_close(run(sess, X), numpy_net.forward(X), dtype)


# ------------------------------------------------------------ paths
def test_path_is_written_as_given(onnx, tmp_path):
    net = random_net([3, 4, 2], "relu", "identity", np.float32)
    net.to_onnx(tmp_path / "model")
    net.to_onnx(str(tmp_path / "model.bin"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model.bin"]
    assert (tmp_path / "model").read_bytes() == (tmp_path / "model.bin").read_bytes()


def test_existing_file_is_replaced(onnx, tmp_path):
    path = tmp_path / "net.onnx"
    path.write_bytes(b"x" * 100000)
    net = random_net([3, 4, 2], "relu", "identity", np.float32)
    model = net.to_onnx(path)
    assert path.read_bytes() == model.SerializeToString()


def test_binary_file_object(onnx, ort, tmp_path, rng):
    net = random_net([3, 4, 2], "tanh", "softmax", np.float64)
    buffer = io.BytesIO()
    net.to_onnx(buffer)
    net.to_onnx(tmp_path / "net.onnx")
    assert buffer.getvalue() == (tmp_path / "net.onnx").read_bytes()
    sess = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    X = batch(rng, 7, 3, np.float64)
    assert_close(run(sess, X), net.forward(X), np.float64)


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("path", [None, 3, 2.5, b"net.onnx", ["net.onnx"], object()], ids=repr)
def test_bad_path_is_a_type_error(path):
    net = random_net([3, 4, 2], "relu", "identity", np.float32)
    with pytest.raises(TypeError, match="path"):
        net.to_onnx(path)


@pytest.mark.parametrize("net", [None, "net", [3, 4, 2], np.zeros((3, 4))], ids=repr)
def test_bad_net_is_a_type_error(tmp_path, net):
    with pytest.raises(TypeError, match="net"):
        bpfast.onnx.export(net, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_network_look_alike_exports_what_it_exposes(onnx):
    # export reads what a net exposes (sizes, dtype, layers with W, b and activation), not its
    # class: an object that exposes a net's gives the very model of that net.
    real = random_net([3, 4, 2], "relu", "identity", np.float32)

    class LookAlike:
        sizes, layers, dtype, output = real.sizes, real.layers, real.dtype, real.output

    theirs, ours = io.BytesIO(), io.BytesIO()
    bpfast.onnx.export(LookAlike(), theirs)
    real.to_onnx(ours)
    assert theirs.getvalue() == ours.getvalue()


class _FakeLayer:
    def __init__(self, W, b, activation):
        self.W, self.b, self.activation = W, b, activation


def _look_alikes(real):
    """Objects that look like real but lack or garble a part of what export reads."""
    def like(**changes):
        parts = {"sizes": real.sizes, "dtype": real.dtype, "layers": real.layers, **changes}
        return type("LookAlike", (), parts)()
    layers = real.layers
    fake = [_FakeLayer(layer.W, layer.b, layer.activation) for layer in layers]
    return {
        "no layers": type("LookAlike", (), {"sizes": real.sizes, "dtype": real.dtype, "output": real.output})(),
        "a layer too few": like(layers=layers[:-1]),
        "sizes that do not match": like(sizes=[3, 5, 2]),
        "a transposed W": like(layers=[_FakeLayer(fake[0].W.T, fake[0].b, "relu")] + fake[1:]),
        "b of another dtype": like(layers=[_FakeLayer(fake[0].W, fake[0].b.astype(np.float64), "relu")] + fake[1:]),
        "an unknown activation": like(layers=[_FakeLayer(fake[0].W, fake[0].b, "gelu")] + fake[1:]),
        "float16": like(dtype=np.float16),
        "sizes as a tuple of strings": like(sizes=("3", "4", "2")),
    }


def test_network_look_alike_is_a_type_error(tmp_path):
    real = random_net([3, 4, 2], "relu", "identity", np.float32)
    for what, look_alike in _look_alikes(real).items():
        with pytest.raises(TypeError, match="net"):
            bpfast.onnx.export(look_alike, tmp_path / "x.onnx")
        assert not (tmp_path / "x.onnx").exists(), what


@pytest.mark.parametrize("opset", [0, 12, -17, 10**6, 17.0, "17", True, np.float64(17)], ids=repr)
def test_bad_opset_is_a_value_error(onnx, tmp_path, opset):
    net = random_net([3, 4, 2], "relu", "identity", np.float32)
    with pytest.raises(ValueError, match="opset"):
        net.to_onnx(tmp_path / "x.onnx", opset=opset)
    assert not (tmp_path / "x.onnx").exists()


def test_opset_above_the_newest_is_a_value_error(onnx, tmp_path):
    net = random_net([3, 4, 2], "relu", "identity", np.float32)
    with pytest.raises(ValueError, match="opset"):
        net.to_onnx(tmp_path / "x.onnx", opset=onnx.defs.onnx_opset_version() + 1)


def test_numpy_integer_opset_is_accepted(onnx, tmp_path):
    net = random_net([3, 4, 2], "relu", "identity", np.float32)
    assert net.to_onnx(tmp_path / "x.onnx", opset=np.int64(15)).opset_import[0].version == 15


def test_model_over_the_size_limit_is_refused(onnx, tmp_path, monkeypatch):
    monkeypatch.setattr(bpfast.onnx, "MAX_MODEL_BYTES", 1000)
    net = random_net([20, 30, 2], "relu", "identity", np.float32)
    with pytest.raises(ValueError, match="2 GiB"):
        net.to_onnx(tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


# ------------------------------------------------------------ onnx stays optional
def run_python(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_bpfast_does_not_import_onnx():
    out = run_python("import sys, bpfast, bpfast.reference\n"
                     "net = bpfast.Network([3, 4, 2])\n"
                     "net.forward([[0.0, 1.0, 2.0]])\n"
                     "print(sorted(m for m in sys.modules if m == 'onnx' or m.startswith(('onnx.', 'onnxruntime', 'bpfast.onnx'))))")
    assert out.strip() == "[]"


def test_missing_onnx_gives_a_clear_import_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # what `import onnx` meets when it is not installed
    net = random_net([3, 4, 2], "relu", "identity", np.float32)
    with pytest.raises(ImportError, match=r'pip install "bpfast\[onnx\]"') as refused:
        net.to_onnx(tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    # What works from a checkout too: the extra of the project in the current folder, which
    # pyproject.toml must define with onnx in it.
    assert 'pip install ".[onnx]"' in str(refused.value) and "checkout" in str(refused.value)
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 on
    with open(ROOT / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert any(re.match(r"onnx\b(?!runtime)", requirement) for requirement in extras["onnx"])


def test_missing_onnx_in_a_fresh_interpreter(tmp_path):
    out = run_python("import sys\n"
                     "sys.modules['onnx'] = None\n"
                     "import bpfast\n"
                     "try:\n"
                     f"    bpfast.Network([3, 4, 2]).to_onnx({str(tmp_path / 'x.onnx')!r})\n"
                     "except ImportError as error:\n"
                     "    print(error)\n")
    assert 'pip install "bpfast[onnx]"' in out
    assert not (tmp_path / "x.onnx").exists()


def test_a_mixed_precision_net_is_written_with_its_float32_master_weights(onnx, ort, tmp_path, rng):
    # Trained with bfloat16 products, exported as float32: the model must compute what a
    # float32-compute net with the same weights computes (bpfast.reference's float32 forward),
    # and its metadata and doc_string must say that training used bfloat16 products.
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bfloat16 on float32 FMAs under a forced ISA
        net = bpfast.Network([6, 8, 3], activation="tanh", output="softmax", compute="bfloat16", seed=4)
    X = batch(rng, 20, 6, np.float32)
    net.fit(X, rng.integers(0, 3, 20), epochs=3, batch_size=5)
    path = tmp_path / "mixed.onnx"
    model = net.to_onnx(path)
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {"bpfast.dtype": "float32", "bpfast.compute": "bfloat16"}
    assert "bfloat16 products" in model.doc_string and "input X must be float32" in model.doc_string
    twin = bpfast.reference.Network([6, 8, 3], activation="tanh", output="softmax", seed=4)
    for mine, theirs in zip(twin.parameters(), net.parameters()):
        mine[...] = theirs
    assert_close(run(session(ort, path), X), twin.forward(X), np.float32)
    assert not np.allclose(net.forward(X), twin.forward(X), rtol=0, atol=1e-7)  # the net itself rounds
    plain = bpfast.Network([6, 8, 3], seed=0).to_onnx(io.BytesIO())
    assert {p.key: p.value for p in plain.metadata_props}["bpfast.compute"] == "float32"
