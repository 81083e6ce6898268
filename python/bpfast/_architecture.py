"""A Network's architecture: the checks of its description and the initial weights."""

import numpy as np

from . import _validate as check


def checked(sizes, activation, output, loss, reduction, dtype):
    """(sizes, hidden activations, output, loss, reduction, dtype) as the constructor
    takes them, each checked; nothing is allocated (load checks a file's with this)."""
    sizes = check.layer_sizes(sizes)
    n_hidden = len(sizes) - 2
    if isinstance(activation, str):
        hidden = [check.choice(activation, check.ACTIVATIONS, "activation")] * n_hidden
    else:
        hidden = list(activation)
        if len(hidden) != n_hidden:
            raise ValueError(f"activation must be one name or a list of {n_hidden} names "
                             f"(one per hidden layer); got {len(hidden)} names")
        for i, name in enumerate(hidden):
            check.choice(name, check.ACTIVATIONS, f"activation[{i}]")
    output = check.choice(output, check.OUTPUTS, "output")
    if loss is None:
        loss = "squared_error" if output == "identity" else "cross_entropy"
    loss = check.choice(loss, check.LOSSES, "loss")
    if output not in check.LOSS_OUTPUTS[loss]:
        raise ValueError(f"loss {loss!r} needs an output of {' or '.join(check.LOSS_OUTPUTS[loss])}; "
                         f"got output={output!r}")
    reduction = check.choice(reduction, check.REDUCTIONS, "reduction")
    return sizes, hidden, output, loss, reduction, np.dtype(check.dtype_name(dtype))


INITIAL_DRAW_CHUNK = 1 << 16  # values drawn at a time: a 512 KiB float64 temporary at most


def initialise_weights(weights, activations, seed):
    """He initialisation for relu layers, Glorot (uniform) for the others,
    written into each (n_out, n_in) array of ``weights`` in place.

    The values are drawn in float64 from numpy's default Generator seeded by
    ``seed`` and cast on the way in, so one seed gives the same net in both
    dtypes. They are drawn a chunk at a time (the same stream as one draw of
    the whole matrix), so that a big net needs no float64 copy of a layer.
    """
    rng = np.random.default_rng(seed)
    for W, activation in zip(weights, activations):
        n_out, n_in = W.shape
        flat = W.reshape(-1)  # a view: the native arrays are C-contiguous
        for start in range(0, flat.size, INITIAL_DRAW_CHUNK):
            count = min(INITIAL_DRAW_CHUNK, flat.size - start)
            if activation == "relu":
                draw = rng.standard_normal(count)
                draw *= np.sqrt(2.0 / n_in)
            else:
                limit = np.sqrt(6.0 / (n_in + n_out))
                draw = rng.uniform(-limit, limit, size=count)
            flat[start:start + count] = draw
