"""The C++ kernels of bpfast, for float32 and float64 arrays.

Each function has the same name and signature as its numpy twin in
``bpfast.reference``, plus optional ``out`` buffers. Inputs are used as they
are (zero-copy) when they are C-contiguous and of the working dtype, and are
converted once otherwise. The working dtype is float32 when every input is
float32 and float64 otherwise. An ``out`` buffer must already be C-contiguous,
writeable, of the working dtype and of the right shape: it is never replaced
by a copy. The GIL is released while a kernel runs.
"""

import numpy as np

from . import _core, _precision, _tuning
from ._validate import native

__all__ = [
    "matmul", "weight_gradient", "input_gradient", "round_to_bfloat16",
    "activation_forward", "activation_backward", "softmax", "softmax_backward",
    "dense_forward", "dense_backward",
    "squared_error", "log_loss", "binary_cross_entropy",
    "softmax_cross_entropy", "sigmoid_cross_entropy", "poisson",
    "softmax_clipped_log_loss", "sigmoid_clipped_log_loss", "loss",
    "sgd_update", "sgd_momentum_update", "adam_update", "clip_by_global_norm", "isa",
]

def isa():
    """The instruction set in use: "amx", "avx512_bf16" (both: the float kernels of avx512 and
    their own bfloat16 products), "avx512", "avx2" or "generic"; BPFAST_ISA forces one, and also
    "amx_model" (the AMX kernel on a software model of its instructions, for tests) and
    "amx_model_bf16_packers" (the same with the AMX unit's packers, on a CPU with AVX512_BF16)."""
    return _core.isa


def _inputs(**arrays):
    """(core submodule, dtype, converted arrays) for named input arrays."""
    converted = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.kind not in "iuf":
            raise TypeError(f"{name} must hold real numbers (an integer or float dtype); got dtype {array.dtype}")
        converted[name] = array
    # the dtype every input has when the core is built for it, else the widest one it is built for
    dtypes = {a.dtype for a in converted.values()}
    dtype = dtypes.pop() if len(dtypes) == 1 else None
    dtype = dtype if dtype in _CORES else _precision.WIDEST
    return _CORES[dtype], dtype, [native(a, dtype) for a in converted.values()]


_CORES = {dtype: row.core for dtype, row in _precision.BY_STORAGE.items()}


def _as_they_are(a, b, out=None):
    """The core submodule when a and b can go to it untouched (2-D numpy arrays of one float
    dtype, C-contiguous and aligned) and out is None or a numpy array of that dtype (the core
    checks its shape and layout, as on the checked path): the products' fast path, a few
    hundred ns of checks instead of _inputs' conversions. None otherwise."""
    if type(a) is not np.ndarray or type(b) is not np.ndarray or a.dtype != b.dtype or a.ndim != 2 or b.ndim != 2:
        return None
    if out is not None and (type(out) is not np.ndarray or out.dtype != a.dtype):
        return None
    core = _CORES.get(a.dtype)
    if core is None:
        return None
    fa, fb = a.flags, b.flags
    return core if fa.c_contiguous and fb.c_contiguous and fa.aligned and fb.aligned else None


def _output(out, shape, dtype, name="out"):
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray) or out.dtype != dtype:
        got = out.dtype if isinstance(out, np.ndarray) else type(out).__name__
        raise TypeError(f"{name} must be a numpy array of dtype {dtype} to match the inputs; got {got}")
    return out


def _rows(array, name):
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {array.shape}")
    return array.shape


# ---------------------------------------------------------------- GEMM shapes

def _computing(core, dtype, compute):
    """The core submodule that runs products of dtype operands as compute asks: the dtype's own
    (compute None or the dtype's name) or mixed precision's (compute "bfloat16", float32 operands)."""
    _tuning.ensure_chosen()  # (the GEMM kernel, at the first product of the process)
    if compute is None:
        return core
    key = (dtype, compute)
    found = _COMPUTING.get(key)
    if found is None:
        try:
            found = _COMPUTING[key] = _precision.row(dtype, compute).core
        except ValueError as error:
            raise ValueError(f"{error} (the operands' dtype)") from None
    return found


_COMPUTING = {}  # (dtype, compute) -> core submodule, filled as calls ask


def matmul(A, B, trans_a=False, trans_b=False, compute=None, out=None):
    """op(A)·op(B), where op transposes when its flag is set; no transpose is materialised.

    compute: None (products in the operands' dtype) or "bfloat16" (float32 operands, each rounded
    to bfloat16 as it is packed, products summed in float32)."""
    core = _as_they_are(A, B, out)
    if core is not None:
        if out is None:
            out = np.empty((A.shape[1] if trans_a else A.shape[0], B.shape[0] if trans_b else B.shape[1]), A.dtype)
        _computing(core, A.dtype, compute).matmul(A, B, bool(trans_a), bool(trans_b), out)
        return out
    core, dtype, (A, B) = _inputs(A=A, B=B)
    m = _rows(A, "A")[1 if trans_a else 0]
    n = _rows(B, "B")[0 if trans_b else 1]
    out = _output(out, (m, n), dtype)
    _computing(core, dtype, compute).matmul(A, B, bool(trans_a), bool(trans_b), out)
    return out


def weight_gradient(delta, X, compute=None, out=None, accumulate=False):
    """dW = δᵀ·X (or dW += δᵀ·X into ``out`` with accumulate=True); compute as for matmul.

    delta is (batch, n_out), X is (batch, n_in), dW is (n_out, n_in).
    """
    if accumulate and out is None:
        raise ValueError("out must be given when accumulate is True")
    core = _as_they_are(delta, X, out)
    if core is not None:
        if out is None:
            out = np.empty((delta.shape[1], X.shape[1]), delta.dtype)
        _computing(core, delta.dtype, compute).weight_gradient(delta, X, out, bool(accumulate))
        return out
    core, dtype, (delta, X) = _inputs(delta=delta, X=X)
    out = _output(out, (_rows(delta, "delta")[1], _rows(X, "X")[1]), dtype)
    _computing(core, dtype, compute).weight_gradient(delta, X, out, bool(accumulate))
    return out


def input_gradient(delta, W, compute=None, out=None):
    """dX = δ·W. delta is (batch, n_out), W is (n_out, n_in), dX is (batch, n_in); compute as for matmul."""
    core = _as_they_are(delta, W, out)
    if core is not None:
        if out is None:
            out = np.empty((delta.shape[0], W.shape[1]), delta.dtype)
        _computing(core, delta.dtype, compute).input_gradient(delta, W, out)
        return out
    core, dtype, (delta, W) = _inputs(delta=delta, W=W)
    out = _output(out, (_rows(delta, "delta")[0], _rows(W, "W")[1]), dtype)
    _computing(core, dtype, compute).input_gradient(delta, W, out)
    return out


def round_to_bfloat16(x):
    """float32 x rounded to the nearest bfloat16 (ties to even), as float32 values: what the
    bfloat16 products read (NaN stays NaN; past the largest bfloat16, ±Inf; a float32
    subnormal becomes a zero of its sign, as VCVTNE2PS2BF16 rounds it)."""
    x = native(np.asarray(x, np.float32) if np.asarray(x).dtype != np.float32 else x, np.float32)
    out = np.empty_like(x)
    _core.round_to_bfloat16(x.reshape(-1), out.reshape(-1))
    return out


# ---------------------------------------------------------------- activations

def activation_forward(Z, name, out=None):
    """A = act(Z) for identity, sigmoid, tanh, relu or (row-wise) softmax."""
    core, dtype, (Z,) = _inputs(Z=Z)
    out = _output(out, Z.shape, dtype)
    core.activation_forward(Z, name, out)
    return out


def activation_backward(dA, A, name, out=None):
    """dZ = dA ⊙ σ'(Z) from the stored output A: y(1−y), 1−y², [y>0], or softmax's J·dA."""
    core, dtype, (dA, A) = _inputs(dA=dA, A=A)
    out = _output(out, A.shape, dtype)
    core.activation_backward(dA, A, name, out)
    return out


def softmax(Z, out=None):
    """Row-wise softmax of Z (batch, n), shifted by the row max."""
    return activation_forward(Z, "softmax", out)


def softmax_backward(dY, Y, out=None):
    """δx = J·δy with J_ij = y_i(1{i=j} − y_j), row by row, without forming J."""
    return activation_backward(dY, Y, "softmax", out)


# ---------------------------------------------------------------- dense layer

def dense_forward(X, W, b, activation, compute=None, out=None):
    """A = act(X·Wᵀ + b). X is (batch, n_in), W is (n_out, n_in), b is (n_out,); compute as for matmul."""
    core, dtype, (X, W, b) = _inputs(X=X, W=W, b=b)
    out = _output(out, (_rows(X, "X")[0], _rows(W, "W")[0]), dtype)
    _computing(core, dtype, compute).dense_forward(X, W, b, activation, out)
    return out


def dense_backward(dA, X, W, A, activation, need_dx=True, compute=None, dX=None, dW=None, db=None):
    """(dX, dW, db) from dA, the gradient with respect to the layer output A.

    δ = dA ⊙ σ'(A);  dX = δ·W;  dW = δᵀ·X;  db = Σ_rows δ.  dX is None when
    need_dx is false. compute as for matmul.
    """
    core, dtype, (dA, X, W, A) = _inputs(dA=dA, X=X, W=W, A=A)
    batch, n_in = _rows(X, "X")
    n_out = _rows(W, "W")[0]
    dX = _output(dX, (batch, n_in), dtype, "dX") if need_dx else None
    dW = _output(dW, (n_out, n_in), dtype, "dW")
    db = _output(db, (n_out,), dtype, "db")
    _computing(core, dtype, compute).dense_backward(dA, X, W, A, activation, dX, dW, db)
    return dX, dW, db


# ---------------------------------------------------------------- losses

def loss(name, Y, T, reduction="mean", grad=None):
    """(value, gradient) of the loss called ``name`` for outputs (or logits) Y against targets T.

    Names: squared_error, log_loss, binary_cross_entropy (on outputs) and
    softmax_cross_entropy, sigmoid_cross_entropy (on logits). The value is
    summed over the batch and divided by the batch size for reduction "mean";
    so is the gradient.
    """
    core, dtype, (Y, T) = _inputs(Y=Y, T=T)
    grad = _output(grad, Y.shape, dtype, "grad")
    return core.loss(name, Y, T, reduction, grad), grad


def squared_error(Y, T, reduction="mean", grad=None):
    """½‖y − t‖² per sample; gradient y − t."""
    return loss("squared_error", Y, T, reduction, grad)


def log_loss(Y, T, reduction="mean", grad=None):
    """−Σ t·log y per sample on probabilities, y clamped below at the dtype's eps; gradient −t/y."""
    return loss("log_loss", Y, T, reduction, grad)


def binary_cross_entropy(Y, T, reduction="mean", grad=None):
    """−Σ [t·log y + (1−t)·log(1−y)], y clamped to [eps, 1−eps]; gradient (y−t)/(y(1−y))."""
    return loss("binary_cross_entropy", Y, T, reduction, grad)


def softmax_cross_entropy(Z, T, reduction="mean", grad=None):
    """Cross-entropy of softmax(Z) from the logits, through log-sum-exp; gradient softmax(Z) − t."""
    return loss("softmax_cross_entropy", Z, T, reduction, grad)


def sigmoid_cross_entropy(Z, T, reduction="mean", grad=None):
    """Binary cross-entropy of sigmoid(Z) from the logits; gradient sigmoid(Z) − t."""
    return loss("sigmoid_cross_entropy", Z, T, reduction, grad)


def poisson(Z, T, reduction="mean", grad=None):
    """Half the Poisson deviance from the log-rate Z: t·log(t/μ) − t + μ, μ = exp z; gradient μ − t."""
    return loss("poisson", Z, T, reduction, grad)


def softmax_clipped_log_loss(Z, T, reduction="mean", grad=None):
    """scikit-learn's log-loss of softmax(Z), probabilities clipped to [eps, 1 − eps]; gradient softmax(Z) − t."""
    return loss("softmax_clipped_log_loss", Z, T, reduction, grad)


def sigmoid_clipped_log_loss(Z, T, reduction="mean", grad=None):
    """scikit-learn's binary log-loss of sigmoid(Z), clipped likewise; gradient sigmoid(Z) − t."""
    return loss("sigmoid_clipped_log_loss", Z, T, reduction, grad)


# ---------------------------------------------------------------- optimizer
# In-place updates of one parameter array, PyTorch's formulas (see bpfast.optim)
# or, with form="sklearn", scikit-learn's.
# param and its state arrays must be C-contiguous float32 or float64 arrays of
# one dtype: they are updated in place, never through a copy.

def _updated(array, name, dtype=None):
    if not isinstance(array, np.ndarray) or array.dtype not in _CORES:
        raise TypeError(f"{name} must be a {_precision.names_text()} numpy array updated in place")
    if dtype is not None and array.dtype != dtype:
        raise TypeError(f"{name} must have the dtype of param ({dtype}); got {array.dtype}")
    return array


def _core_for(dtype):
    return _CORES[dtype]


def sgd_update(param, grad, lr):
    """param ← param − lr·grad, in place."""
    _updated(param, "param")
    _core_for(param.dtype).sgd_update(param, native(grad, param.dtype), None, float(lr), 0.0, False, 0.0)


def sgd_momentum_update(param, grad, velocity, lr, momentum, nesterov, weight_decay, *, form="pytorch"):
    """torch.optim.SGD: g ← g + λθ; b ← μb + g; g ← g + μb (Nesterov) or b; θ ← θ − lr·g.

    form="sklearn" is scikit-learn's velocity form instead: g ← g + λθ;
    b ← μb − lr·g; θ ← θ + μb − lr·g (Nesterov) or θ + b.
    param and velocity (b; may be None when momentum is 0) are updated in place.
    """
    _updated(param, "param")
    if velocity is not None:
        _updated(velocity, "velocity", param.dtype)
    _core_for(param.dtype).sgd_update(param, native(grad, param.dtype), velocity, float(lr), float(momentum),
                                      bool(nesterov), float(weight_decay), form)


def adam_update(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled, *, form="pytorch"):
    """torch.optim.Adam (L2 in the gradient) or AdamW (decoupled decay) at step ≥ 1.

    form="sklearn" places ε as scikit-learn does:
    θ ← θ − lr·√(1−β2ᵗ)/(1−β1ᵗ) · m/(√v + ε). param, m and v are updated in place.
    """
    _updated(param, "param")
    _updated(m, "m", param.dtype)
    _updated(v, "v", param.dtype)
    _core_for(param.dtype).adam_update(param, native(grad, param.dtype), m, v, int(step), float(lr), float(beta1),
                                       float(beta2), float(eps), float(weight_decay), bool(decoupled), form)


def clip_by_global_norm(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_: scale all grads in place by max_norm / (norm + 1e-6)
    when that is below 1, norm being their global L2 norm; returns that norm."""
    grads = list(grads)
    if not grads:
        return 0.0
    _updated(grads[0], "grads[0]")
    for i, g in enumerate(grads[1:], 1):
        _updated(g, f"grads[{i}]", grads[0].dtype)
    return _core_for(grads[0].dtype).clip_by_global_norm(grads, float(max_norm))
