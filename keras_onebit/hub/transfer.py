"""Weights into a model: `load_weights_into(model, weights)` (what a factory's `weights=` does)
and `copy_weights(source, target)`, layer by layer with the architectures compared first.
`keras_onebit.hub.loading` finds and checks the weights.
"""

import math

from keras_onebit.hub import loading
from keras_onebit.hub.errors import ArchitectureMismatchError, HubError

# A factory's `weights=` reaches `load_weights_into` through
# `keras_onebit.pretrained_weights` (registered in hub/__init__.py). A packed
# archive is read (`export.packed.read_packed`: every entry and value checked)
# and its tensors are assigned straight into the factory-built model: the
# model is built once. Layers are compared first (names, types, weight shapes,
# weightless layers too, so e.g. a missing stem ReLU is caught). Only the
# authors' .mat files (and archives of nested models) go through a second
# model (`load` + `copy_weights`).


def is_binary(layer):
    """`keras_onebit.layers.is_binary`, imported at the first call: the hub package
    lists and verifies entries without importing Keras (`python -m keras_onebit hub list`)."""
    from keras_onebit import layers

    return layers.is_binary(layer)


def _pick_for_dataset(model, dataset, factory):
    """The hub id of `factory`'s weights trained on `dataset`, one-bit or
    float as `model` is."""
    if not factory:
        raise HubError(
            f"weights={dataset!r} names a data set, whose weights are looked up by the factory "
            "that built the model, and none was given (factory=...); pass a hub id or a path "
            "instead.")
    binary = any(is_binary(layer) for layer in _own_layers(model))
    rows = [r for r in loading.list_entries() if r["dataset"] == dataset]
    matching = [r for r in rows if r["factory"] == factory and bool(r["binary"]) == binary]
    if not matching:
        have = ", ".join(f"{r['id']} ({r['factory']}, {'1-bit' if r['binary'] else 'float'})"
                         for r in rows) or "none"
        raise HubError(
            f"No {'one-bit' if binary else 'float'} {factory} weights trained on {dataset!r} "
            f"in the hub. Entries for {dataset!r}: {have}."
        )
    return matching[0]["id"]


def _own_layers(model):
    """The layers of `model`'s graph in order, nested models walked (not listed
    themselves). Unlike `keras_onebit.layer_walk.iter_layers`, a layer's own
    sub-layers are not listed: these are the layers an archive's architecture
    lists (`model.layers`, a public attribute)."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_own_layers(layer))
        else:
            out.append(layer)
    return out


def _skipped(type_name, name):
    """The input layer and a final float32 softmax `predictions` Activation
    define no weights and may differ between a model and its weights."""
    return type_name == "InputLayer" or (type_name == "Activation" and name == "predictions")


class _Slot:
    """One layer of the weights or of the model: name, type, weight shapes,
    and (for the weights) `values(target_layer, where)` -> arrays for it."""

    def __init__(self, name, type_name, shapes, values=None, layer=None):
        self.name, self.type_name, self.shapes = name, type_name, shapes
        self.values, self.layer = values, layer

    def __str__(self):
        return f"{self.name!r} ({self.type_name}, weight shapes {self.shapes})"


def _model_slots(model):
    """The slots of a Keras model, with values copied from its variables."""
    slots = []
    for layer in _own_layers(model):
        type_name = type(layer).__name__
        if _skipped(type_name, layer.name):
            continue
        shapes = [tuple(int(d) for d in w.shape) for w in layer.weights]
        slots.append(_Slot(layer.name, type_name, shapes,
                           values=lambda target, where, s=layer: _layer_values(s, target, where),
                           layer=layer))
    return slots


def _layer_values(source, target, where):
    """`source`'s weights for `target`: a one-bit kernel into a float layer is
    its forward kernel +-alpha; a float kernel into a one-bit layer is refused."""
    values = [w.numpy() for w in source.weights]
    if hasattr(target, "kernel_quantizer") and values:
        if is_binary(source) and not is_binary(target):
            values[0] = source.forward_kernel().numpy()
        elif is_binary(target) and not is_binary(source):
            raise _float_into_binary(target, where)
    return values


def _float_into_binary(layer, where):
    return ArchitectureMismatchError(
        f"{where}: layer {layer.name!r} is one-bit in the model but float in the weights;"
        " load float weights into the float twin (binary=False).")


def _archive_slots(path, manifest, bits, floats):
    """The slots of a packed archive (values from its blobs), or None when its
    architecture is not one flat functional model (then `load` + copy)."""
    architecture = manifest.get("model")
    if not isinstance(architecture, dict) or architecture.get("class_name") != "Functional":
        return None
    config = architecture.get("config")
    layer_configs = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(layer_configs, list):
        return None
    by_layer = {}
    for entry in manifest["tensors"]:
        by_layer.setdefault(entry["layer"], []).append(entry)
    slots, names = [], set()
    for layer_config in layer_configs:
        if not isinstance(layer_config, dict):
            return None
        type_name = layer_config.get("class_name")
        inner = layer_config.get("config")
        name = layer_config.get("name") or (inner.get("name") if isinstance(inner, dict)
                                            else None)
        if not isinstance(name, str) or not isinstance(type_name, str):
            return None
        if type_name in ("Functional", "Sequential", "Model"):
            return None
        names.add(name)
        if _skipped(type_name, name):
            continue
        entries = by_layer.get(name, [])
        slots.append(_Slot(
            name, type_name, [tuple(e["shape"]) for e in entries],
            values=lambda target, where, e=entries: _archive_values(e, target, where, bits,
                                                                    floats)))
    if set(by_layer) - names:  # variables of layers inside nested models
        return None
    return slots


def _archive_values(entries, target, where, bits, floats):
    """The archive's tensors of one layer as values for `target`'s weights.

    Sign bits go into a one-bit layer as a latent kernel whose scale is
    exactly the stored one (`keras_onebit.latent_kernels.restore_kernel`), into a float
    layer as +-alpha."""
    from keras_onebit import latent_kernels
    from keras_onebit.export import packed

    values = []
    kernel = getattr(target, "kernel", None)
    quantizer = getattr(target, "kernel_quantizer", None)
    for entry, w in zip(entries, target.weights, strict=True):
        shape = tuple(entry["shape"])
        if entry["kind"] == "float32":
            if w is kernel and is_binary(target):
                raise _float_into_binary(target, where)
            values.append(floats[entry["offset"]:entry["offset"] + math.prod(shape)]
                          .reshape(shape))
            continue
        if w is not kernel:
            raise ArchitectureMismatchError(
                f"{where}: {entry['path']} holds sign bits, but it is not the kernel of layer "
                f"{target.name!r} in the model.")
        nbytes = math.ceil(math.prod(shape) / 8)
        if entry["bits_nbytes"] != nbytes:
            raise HubError(f"{where}: layer {target.name!r} has {entry['bits_nbytes']} bytes "
                           f"of sign bits, shape {shape} needs {nbytes}.")
        scale_shape = tuple(entry["scale_shape"])
        if scale_shape not in ((), (shape[-1],)):
            raise HubError(f"{where}: layer {target.name!r} has a scale of shape "
                           f"{scale_shape} for a kernel of shape {shape}.")
        signs, alpha = packed.stored_signs(entry, bits, floats)
        if quantizer is None:  # the float twin: the one-bit forward kernel
            values.append(signs * alpha)
            continue
        mode = packed.scale_mode_of(quantizer)
        if entry["scale_mode"] != mode:
            raise ArchitectureMismatchError(
                f"{where}: layer {target.name!r} has scale {mode!r} in the model but "
                f"{entry['scale_mode']!r} in the weights.")
        values.append(latent_kernels.restore_kernel(target, signs, alpha))
    return values


def _mismatch(where, position, target, source):
    return ArchitectureMismatchError(
        f"{where}: weights for another architecture: first mismatching layer at position "
        f"{position}: the model has {target}, the weights have {source}.")


def _pairs_full(src, dst, where):
    """(weights slot, model slot) for every layer; both lists must agree in
    order, names, types and weight shapes."""
    for i in range(max(len(src), len(dst))):
        if i >= len(src) or i >= len(dst):
            extra = (f"the model has extra layer {dst[i]}" if i < len(dst)
                     else f"the weights have extra layer {src[i]}")
            raise ArchitectureMismatchError(
                f"{where}: weights for another architecture: {extra} at position {i}.")
        s, d = src[i], dst[i]
        if s.name != d.name or s.type_name != d.type_name or s.shapes != d.shapes:
            raise _mismatch(where, i, d, s)
    return list(zip(src, dst, strict=True))


def _pairs_backbone(src, dst, where):
    """(weights slot, model slot) for a headless model (timm-style drop of the
    classifier): every model layer is in the weights, with the same type and
    weight shapes, and the weights' layers the model lacks all come after the
    backbone's (the classifier). Trailing weightless layers of the model that
    the weights lack (the `pooling` of a backbone) are left out."""
    index = {s.name: i for i, s in enumerate(src)}
    dst = list(dst)
    while dst and not dst[-1].shapes and dst[-1].name not in index:
        dst.pop()
    pairs = []
    for d in dst:
        i = index.get(d.name)
        if i is None:
            raise ArchitectureMismatchError(
                f"{where}: weights for another architecture: the model's layer {d} is not in "
                "the weights.")
        if src[i].type_name != d.type_name or src[i].shapes != d.shapes:
            raise _mismatch(where, i, d, src[i])
        pairs.append((src[i], d))
    names = {d.name for d in dst}
    end = max((index[d.name] for d in dst), default=-1)
    inside = [s for s in src[:end] if s.name not in names]
    if inside:
        raise ArchitectureMismatchError(
            f"{where}: weights for another architecture: the weights have layer {inside[0]} "
            "inside the backbone, which the model lacks.")
    return pairs


def _classes_of(slots):
    """The width of the top: the last dimension of the last weight (the
    classifier conv / its BN for WRN, the dense bias for Bi-Real)."""
    for slot in reversed(slots):
        for shape in reversed(slot.shapes):
            if shape:
                return shape[-1]
    return None


def _assign(pairs, where):
    values = [(d.layer, s.values(d.layer, where)) for s, d in pairs]  # check all, then write
    for layer, v in values:
        layer.set_weights(v)


def _load_slots(src, model, where, include_top=True, classes=None):
    dst = _model_slots(model)
    if include_top and classes is not None:
        have = _classes_of(src)
        if have is not None and have != classes:
            raise ArchitectureMismatchError(
                f"{where}: the weights classify {have} classes, the model {classes} "
                f"(classes={classes}); pass classes={have}, or include_top=False to load the "
                "backbone only.")
    pairs = _pairs_full(src, dst, where) if include_top else _pairs_backbone(src, dst, where)
    _assign(pairs, where)
    return model


def copy_weights(source, target, where="weights"):
    """Copies every weight of one Keras model into another of the same architecture.

    Args:
        source: the model holding the weights.
        target: the model to write them into.
        where: what the weights are, named in errors.

    Returns:
        `target`.

    Raises:
        ArchitectureMismatchError: the models differ in layers (names,
            types, weight shapes, in order), or a float kernel would go into
            a one-bit layer (a one-bit kernel goes into a float layer as its
            forward kernel +-alpha). Names the first mismatching layer.
    """
    return _load_slots(_model_slots(source), target, f"{where} ({source.name} into "
                                                      f"{target.name})")


def load_weights_into(model, weights, factory=None, include_top=True, classes=None):
    """Loads `weights` into `model`: what the factories' `weights=` does.

    Args:
        model: a model a factory built (or any model of the weights'
            architecture).
        weights: a data set name ("cifar10": the hub entry of `factory`
            trained on it, one-bit or float as the model is), a hub id, or a
            path (entry folder, packed weights file, the authors' .mat file).
        factory: the registered factory that built the model (e.g.
            "wrn_20_2"); data set weights are looked up by it, never by the
            model's name.
        include_top: False for a backbone: the weights of the model's layers
            are loaded and the weights' classifier is dropped (whatever its
            classes).
        classes: the classes of the model's top, checked against the
            weights' with `include_top`.

    Returns:
        `model`.

    Raises:
        HubError: the weights cannot be found or read (see `load`), or no
            hub entry of `factory` for the data set.
        ArchitectureMismatchError: weights for another architecture (names
            the first mismatching layer and both weight shapes), or for
            another number of classes with `include_top` (names both).
    """
    from keras_onebit.data import DATASETS

    where = f"weights={str(weights)!r}"
    name = weights
    if isinstance(weights, str) and weights in DATASETS and loading.as_path(weights) is None:
        name = _pick_for_dataset(model, weights, factory)
        where = f"{where} (hub model {name})"
    kind, path = loading.weights_file(name)
    src = None
    if kind == "packed":
        manifest, bits, floats = _read_packed(path)
        src = _archive_slots(path, manifest, bits, floats)
    if src is None:  # a .mat file, or an archive of nested models: build it, then copy
        source = loading.load_mat(path) if kind == "mat" else loading.load_packed_file(path)
        src = _model_slots(source)
    return _load_slots(src, model, where, include_top, classes)


def _read_packed(path):
    from keras_onebit.export import ExportError
    from keras_onebit.export.packed import read_packed

    try:
        return read_packed(path)
    except ExportError as e:
        raise HubError(f"{path}: cannot load the packed weights: {e}") from e


__all__ = ["copy_weights", "load_weights_into"]
