"""Checks on user input. Every error names the argument, what was expected and what came."""

import math
import numbers

import numpy as np

from . import _core, _precision, optim

# The core's name tables (cpp/names.h), narrowed to what the Network API takes.
ACTIVATIONS = tuple(name for name in _core.names["activation"] if name != "softmax")  # hidden layers
OUTPUTS = ("identity", "sigmoid", "softmax")
LOSSES = ("squared_error", "cross_entropy", "log_loss", "binary_cross_entropy")  # cross_entropy: fused
REDUCTIONS = _core.names["reduction"]
DTYPES = _precision.DTYPE_NAMES

# Which output activations each loss accepts.
LOSS_OUTPUTS = {
    "squared_error": ("identity", "sigmoid", "softmax"),
    "cross_entropy": ("sigmoid", "softmax"),
    "log_loss": ("sigmoid", "softmax"),
    "binary_cross_entropy": ("sigmoid",),
}


def choice(value, allowed, name):
    """Return value if it is one of the allowed names, else raise ValueError."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def dtype_name(dtype):
    try:
        name = None if dtype is None else np.dtype(dtype).name  # np.dtype(None) would be float64
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be {_precision.names_text()}; got {dtype!r}")
    return name


def layer_sizes(sizes):
    """The layer widths as a list of ints: a sequence (list, tuple, range or 1-D array) of at least
    two positive integers, each at most the core's limit of values in one buffer."""
    if isinstance(sizes, np.ndarray) and sizes.ndim == 1:
        sizes = sizes.tolist()
    if not isinstance(sizes, (list, tuple, range)) or len(sizes) < 2:
        raise ValueError(f"sizes must be a list of at least two layer widths; got {sizes!r}")
    widths = [positive_int(n, f"sizes[{i}]") for i, n in enumerate(sizes)]
    for i, n in enumerate(widths):
        if n > _core.MAX_VALUES:
            raise ValueError(f"sizes[{i}] must be at most 2^48; got {n}")
    return widths


def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
    return int(value)


def boolean(value, name):
    """True or False (numpy's bools too), else ValueError."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def seed(value):
    """A network's seed: None (fresh entropy) or a non-negative integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"seed must be None or a non-negative integer; got {value!r}")
    return int(value)


def optimizer(value):
    """An optimizer from bpfast.optim, else TypeError."""
    if not isinstance(value, optim._Optimizer):
        raise TypeError(f"optimizer must be a bpfast.optim optimizer (SGD, Adam, AdamW); got {value!r}")
    return value


def callbacks(value):
    """fit's callbacks as a list: a list or tuple of callables f(epoch, logs)."""
    if callable(value) or not isinstance(value, (list, tuple)):
        raise TypeError(f"callbacks must be a list of callables f(epoch, logs); got {value!r} "
                        "(wrap a single callback in a list)")
    for i, callback in enumerate(value):
        if not callable(callback):
            raise TypeError(f"callbacks[{i}] must be a callable f(epoch, logs); got {callback!r}")
    return list(value)


def learning_rate(value):
    """lr as a training call takes it: None (the optimizer's own) or a finite positive float;
    the core's rule (_core.base_rate), ValueError naming lr otherwise."""
    return _core.base_rate(value)


def native(array, dtype):
    """array as the core reads it: C-contiguous, of dtype and aligned to it
    (numpy can hold misaligned views, e.g. from a buffer at an odd offset);
    zero-copy when it already is."""
    if getattr(array, "dtype", None) != dtype:  # a cast: what overflows it is refused by the finiteness check after it
        with np.errstate(over="ignore"):
            array = np.asarray(array, dtype=dtype)
    array = np.ascontiguousarray(array)
    return array if array.flags.aligned else array.copy()


def _numeric_array(value, name, bools=False, hint=""):
    """value as a numpy array of a real (or, with bools, bool) dtype, else TypeError naming it;
    hint is appended to the message when value holds strings or objects."""
    array = np.asarray(value)
    if array.dtype.kind not in ("iufb" if bools else "iuf"):
        kinds = "real numbers or bools (an integer, float or bool dtype)" if bools else \
            "real numbers (an integer or float dtype)"
        raise TypeError(f"{name} must hold {kinds}; got dtype {array.dtype}"
                        + (hint if array.dtype.kind in "USO" else ""))
    return array


def all_finite(array):
    """Whether a float array holds no NaN or Inf."""
    answer = _core.all_finite(array)  # one fast pass, no temporary array
    return bool(np.isfinite(array).all()) if answer is None else answer


def _check_finite(array, name):
    if array.dtype.kind == "f" and not all_finite(array):
        raise ValueError(f"{name} must be finite in {array.dtype}; it holds NaN or Inf "
                         f"(or values beyond the range of {array.dtype})")


def batch(X, n_in, dtype, name="X"):
    """X as a C-contiguous (batch, n_in) array of dtype; zero-copy when it already is one."""
    X = _numeric_array(X, name)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (batch, {n_in}); got {X.ndim}-D shape {X.shape}")
    if X.shape[1] != n_in:
        raise ValueError(f"{name} must have shape (batch, {n_in}); got {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch: shape {X.shape}; at least one row is needed")
    X = native(X, dtype)
    _check_finite(X, name)  # after the cast: 1e300 is finite in float64 and Inf in float32
    return X


def string_labels_hint(name):
    """What targets() adds to its refusal of strings (class names, say): the way forward."""
    encode = (f"classes, {name} = np.unique({name}, return_inverse=True)" if name == "T" else
              f"{name} = np.searchsorted(classes, {name}) after classes, T = np.unique(T, return_inverse=True)")
    return (f" (class names are not labels here: encode them as class indices first, {encode}, "
            "and predict's labels then index classes; or use bpfast.sklearn.MLPClassifier, which takes "
            "any labels and gives them back)")


def targets(T, batch_size, n_out, dtype, takes_labels, name="T", x_name="X"):
    """(dense, labels): T as a C-contiguous (batch, n_out) array of dtype and
    None, or None and integer class labels of shape (batch,) as int64.

    Dense targets are real or bool; a single-output net also takes them with
    shape (batch,). For a classification loss, a T of shape (batch,) holds
    class labels: integers, bools, or floats with whole values, in
    [0, n_out) (in {0, 1} when the output has a single unit). The engine
    one-hot encodes labels a batch at a time. x_name: the inputs T must match, as the
    messages name them (X, or X_val for fit's validation_data).
    """
    T = _numeric_array(T, name, bools=True, hint=string_labels_hint(name))
    if T.ndim == 1:
        if T.shape[0] != batch_size:
            raise ValueError(f"{name} must have {batch_size} rows to match {x_name}; got shape {T.shape}")
        if takes_labels:
            return None, _labels(T, n_out, name)
        if n_out != 1:
            raise ValueError(f"{name} must have shape ({batch_size}, {n_out}); got {T.shape} (a 1-D target fits "
                             "a single-output net; class labels need a classification loss)")
        T = T.reshape(batch_size, 1)
    if T.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape ({batch_size}, {n_out}) or 1-D; "
                         f"got {T.ndim}-D shape {T.shape}")
    if T.shape != (batch_size, n_out):
        raise ValueError(f"{name} must have shape ({batch_size}, {n_out}) to match {x_name} and the output layer; "
                         f"got {T.shape}")
    T = native(T, dtype)
    _check_finite(T, name)  # after the cast, as for X
    return T, None


def _labels(T, n_out, name):
    """Class labels of shape (batch,) as int64, checked by the core's label-range rule
    (cpp/model/targets.h: first_label_out_of_range and its message), as the bindings check them."""
    if T.dtype.kind == "f":
        _check_finite(T, name)
        fractional = np.flatnonzero(T != np.floor(T))
        if fractional.size:
            i = int(fractional[0])
            raise ValueError(f"{name} labels must be whole numbers (class indices); got {T[i]:g} at index {i} "
                             f"(targets such as probabilities need shape ({T.shape[0]}, {n_out}))")
    # Beyond ±2^62 a label is out of range for any net; clipped there, every label fits int64.
    if T.dtype.kind == "f":
        labels = np.clip(T, -2.0 ** 62, 2.0 ** 62).astype(np.int64)
    elif T.dtype.kind == "u":
        labels = np.minimum(T, np.uint64(2 ** 62)).astype(np.int64)
    else:
        labels = native(T, np.int64)
    if _core.first_label_out_of_range(labels, n_out) >= 0:
        low, high = (f"{v:g}" if T.dtype.kind == "f" else str(v) for v in (T.min(), T.max()))
        raise ValueError(_core.label_range_message(name, n_out, low, high))
    return labels


def parameter(value, shape, dtype, name):
    """A weight or bias array to assign: right shape, real and finite."""
    value = _numeric_array(value, name)
    if value.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {value.shape}")
    with np.errstate(over="ignore"):
        value = value.astype(dtype, copy=False)
    _check_finite(value, name)  # after the cast, as for X
    return value
