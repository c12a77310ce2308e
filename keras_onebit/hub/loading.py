"""`load(name_or_path)` and `load_weights_into(model, weights)`.

Resolution of a name: an existing path (entry folder, packed weights file or
one of the authors' .mat files); else an id (checked to be a plain name first)
found as `<folder>/<id>/` in `$KERAS_ONEBIT_HUB`, then `pretrained/`, then the
user cache; else a download of the manifest entry's `url` into the cache
(sha256 verified, a .mat converted into a cache entry). Every entry's weights
file is checked against its recorded size and sha256 before it is read, and a
folder named as a manifest id (or whose config.json claims one) must hold the
manifest's file, wherever it was found.
"""

import contextlib
import math
import os
import pathlib

from keras_onebit.fileio import regular_file
from keras_onebit.hub import registry
from keras_onebit.hub.checksum import sha256_file, verify_file
from keras_onebit.hub.download import MAT_FORMATS, download_entry
from keras_onebit.hub.entry import entry_file, read_config
from keras_onebit.hub.errors import (
    ArchitectureMismatchError,
    ChecksumError,
    HubError,
    ModelNotAvailableError,
    PathNotFoundError,
)
from keras_onebit.layers import is_binary


def _exists(path):
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _as_path(name_or_path):
    if isinstance(name_or_path, os.PathLike):
        return pathlib.Path(name_or_path)
    text = str(name_or_path)
    path = pathlib.Path(text).expanduser()
    looks_like_path = os.sep in text or text.endswith((".onebit", ".mat", ".npz", ".zip"))
    if _exists(path) or (looks_like_path and not _is_known_id(text)):
        return path
    return None


def _is_known_id(name):
    with contextlib.suppress(HubError):
        return name in registry.known_ids()
    return False


def _not_found(name_or_path, path):
    text = str(name_or_path)
    if isinstance(name_or_path, os.PathLike) or registry.is_valid_id(text):
        return PathNotFoundError(f"{path}: no such file or hub entry folder.")
    return PathNotFoundError(
        f"{registry.show(text)}: no such file or hub entry folder, and not a hub id either "
        f"(an id is {registry.ID_RULE}).")


# ------------------------------------------------------------------------ resolving


def _resolve(name_or_path):
    """(kind, path, model_id): model_id is the id the entry was resolved by,
    None for a path."""
    path = _as_path(name_or_path)
    if path is not None:
        if not _exists(path):
            raise _not_found(name_or_path, path)
        return ("entry" if (path / registry.CONFIG_NAME).is_file() else "path"), path, None
    model_id = registry.check_id(str(name_or_path))
    folder = registry.find_entry_dir(model_id)
    if folder is not None:
        return "entry", folder, model_id
    entry = registry.manifest_entries().get(model_id)
    if entry is None and model_id == registry.default_model_id():
        raise ModelNotAvailableError(
            f"The default hub model {model_id!r} is not available: no {model_id}/ folder in "
            f"{', '.join(str(d) for d in registry.search_dirs())} (not trained or shipped yet).")
    if entry is None:
        raise registry.unknown_model(model_id)
    if entry.get("url"):
        return "entry", download_entry(entry), model_id
    raise ModelNotAvailableError(
        f"Hub model {model_id!r} is in the manifest but its folder {model_id}/ is in none of "
        f"{', '.join(str(d) for d in registry.search_dirs())}, and it has no download URL."
    )


def resolve(name_or_path):
    """What `load` would read.

    Args:
        name_or_path: a hub id, or the path of an entry folder, a packed
            weights file or one of the authors' .mat files.

    Returns:
        ("path", Path) of an explicit file or folder, or ("entry", Path) of
        an entry folder (downloading it if needed).

    Raises:
        PathNotFoundError: a path that does not exist.
        InvalidIdError: a name that is not a valid id.
        UnknownModelError, ModelNotAvailableError, DownloadError, ChecksumError.
    """
    kind, path, _ = _resolve(name_or_path)
    return kind, path


def _claimed_ids(folder, config):
    """The ids a folder claims to be: its name (as given and resolved) and its config id."""
    names = [folder.name, config["id"]]
    with contextlib.suppress(OSError, RuntimeError):
        names.append(folder.resolve().name)
    return [n for n in dict.fromkeys(names) if n]


def _check_against_manifest(folder, weights, config):
    """A folder named as a manifest id, or whose config.json claims one, must
    hold the manifest's file (wherever it was found)."""
    entries = registry.manifest_entries()
    manifest = registry.manifest_path()
    for model_id in _claimed_ids(folder, config):
        entry = entries.get(model_id)
        if entry is not None:
            _check_entry(weights, config, entry, manifest)


def _check_entry(weights, config, entry, manifest):
    expected = entry["sha256"].lower()
    where = f"({manifest}, entry {entry['id']!r})"
    if entry.get("url") and entry.get("source_format") in MAT_FORMATS:
        source = config.get("source") or {}
        got = source.get("sha256")
        if not isinstance(got, str) or got.lower() != expected:
            raise ChecksumError(
                f"{weights}: converted from a file with sha256 {registry.show(got)} (config.json "
                f"field 'source.sha256'), but the manifest expects its source to have sha256 "
                f"{expected} {where}.")
        return
    recorded = config["weights_sha256"].lower()
    if recorded != expected:
        raise ChecksumError(
            f"{weights}: sha256 mismatch: the manifest expects {expected} {where}, the entry's "
            f"config.json records {recorded}. Remove or rename this folder to use the "
            "project's model.")
    size, recorded_size = entry.get("bytes"), config.get("weights_bytes")
    if size is not None and recorded_size is not None and size != recorded_size:
        raise ChecksumError(
            f"{weights}: size mismatch: the manifest expects {size} bytes {where}, the entry's "
            f"config.json records {recorded_size}.")


def verified_weights(folder, model_id=None):
    """The config and weights file of an entry folder after every check.

    Args:
        folder: the entry folder.
        model_id: the id the folder was found by (its config.json must say
            the same id), or None for a folder given as a path.

    Returns:
        (config dict, weights path).

    Raises:
        FieldError: a config.json field of the wrong type.
        HubError: the weights file outside the folder, or a config id that
            is not the id the folder was found by.
        ChecksumError: the file is not the manifest's (for a manifest id),
            or not the one config.json records (names both).
        ModelNotAvailableError: the weights file is missing.
    """
    folder = pathlib.Path(folder)
    config = read_config(folder)
    weights = entry_file(folder, config["weights"], "weights")
    _check_against_manifest(folder, weights, config)
    if model_id is not None and config["id"] != model_id:
        raise HubError(
            f"{folder / registry.CONFIG_NAME}: field 'id' is {config['id']!r}, but the folder "
            f"was found as hub model {model_id!r}; an entry folder must be named as its id.")
    if not weights.is_file():
        raise ModelNotAvailableError(f"{weights}: the weights file of hub entry "
                                     f"{config['id']!r} is missing.")
    verify_file(weights, config["weights_sha256"], config.get("weights_bytes"))
    return config, weights


# ---------------------------------------------------------------------------- load


def _load_packed(path):
    from keras_onebit.export import ExportError, load_packed

    try:
        return load_packed(path)
    except ExportError as e:
        raise HubError(f"{path}: cannot load the packed weights: {e}") from e


def load(name_or_path, sha256=None):
    """Returns the Keras model of a hub id, an entry folder, a packed weights
    file, or one of the authors' .mat files (converted in memory).

    The sha256 of an entry's weights is checked on every load; for an explicit
    file, pass `sha256=` to check it (a file beside a config.json that names it
    is checked against that, and against the manifest if it claims a manifest id).

    Args:
        name_or_path: a hub id or a path.
        sha256: the expected sha256 of an explicit file, or None.

    Returns:
        The Keras model.

    Raises:
        HubError: every failure (see `resolve` and `verified_weights`).
    """
    kind, path = _weights_file(name_or_path, sha256)
    if kind == "mat":
        return _load_mat(path)
    return _load_packed(path)


def verify_entry(name_or_path):
    """Checks a hub entry as `load` does, without building the model.

    Args:
        name_or_path: a hub id (its config.json must carry the same id) or
            the path of an entry folder.

    Returns:
        (config dict, weights path).

    Raises:
        HubError: not an entry folder (no config.json), and every failure of
            `resolve` and `verified_weights` (wrong id, size or sha256).
    """
    kind, path, model_id = _resolve(name_or_path)
    if kind != "entry":
        raise HubError(f"{path} is not a hub entry folder (it has no {registry.CONFIG_NAME}); "
                       "give a hub id or an entry folder.")
    return verified_weights(path, model_id)


def _weights_file(name_or_path, sha256=None):
    """("packed" or "mat", path) of what `load` reads, after every check of `load`."""
    kind, path, model_id = _resolve(name_or_path)
    if kind == "entry":
        _, weights = verified_weights(path, model_id)
        return "packed", weights
    if path.is_dir():
        raise HubError(f"{path}: a folder without {registry.CONFIG_NAME}; not a hub entry.")
    regular_file(path, "a .onebit or .mat weights file", HubError)
    if sha256:
        verify_file(path, sha256)
    elif (path.parent / registry.CONFIG_NAME).is_file():
        config = read_config(path.parent)
        if config["weights"] == path.name:
            verified_weights(path.parent)
    return ("mat" if path.suffix == ".mat" else "packed"), path


def _load_mat(path, classifier_activation="softmax"):
    from keras_onebit.hub import mcdonnell

    return mcdonnell.build_model(mcdonnell.read_mat(path), classifier_activation)


def list_entries():
    """One dict per known model (manifest order, then other folders by name).

    A folder outside the manifest whose config.json cannot be read is still
    listed, with None fields.

    Returns:
        A list of dicts with keys "id", "dataset", "factory", "binary",
        "default" (True for `default_model_id()`), "local" (the entry folder
        found, a `pathlib.Path`, or None), "url" (or None), "bytes" (of the
        weights file, or None) and "metrics" (the accuracy the entry's
        config.json records, a dict, or None: entries not here yet have none).

    Raises:
        HubError: the project's manifest (pretrained/index.json) is unreadable
            or malformed.
    """
    manifest = registry.manifest_entries()
    found = registry.entry_dirs()
    default = registry.default_model_id()
    rows = []
    for model_id in [*manifest, *sorted(set(found) - set(manifest))]:  # manifest order first
        entry = dict(manifest.get(model_id, {}))
        folder = found.get(model_id)
        config = {}
        if folder is not None:
            with contextlib.suppress(HubError, OSError):
                config = read_config(folder)
        for key in ("factory", "dataset", "binary"):
            entry.setdefault(key, config.get(key))
        rows.append({"id": model_id, "dataset": entry["dataset"], "factory": entry["factory"],
                     "binary": entry["binary"], "default": model_id == default,
                     "local": folder, "url": entry.get("url"),
                     "bytes": entry.get("bytes") or config.get("weights_bytes"),
                     "metrics": config.get("metrics")})
    return rows


def list_ids():
    """Sorted ids of every known hub model (manifest entries and folders found).

    `keras_onebit.hub.list` is this function.

    Returns:
        A sorted list of model ids (str).

    Raises:
        HubError: the project's manifest (pretrained/index.json) is unreadable
            or malformed.
    """
    return registry.known_ids()


# ------------------------------------------------------------------ weights= argument
#
# A factory's `weights=` reaches `load_weights_into` through
# `keras_onebit.pretrained_weights` (registered in hub/__init__.py). A packed
# archive is read (`export.packed.read_packed`: every entry and value checked)
# and its tensors are assigned straight into the factory-built model: the
# model is built once. Layers are compared first (names, types, weight shapes,
# weightless layers too, so e.g. a missing stem ReLU is caught). Only the
# authors' .mat files (and archives of nested models) go through a second
# model (`load` + `copy_weights`).


def _pick_for_dataset(model, dataset, factory):
    """The hub id of `factory`'s weights trained on `dataset`, one-bit or
    float as `model` is."""
    if not factory:
        raise HubError(
            f"weights={dataset!r} names a data set, whose weights are looked up by the factory "
            "that built the model, and none was given (factory=...); pass a hub id or a path "
            "instead.")
    binary = any(is_binary(layer) for layer in _own_layers(model))
    rows = [r for r in list_entries() if r["dataset"] == dataset]
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
    themselves). Unlike `keras_onebit.walk.iter_layers`, a layer's own
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
    exactly the stored one (`keras_onebit.latent.restore_kernel`), into a float
    layer as +-alpha."""
    from keras_onebit import latent
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
        values.append(latent.restore_kernel(target, signs, alpha))
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
    if isinstance(weights, str) and weights in DATASETS and _as_path(weights) is None:
        name = _pick_for_dataset(model, weights, factory)
        where = f"{where} (hub model {name})"
    kind, path = _weights_file(name)
    src = None
    if kind == "packed":
        manifest, bits, floats = _read_packed(path)
        src = _archive_slots(path, manifest, bits, floats)
    if src is None:  # a .mat file, or an archive of nested models: build it, then copy
        source = _load_mat(path) if kind == "mat" else _load_packed(path)
        src = _model_slots(source)
    return _load_slots(src, model, where, include_top, classes)


def _read_packed(path):
    from keras_onebit.export import ExportError
    from keras_onebit.export.packed import read_packed

    try:
        return read_packed(path)
    except ExportError as e:
        raise HubError(f"{path}: cannot load the packed weights: {e}") from e


__all__ = ["copy_weights", "list_entries", "list_ids", "load",
           "load_weights_into", "resolve", "sha256_file", "verified_weights", "verify_entry"]
