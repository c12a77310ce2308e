"""Memory summary per precision (like `larq.models.summary`).

For each layer: weights stored at one bit, parameters kept as float32, and
the bytes the layer takes when deployed with one bit per binary weight.
"""

import math

from keras_onebit.layers import is_binary

MB = 1e6


def layer_memory(layer):
    """(binary weights, float parameters) of one layer when deployed.

    A binary layer stores its kernel at one bit and its scale as float32
    (one value per layer, or per output channel); everything else, BN
    moving statistics included, is float32.
    """
    weights = layer.weights
    if not is_binary(layer):
        return 0, sum(math.prod(w.shape) for w in weights)
    binary = math.prod(layer.kernel.shape)
    scales = layer.kernel.shape[-1] if layer.kernel_quantizer.per_channel else 1
    others = sum(math.prod(w.shape) for w in layer.extra_weights())
    return binary, scales + others


def deployed_bytes(binary, floats):
    return math.ceil(binary / 8) + 4 * floats


def summary(model, print_fn=print):
    """Prints and returns the memory of `model` at one bit vs float32.

    Returns a dict: `layers` (a list of dicts: name, type, binary_weights,
    float_parameters, bytes) and totals `binary_weights`, `float_parameters`,
    `binary_weight_bytes`, `onebit_bytes`, `float32_bytes`.
    """
    rows = []
    for layer in model.layers:
        binary, floats = layer_memory(layer)
        if binary or floats:
            rows.append({
                "name": layer.name,
                "type": type(layer).__name__,
                "binary_weights": binary,
                "float_parameters": floats,
                "bytes": deployed_bytes(binary, floats),
            })
    binary = sum(r["binary_weights"] for r in rows)
    floats = sum(r["float_parameters"] for r in rows)
    result = {
        "layers": rows,
        "binary_weights": binary,
        "float_parameters": floats,
        "binary_weight_bytes": math.ceil(binary / 8),
        "onebit_bytes": sum(r["bytes"] for r in rows),
        "float32_bytes": 4 * sum(math.prod(w.shape) for w in model.weights),
    }
    if print_fn is not None:
        print_fn(format_summary(model.name, result))
    return result


def format_summary(name, result):
    header = f"{'layer':<28}{'type':<20}{'1-bit weights':>14}{'float32':>10}{'bytes':>12}"
    lines = [f'Model "{name}" memory at one bit per weight', header, "-" * len(header)]
    for r in result["layers"]:
        lines.append(
            f"{r['name']:<28}{r['type']:<20}{r['binary_weights']:>14,}"
            f"{r['float_parameters']:>10,}{r['bytes']:>12,}"
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
    return "\n".join(lines)
