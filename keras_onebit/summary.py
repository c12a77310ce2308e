"""Memory and operations per precision (like larq's `models.summary`).

For each layer, nested models and layers included (`keras_onebit.layer_walk`):
the weights stored at one bit, the parameters kept as float32, the bytes the
layer takes when deployed with one bit per binary weight, and its
multiply-accumulates (MACs) for the model's input shape, by precision. The
totals include the figures of the Bi-Real Net paper (Liu et al., ECCV 2018,
table 4; SPEC §3): memory in Mbit and OPs = float ops + binary ops / 64.

Counting conventions:

- **Binary weights**: the kernel of a layer that is one-bit now
  (`keras_onebit.layers.is_binary`), `layer.precision` bits each (1).
- **Deployed bytes** (`float_parameters`, `onebit_bytes`; what
  `export.save_packed` stores): every other variable at 4 bytes, BN moving
  statistics included; a binary layer's scale counts 1 float ("he", a
  constant) or C_out floats ("mean_abs").
- **Real parameters** (`real_params`, `memory_mbit`; the paper's
  convention): the paper's ResNet-18 memory, 374.1 Mbit, is its 11.69M
  PyTorch parameters x 32 bits: conv and dense weights and biases and BN
  gamma/beta, not the BN running statistics. Here a BatchNormalization
  counts 2 floats per channel, the affine y = a * x + b it folds into at
  inference (the paper's gamma/beta; from the moving statistics alone when
  gamma/beta are fixed, as in McDonnell's WRN), and its moving statistics
  are not counted again. Binary layers' scales and biases count as real,
  every other float variable as itself; boolean or integer variables (the
  `binary_on` switch) do not count. Bi-Real-18: 33.64 Mbit vs the paper's
  33.6 (33.51 without the 3,840 mean-|W| scales); Bi-Real-34: 44.09 vs 43.7.
- **MACs**, per sample, of Dense, Conv1D/2D/3D (and their transposes),
  DepthwiseConv1D/2D and SeparableConv1D/2D: output elements x fan-in per
  group (a transposed conv: input elements x kernel size x filters). A layer
  with binary weights and binary inputs (an `input_quantizer` of precision
  1, Bi-Real) gives binary MACs (XNOR-popcount); binary weights on real
  inputs (McDonnell) give binary-weight MACs: real multiply-accumulates by
  +-alpha, float ops, reported apart; everything else gives float MACs.
  Pooling, BN, additions and activations count nothing, as in the papers.
  Shapes come from each layer's output in its functional graph (the inner
  graph of a nested model); a layer shared by several calls counts its first
  call; a layer with no graph output (the sub-layers of a custom layer) or
  an unknown (None) size is listed in `macs_unknown` and counts 0.
- **OPs** (Bi-Real): `float_ops` = float MACs + binary-weight MACs (one op
  per MAC, as the paper's 1.63e8 for Bi-Real-18 counts),
  `binary_ops` = binary MACs, `ops` = float_ops + binary_ops / 64.
  Bi-Real-18: 1.64e8 vs the paper's 1.63e8; Bi-Real-34: 1.93e8 (1.93e8).
"""

import math

import keras

from keras_onebit.layer_walk import named_layers, weight_owners
from keras_onebit.layers import is_binary

MB = 1e6
REAL_BITS = 32
BINARY_OPS_PER_OP = 64  # Bi-Real Net: a 64-bit CPU does 64 XNOR-popcount MACs per instruction

CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
CONV_TRANSPOSES = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                   keras.layers.Conv3DTranspose)
DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
MAC_LAYERS = (keras.layers.Dense,) + CONVS + CONV_TRANSPOSES + DEPTHWISE + SEPARABLE

MAC_KINDS = ("binary_macs", "binary_weight_macs", "float_macs")


def layer_memory(layer, weights=None):
    """The binary weights and float parameters of one layer when deployed.

    Args:
        layer: a Keras layer.
        weights: the variables to count for a float layer (default
            `layer.weights`; `summary` passes the ones the layer holds
            itself, not through a sub-layer).

    Returns:
        A tuple (binary weights, float parameters): a binary layer stores its
        kernel at one bit and its scale as float32 (one value per layer, or
        one per output channel) plus its other weights but the `binary_on`
        switch; a float layer stores every variable as float32, BN moving
        statistics included.
    """
    weights = layer.weights if weights is None else weights
    if not _binary_kernel(layer):
        return 0, sum(math.prod(w.shape) for w in weights)
    others = sum(math.prod(w.shape) for w in layer.extra_weights())
    return math.prod(layer.kernel.shape), _scales(layer) + others


def real_parameters(layer, weights=None):
    """The real-valued parameters of one layer in the papers' convention.

    Args:
        layer: a Keras layer.
        weights: the variables the layer holds itself (default
            `layer.weights`).

    Returns:
        An int: a binary layer's scales and other float weights (bias); 2 per
        channel for a BatchNormalization (its folded inference affine, moving
        statistics not counted again); the floating-point variables of any
        other layer. Boolean and integer variables do not count.
    """
    weights = layer.weights if weights is None else weights
    if _binary_kernel(layer):
        return _scales(layer) + _float_size(layer.extra_weights())
    if isinstance(layer, keras.layers.BatchNormalization) and weights:
        return 2 * math.prod(layer.moving_mean.shape)
    return _float_size(weights)


def deployed_bytes(binary, floats):
    """Bytes of `binary` one-bit weights (rounded up) and `floats` float32 values.

    Args:
        binary: number of one-bit weights.
        floats: number of float32 values.

    Returns:
        An int, ceil(binary / 8) + 4 * floats.
    """
    return math.ceil(binary / 8) + 4 * floats


def layer_macs(layer):
    """Multiply-accumulates of one call of `layer` on one sample.

    Args:
        layer: a Keras layer, called in a functional graph (so that its
            output shape is known).

    Returns:
        An int (0 for a layer that has no MACs: pooling, BN, activations),
        or None for a Dense/conv layer whose shapes are unknown (never called
        in a functional graph, or a None dimension other than the batch).
    """
    if not isinstance(layer, MAC_LAYERS):
        return 0
    out = _sample_shape(layer, "output")
    if out is None:
        return None
    if isinstance(layer, SEPARABLE):
        depthwise = layer.depthwise_kernel.shape  # (k..., C_in, depth multiplier)
        spatial, mid = math.prod(out[:-1] if _last(layer) else out[1:]), math.prod(depthwise[-2:])
        return spatial * mid * math.prod(depthwise[:-2]) + spatial * mid * layer.filters
    if isinstance(layer, DEPTHWISE):
        return math.prod(out) * math.prod(layer.kernel.shape[:-2])
    if isinstance(layer, CONV_TRANSPOSES):
        inputs = _sample_shape(layer, "input")
        if inputs is None:
            return None
        return math.prod(inputs) * math.prod(layer.kernel.shape[:-1])  # (k..., filters, C_in)
    return math.prod(out) * math.prod(layer.kernel.shape[:-1])  # (k..., C_in / groups, C_out)


def mac_kind(layer):
    """Which precision the MACs of `layer` are counted in.

    Args:
        layer: a Keras layer.

    Returns:
        "binary_macs" (binary weights and binary inputs), "binary_weight_macs"
        (binary weights, real inputs: multiplies by +-alpha) or "float_macs".
    """
    if not is_binary(layer):
        return "float_macs"
    quantizer = getattr(layer, "input_quantizer", None)
    binary_inputs = quantizer is not None and getattr(quantizer, "precision", 1) == 1
    if binary_inputs and getattr(layer, "precision", 1) == 1:
        return "binary_macs"
    return "binary_weight_macs"


def summary(model, print_fn=print):
    """Prints and returns the memory and operations of `model` per precision.

    Every layer is counted once, nested models and layers included (a model
    wrapped in a `keras.Sequential` gives the same totals as the model). The
    counting conventions are in this module's docstring.

    Args:
        model: a built Keras model (or layer).
        print_fn: called once with the printed table, or None for no output.

    Returns:
        A dict with
        `layers`: one dict per layer holding weights (name, type,
            binary_weights, float_parameters, bytes);
        `profile`: one dict per layer holding weights or MACs (path, name,
            type, precision, binary_weights, float_parameters, bytes,
            real_params, macs, mac_kind, binary_macs, binary_weight_macs,
            float_macs);
        the deployed totals `binary_weights`, `float_parameters`,
            `binary_weight_bytes` (the binary weights at one bit),
            `onebit_bytes` (binary weights at one bit + float parameters at
            4 bytes) and `float32_bytes` (every weight of the model as float32);
        the papers' totals `real_params`, `memory_mbit` (binary weights x
            precision + real parameters x 32 bits, in 1e6 bits),
            `binary_macs`, `binary_weight_macs`, `float_macs`,
            `binary_ops` (= binary_macs), `float_ops` (float + binary-weight
            MACs), `ops` (float_ops + binary_ops / 64);
        `macs_unknown`: paths of the Dense/conv layers whose MACs could not
            be counted (no known output shape).
    """
    owners = weight_owners(model)
    profile, unknown = [], []
    for path, layer in _counted_layers(model):
        own = [w for w in layer.weights if owners.get(id(w)) is layer]
        binary, floats = layer_memory(layer, own)
        macs = layer_macs(layer)
        if macs is None:
            unknown.append(path)
            macs = 0
        if not (binary or floats or macs):
            continue
        row = {
            "path": path, "name": layer.name, "type": type(layer).__name__,
            "precision": getattr(layer, "precision", 32) if binary else 32,
            "binary_weights": binary, "float_parameters": floats,
            "bytes": deployed_bytes(binary, floats),
            "real_params": real_parameters(layer, own), "macs": macs,
            "mac_kind": mac_kind(layer) if isinstance(layer, MAC_LAYERS) else None,
        }
        row.update({kind: macs if kind == row["mac_kind"] else 0 for kind in MAC_KINDS})
        profile.append(row)

    def total(key):
        return sum(r[key] for r in profile)

    binary, real = total("binary_weights"), total("real_params")
    float_ops = total("float_macs") + total("binary_weight_macs")
    bits = sum(r["binary_weights"] * r["precision"] for r in profile) + REAL_BITS * real
    result = {
        "layers": [{key: r[key] for key in ("name", "type", "binary_weights",
                                            "float_parameters", "bytes")}
                   for r in profile if r["binary_weights"] or r["float_parameters"]],
        "profile": profile,
        "binary_weights": binary,
        "float_parameters": total("float_parameters"),
        "binary_weight_bytes": math.ceil(binary / 8),
        "onebit_bytes": total("bytes"),
        "float32_bytes": 4 * sum(math.prod(w.shape) for w in model.weights),
        "real_params": real,
        "memory_mbit": bits / MB,
        **{kind: total(kind) for kind in MAC_KINDS},
        "binary_ops": total("binary_macs"),
        "float_ops": float_ops,
        "ops": float_ops + total("binary_macs") / BINARY_OPS_PER_OP,
        "macs_unknown": unknown,
    }
    if print_fn is not None:
        print_fn(format_summary(model.name, result))
    return result


def format_summary(name, result):
    """The table `summary` prints.

    Args:
        name: the model's name.
        result: the dict `summary` returns.

    Returns:
        A string: one line per layer (binary weights, float32 values, bytes
        deployed, real parameters, MACs and their precision) and the totals.
    """
    rows = result["profile"]
    path_width = max([28] + [len(r["path"]) + 2 for r in rows])
    type_width = max([20] + [len(r["type"]) + 2 for r in rows])
    header = (f"{'layer':<{path_width}}{'type':<{type_width}}{'1-bit weights':>14}"
              f"{'float32':>10}{'bytes':>12}{'real':>10}{'MACs':>16}  {'MAC type'}")
    lines = [f'Model "{name}" memory at one bit per weight and operations per precision',
             header, "-" * len(header)]
    kinds = {"binary_macs": "1b x 1b", "binary_weight_macs": "1b x 32b",
             "float_macs": "32b x 32b", None: ""}
    unknown = set(result["macs_unknown"])
    for r in rows:
        macs = "?" if r["path"] in unknown else f"{r['macs']:,}"
        lines.append(
            f"{r['path']:<{path_width}}{r['type']:<{type_width}}"
            f"{r['binary_weights']:>14,}{r['float_parameters']:>10,}{r['bytes']:>12,}"
            f"{r['real_params']:>10,}{macs:>16}  {kinds[r['mac_kind']]}".rstrip()
        )
    lines += [
        "-" * len(header),
        f"binary weights:   {result['binary_weights']:,} "
        f"= {result['binary_weight_bytes'] / MB:.2f} MB at one bit "
        f"(float32: {4 * result['binary_weights'] / MB:.1f} MB)",
        f"float parameters: {result['float_parameters']:,}",
        f"deployed total:   {result['onebit_bytes'] / MB:.2f} MB one-bit "
        f"vs {result['float32_bytes'] / MB:.1f} MB float32 "
        f"({result['float32_bytes'] / max(result['onebit_bytes'], 1):.1f}x smaller)",
    ]
    lines += [
        f"memory:           {result['memory_mbit']:.2f} Mbit = "
        f"{result['binary_weights']:,} binary weights x 1 bit + "
        f"{result['real_params']:,} real parameters x 32 bits",
        f"MACs:             {result['binary_macs']:.3g} binary (1-bit weights and "
        f"activations), {result['binary_weight_macs']:.3g} binary-weight (real inputs), "
        f"{result['float_macs']:.3g} float",
        f"OPs:              {result['ops']:.3g} = float ops {result['float_ops']:.3g} "
        f"+ binary ops {result['binary_ops']:.3g} / {BINARY_OPS_PER_OP}",
    ]
    if result["macs_unknown"]:
        lines.append("MACs not counted (output shape unknown): "
                     + ", ".join(result["macs_unknown"]))
    return "\n".join(lines)


def _counted_layers(model):
    """(path, layer) for every layer of `model`, containers too (they may
    hold weights of their own), then `model` itself (its own weights, or
    its MACs when it is a single Dense/conv layer)."""
    yield from named_layers(model, containers=True)
    yield model.name, model


def _binary_kernel(layer):
    return is_binary(layer) and getattr(layer, "kernel", None) is not None


def _scales(layer):
    """Float32 scales of a binary layer: C_out per channel, else 1."""
    per_channel = getattr(layer.kernel_quantizer, "per_channel", False)
    return layer.kernel.shape[-1] if per_channel else 1


def _float_size(weights):
    return sum(math.prod(w.shape) for w in weights if keras.backend.is_float_dtype(w.dtype))


def _sample_shape(layer, attr):
    """Shape without the batch axis of `layer.output` (or `.input`) in its
    first call, or None when unknown."""
    try:
        tensor = getattr(layer, attr)
    except (AttributeError, ValueError):
        return None
    shape = getattr(tensor, "shape", None)
    if shape is None or len(shape) < 2 or any(d is None for d in shape[1:]):
        return None
    return tuple(shape[1:])


def _last(layer):
    return getattr(layer, "data_format", "channels_last") != "channels_first"
