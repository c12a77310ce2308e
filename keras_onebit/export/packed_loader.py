"""Rebuilds a Keras model from a packed one-bit archive: `load_packed(path)`.

After every check of `packed_reader.read_packed`, the architecture is built with its variables
deferred (no memory), under a budget of the parameters the blobs hold, and compared with the
tensor table before a single variable is allocated; then each variable gets its value (a binary
kernel: a latent kernel whose quantized forward is exactly the stored alpha * sign).
"""

import json
import math

import keras
import numpy as np

from keras_onebit import compat, layer_walk
from keras_onebit.errors import one_line
from keras_onebit.export.errors import ExportError
from keras_onebit.export.packed_format import scale_mode_of, stored_signs
from keras_onebit.export.packed_reader import _tensor_where, read_packed
from keras_onebit.latent_kernels import restore_kernel
from keras_onebit.layers import binary_kernels

EXTRA_VARIABLE_ELEMENTS = 1 << 16  # variables a model holds beyond its weights (seed states)


class _VariableBudget(list):
    """Keras' list of deferred variables, refusing any variable past `limit`
    elements in total, when it is created (before anything reads it)."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit
        self.used = 0
        self.exceeded = None

    def append(self, variable):
        self.used += math.prod(variable.shape)
        if self.used > self.limit:
            self.exceeded = (f"the architecture declares more parameters than the archive "
                             f"holds: variable {variable.path} {tuple(variable.shape)} brings "
                             f"the total to {self.used} > {self.limit}")
            raise ExportError(self.exceeded)
        super().append(variable)


def _budget(manifest):
    """Parameters the archive can describe: every float, every sign bit, plus
    room for the few variables that are not weights (random seed states)."""
    return manifest["floats_count"] + 8 * manifest["bits_nbytes"] + EXTRA_VARIABLE_ELEMENTS


def _build_deferred(path, architecture, limit):
    """(model, created variables): the architecture built inside a stateless
    scope, so its variables have shapes but no memory; at most `limit` elements."""
    if compat.in_stateless_scope():
        raise ExportError(f"{path}: load_packed cannot run inside a keras.StatelessScope.")
    budget = _VariableBudget(limit)
    try:
        with compat.deferred_variables(budget), keras.StatelessScope(initialize_variables=False):
            model = keras.models.model_from_json(json.dumps(architecture))
    except Exception as e:  # Keras may wrap the budget's error: report it plainly
        if budget.exceeded:
            raise ExportError(f"{path}: {budget.exceeded}.") from None
        raise ExportError(f"{path}: cannot rebuild the architecture ({type(e).__name__}: "
                          f"{one_line(e)}).") from e
    if budget.exceeded:  # in case a layer caught the error and went on
        raise ExportError(f"{path}: {budget.exceeded}.")
    return model, list(budget)


def _check_structure(path, model, tensors):
    """The architecture's variables against the tensor table: count, layer names,
    shapes, and sign-bit counts; nothing is allocated yet."""
    weights = model.weights
    if len(tensors) != len(weights):
        raise ExportError(
            f"{path}: the archive has {len(tensors)} tensors but the architecture has "
            f"{len(weights)} variables."
        )
    owners = layer_walk.weight_owners(model)
    for index, (entry, w) in enumerate(zip(tensors, weights, strict=True)):
        shape = tuple(entry["shape"])
        layer = entry["layer"]
        owner = owners.get(id(w))
        if owner is not None and owner.name != layer:
            raise ExportError(
                f"{path}: {_tensor_where(index, entry)} belongs to layer {layer!r}, the "
                f"architecture's variable {index} ({w.path}) to layer {owner.name!r}."
            )
        if tuple(w.shape) != shape:
            raise ExportError(
                f"{path}: shape mismatch in layer {layer!r} ({entry['path']}): the "
                f"archive holds {shape}, the architecture expects {tuple(w.shape)}."
            )
        nbytes = math.ceil(math.prod(shape) / 8)
        if entry["kind"] == "sign_bits" and entry["bits_nbytes"] != nbytes:
            raise ExportError(
                f"{path}: layer {layer!r} has {entry['bits_nbytes']} bytes of sign bits, "
                f"shape {shape} needs {nbytes}."
            )


def _tensor_value(path, entry, w, kernels, bits, floats):
    """The value to assign to variable `w` from its tensor table entry."""
    shape = tuple(entry["shape"])
    count = math.prod(shape)
    layer = entry["layer"]
    if entry["kind"] == "float32":
        return floats[entry["offset"]:entry["offset"] + count].reshape(shape)
    binary = kernels.get(id(w))
    if binary is None:
        raise ExportError(
            f"{path}: {entry['path']} holds sign bits but layer {layer!r} of the "
            "architecture is not binary."
        )
    mode = scale_mode_of(binary.kernel_quantizer)
    if entry["scale_mode"] != mode:
        raise ExportError(
            f"{path}: {entry['path']} has scale_mode {entry['scale_mode']!r} but layer "
            f"{layer!r} of the architecture has scale {mode!r}."
        )
    if binary.switchable:
        binary.set_binary(True)  # the archive stores it one-bit
    signs, alpha = stored_signs(entry, bits, floats)
    kernel = restore_kernel(binary, signs, alpha)
    forward = keras.ops.convert_to_numpy(binary.kernel_quantizer(kernel))
    if not np.array_equal(forward, np.reshape(signs, forward.shape) * alpha):
        raise ExportError(
            f"{path}: {entry['path']}: layer {layer!r}'s kernel quantizer "
            f"{type(binary.kernel_quantizer).__name__} does not give back the stored "
            "alpha * sign(W) from any latent kernel tried; the archive cannot be loaded "
            "into this architecture exactly.")
    return kernel


def _compile(path, model, compile_config):
    if not compile_config:
        return
    try:
        model.compile_from_config(compile_config)
    except Exception as e:
        raise ExportError(f"{path}: cannot restore the compile settings ({type(e).__name__}: "
                          f"{one_line(e)}).") from e
    model.compiled = True


def load_packed(path):
    """Rebuilds the Keras model stored by `save_packed` (no custom_objects needed).

    Every check of `read_packed` comes first; the architecture is then built
    with deferred variables under a budget of the parameters the archive holds
    and compared with the tensor table (layers, shapes, sign-bit counts) before
    any variable is allocated, so a small hostile file cannot take much memory.

    Args:
        path: a packed archive (`.onebit`).

    Returns:
        The Keras model, compiled if the archive records compile settings.

    Raises:
        ExportError: naming the entry, tensor, layer or field that is wrong.
    """
    manifest, bits, floats = read_packed(path)
    architecture = dict(manifest["model"])
    compile_config = architecture.pop("compile_config", None)
    model, created = _build_deferred(path, architecture, _budget(manifest))
    tensors = manifest["tensors"]
    _check_structure(path, model, tensors)
    compat.initialize_deferred(created)
    kernels = binary_kernels(model, switched_off_too=True)
    for entry, w in zip(tensors, model.weights, strict=True):
        value = _tensor_value(path, entry, w, kernels, bits, floats)
        w.assign(value.astype(w.dtype) if hasattr(value, "astype") else value)
    _compile(path, model, compile_config)
    return model
