"""bpfast.onnx: write a Network as a standard ONNX graph (needs the optional package onnx).

    net.to_onnx("model.onnx")          # or bpfast.onnx.export(net, "model.onnx")

Each layer becomes one Gemm node with transB=1, which computes Z = X·Wᵀ + b
from W stored as its (n_out, n_in) initializer and b as its (n_out,) one,
followed by Relu, Sigmoid or Tanh (no node for identity), and for a softmax
output Softmax(axis=-1). The input "X" is [batch, n_in] and the output "Y" is
[batch, n_out], where batch is a symbolic dimension, so one file serves every
batch size. The element type is the net's dtype (FLOAT or DOUBLE): the input
X must have it (onnxruntime refuses float64 input to a float32 model), and the
weights are copied into the file as they are at the time of the call.

A net trained in mixed precision (compute="bfloat16") is written with its
float32 master weights and computes in float32: the file's metadata_props
record "bpfast.compute" (what the products read in training) and
"bpfast.dtype", and its doc_string says so.
"""

import numbers
import os

import numpy as np

from . import __version__

__all__ = ["export", "DEFAULT_OPSET", "MIN_OPSET"]

DEFAULT_OPSET = 17  # read by every onnxruntime since 1.11
MIN_OPSET = 13      # the first opset whose Softmax normalises along one axis only
MAX_MODEL_BYTES = 2**31 - 1  # a protobuf message is limited to 2 GiB

ACTIVATION_OPS = {"identity": None, "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}
INPUT_NAME, OUTPUT_NAME, BATCH_DIM = "X", "Y", "batch"


def export(net, path, opset=None):
    """Write net to path as an ONNX model and return the onnx.ModelProto.

    path: a str or os.PathLike, written exactly as given (no suffix is added
        and an existing file is replaced), or a binary file object with a
        write method, which receives the serialized model.
    opset: the ONNX operator set, an integer from MIN_OPSET (13) to the newest
        the installed onnx knows; the default is DEFAULT_OPSET (17). A runtime
        may not yet read the newest opsets.
    The model takes X in the net's dtype (float32 by default): cast with
    X.astype(np.float32) before session.run, since onnxruntime refuses float64
    input to a float32 model. The model is checked with onnx.checker
    (full_check=True) before anything is written. Raises ImportError when onnx is not installed, TypeError for a net
    that does not expose what a bpfast Network does (sizes, dtype, layers with
    W, b and activation) or a path of the wrong type, and ValueError
    for a bad opset or a model over the 2 GiB limit of one ONNX file.
    """
    if not _exposes_a_network(net):
        raise TypeError(f"net must be a bpfast Network (bpfast.Network or bpfast.reference.Network), or expose "
                        f"sizes, dtype and layers (W, b, activation) as one does; got {type(net).__name__}")
    if isinstance(path, (str, os.PathLike)):
        is_file = False
    elif callable(getattr(path, "write", None)):
        is_file = True
    else:
        raise TypeError(f"path must be a str, an os.PathLike or a binary file object with a write method; "
                        f"got {type(path).__name__}")
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as error:
        raise ImportError('exporting to ONNX needs the onnx package: pip install "bpfast[onnx]" where bpfast '
                          'comes from a package index, pip install ".[onnx]" from a checkout of bpfast (in its '
                          'root folder), or pip install onnx') from error
    opset = _checked_opset(opset, onnx.defs.onnx_opset_version())

    model = _build_model(onnx, net, opset)
    if model.ByteSize() > MAX_MODEL_BYTES:
        raise ValueError(f"the model takes {model.ByteSize()} bytes, over the 2 GiB limit of one ONNX file")
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    if is_file:
        path.write(data)
    else:
        with open(path, "wb") as file:
            file.write(data)
    return model


def _exposes_a_network(net):
    """Whether net exposes what export reads, as a bpfast Network does: sizes (a list of
    ints), dtype (float32 or float64) and one layer per pair of sizes, each with W of shape
    (n_out, n_in) and b of shape (n_out,) in that dtype, and an activation ONNX has."""
    try:
        sizes, layers, dtype = net.sizes, net.layers, np.dtype(net.dtype)
        if not (isinstance(sizes, list) and all(isinstance(n, numbers.Integral) for n in sizes)
                and isinstance(layers, list) and len(layers) == len(sizes) - 1
                and dtype in (np.float32, np.float64)):
            return False
        return all(isinstance(layer.W, np.ndarray) and layer.W.shape == (n_out, n_in) and layer.W.dtype == dtype
                   and isinstance(layer.b, np.ndarray) and layer.b.shape == (n_out,) and layer.b.dtype == dtype
                   and isinstance(layer.activation, str) and layer.activation in ACTIVATION_OPS
                   for layer, n_in, n_out in zip(layers, sizes[:-1], sizes[1:]))
    except (AttributeError, TypeError, ValueError):
        return False


def _checked_opset(opset, newest):
    """opset as an int: DEFAULT_OPSET for None, else an integer in [MIN_OPSET, newest]."""
    if opset is None:
        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {newest} (the newest the installed "
                         f"onnx knows); got {opset!r}")
    return int(opset)


def _build_model(onnx, net, opset):
    """The ModelProto of net: per layer Gemm(transB=1) and its activation, as the module doc says."""
    helper = onnx.helper
    elem_type = helper.np_dtype_to_tensor_dtype(np.dtype(net.dtype))
    nodes, initializers = [], []
    value = INPUT_NAME
    last = len(net.layers) - 1
    for l, layer in enumerate(net.layers):
        op = ACTIVATION_OPS[layer.activation]
        z_name = OUTPUT_NAME if l == last and op is None else f"Z{l}"
        initializers += [onnx.numpy_helper.from_array(np.array(layer.W), f"W{l}"),
                         onnx.numpy_helper.from_array(np.array(layer.b), f"b{l}")]
        nodes.append(helper.make_node("Gemm", [value, f"W{l}", f"b{l}"], [z_name], name=f"layer{l}_gemm",
                                      transB=1))
        value = z_name
        if op is not None:
            a_name = OUTPUT_NAME if l == last else f"A{l}"
            attributes = {"axis": -1} if op == "Softmax" else {}
            nodes.append(helper.make_node(op, [value], [a_name], name=f"layer{l}_{layer.activation}",
                                          **attributes))
            value = a_name
    graph = helper.make_graph(
        nodes, "bpfast_network",
        [helper.make_tensor_value_info(INPUT_NAME, elem_type, [BATCH_DIM, net.sizes[0]])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem_type, [BATCH_DIM, net.sizes[-1]])],
        initializer=initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="bpfast",
                              producer_version=__version__, doc_string=_describe(net))
    model.ir_version = helper.find_min_ir_version_for(opsets)  # the oldest IR that opset allows
    helper.set_model_props(model, {"bpfast.dtype": np.dtype(net.dtype).name,
                                   "bpfast.compute": getattr(net, "compute", np.dtype(net.dtype).name)})
    return model


def _describe(net):
    """One line on the architecture, for the model's doc_string."""
    layers = ", ".join(f"{n_in}->{n_out} {layer.activation}"
                       for layer, n_in, n_out in zip(net.layers, net.sizes[:-1], net.sizes[1:]))
    compute = getattr(net, "compute", np.dtype(net.dtype).name)
    trained = ("" if compute == np.dtype(net.dtype).name else
               f"; trained with {compute} products (mixed precision): the weights here are its "
               f"{np.dtype(net.dtype).name} master weights and the model computes in {np.dtype(net.dtype).name}")
    return (f"bpfast Network {net.sizes} in {np.dtype(net.dtype).name}{trained}; input X must be "
            f"{np.dtype(net.dtype).name}; per layer Z = X·Wᵀ + b (Gemm, transB=1) then the activation: {layers}")
