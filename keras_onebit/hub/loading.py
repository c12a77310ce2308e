"""`load(name_or_path)` and `load_weights_into(model, weights)`.

Resolution of a name: an existing path (entry folder, packed weights file or
one of the authors' .mat files); else an id found as `<folder>/<id>/` in
`$KERAS_ONEBIT_HUB`, then `pretrained/`, then the user cache; else a download
of the manifest entry's `url` into the cache (sha256 verified, a .mat
converted into a cache entry). Every entry's weights file is checked against
its recorded size and sha256 before it is read.
"""

import contextlib
import os
import pathlib
import tempfile
import urllib.parse
import urllib.request

from keras_onebit.hub import registry
from keras_onebit.hub.checksum import sha256_file, verify_file
from keras_onebit.hub.entry import model_is_binary, read_config
from keras_onebit.hub.errors import (
    ArchitectureMismatchError,
    ChecksumError,
    HubError,
    ModelNotAvailableError,
)

MAT_FORMATS = ("mcdonnell-keras-mat", "mcdonnell-matlab-mat")


def _as_path(name_or_path):
    if isinstance(name_or_path, os.PathLike):
        return pathlib.Path(name_or_path)
    text = str(name_or_path)
    path = pathlib.Path(text).expanduser()
    looks_like_path = os.sep in text or text.endswith((".onebit", ".mat", ".npz", ".zip"))
    if path.exists() or (looks_like_path and not _is_known_id(text)):
        return path
    return None


def _is_known_id(name):
    with contextlib.suppress(HubError):
        return name in registry.known_ids()
    return False


# ------------------------------------------------------------------------ resolving


def resolve(name_or_path):
    """What `load` would read: ("path", Path) of an explicit file or folder, or
    ("entry", Path) of an entry folder (downloading it if needed)."""
    path = _as_path(name_or_path)
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or hub entry folder.")
        return ("entry" if (path / registry.CONFIG_NAME).is_file() else "path"), path
    model_id = str(name_or_path)
    folder = registry.find_entry_dir(model_id)
    if folder is not None:
        return "entry", folder
    entry = registry.manifest_entries().get(model_id)
    if entry is None and model_id == registry.default_model_id():
        raise ModelNotAvailableError(
            f"The default hub model {model_id!r} is not available: no {model_id}/ folder in "
            f"{', '.join(str(d) for d in registry.search_dirs())} (not trained or shipped yet).")
    if entry is None:
        raise registry.unknown_model(model_id)
    if entry.get("url"):
        return "entry", download_entry(entry)
    raise ModelNotAvailableError(
        f"Hub model {model_id!r} is in the manifest but its folder {model_id}/ is in none of "
        f"{', '.join(str(d) for d in registry.search_dirs())}, and it has no download URL."
    )


def _check_against_manifest(folder, config):
    """A mirror or cache copy must be the file the project's manifest names."""
    entry = registry.manifest_entries().get(config["id"]) if folder.name == config["id"] else None
    if not entry or not entry.get("sha256"):
        return
    if entry.get("url") and entry.get("source_format") in MAT_FORMATS:
        got = (config.get("source") or {}).get("sha256")
        if got != entry["sha256"]:
            raise ChecksumError(
                f"{folder}: converted from a file with sha256 {got}, but the manifest entry "
                f"{config['id']!r} expects its source to have sha256 {entry['sha256']}."
            )
    elif entry["sha256"] != config["weights_sha256"]:
        raise ChecksumError(
            f"{folder / config['weights']}: sha256 mismatch: the manifest expects "
            f"{entry['sha256']}, the entry's config.json records {config['weights_sha256']}."
        )


def verified_weights(folder):
    """(config, weights path) of an entry folder after the size and sha256 checks."""
    folder = pathlib.Path(folder)
    config = read_config(folder)
    _check_against_manifest(folder, config)
    weights = folder / config["weights"]
    if not weights.is_file():
        raise ModelNotAvailableError(f"{weights}: the weights file of hub entry "
                                     f"{config['id']!r} is missing.")
    verify_file(weights, config["weights_sha256"], config.get("weights_bytes"))
    return config, weights


# ------------------------------------------------------------------------- download


def _download(url, dest, sha256, size=None):
    """Fetches `url` to `dest` via a temp file; keeps it only if its sha256 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        with contextlib.suppress(ChecksumError):
            return verify_file(dest, sha256, size)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        verify_file(tmp, sha256, size)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return dest


def download_entry(entry):
    """Downloads a manifest entry with a `url` into the user cache and returns
    the entry folder there (a .mat is converted into one)."""
    cache = registry.cache_dir()
    name = pathlib.PurePosixPath(urllib.parse.urlparse(entry["url"]).path).name
    raw = _download(entry["url"], cache / "downloads" / name, entry["sha256"], entry.get("bytes"))
    if entry.get("source_format") in MAT_FORMATS:
        from keras_onebit.hub.mcdonnell import import_mcdonnell

        layout = entry["source_format"].split("-")[1]
        return import_mcdonnell(raw, cache, layout=layout, model_id=entry["id"])
    # A packed weights file: build the entry folder around it.
    folder = cache / entry["id"]
    folder.mkdir(parents=True, exist_ok=True)
    os.replace(raw, folder / registry.WEIGHTS_NAME)
    config = {"format": registry.ENTRY_FORMAT, "version": 1, "id": entry["id"],
              "factory": entry.get("factory"), "factory_kwargs": entry.get("factory_kwargs", {}),
              "dataset": entry.get("dataset"), "binary": entry.get("binary"),
              "weights": registry.WEIGHTS_NAME, "weights_sha256": entry["sha256"],
              "weights_bytes": entry.get("bytes"), "source": {"url": entry["url"]}}
    registry.write_json_atomic(folder / registry.CONFIG_NAME, config)
    return folder


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
    is checked against that)."""
    kind, path = resolve(name_or_path)
    if kind == "entry":
        _, weights = verified_weights(path)
        return _load_packed(weights)
    if path.is_dir():
        raise HubError(f"{path}: a folder without {registry.CONFIG_NAME}; not a hub entry.")
    if sha256:
        verify_file(path, sha256)
    elif (path.parent / registry.CONFIG_NAME).is_file():
        config = read_config(path.parent)
        if config.get("weights") == path.name:
            verify_file(path, config["weights_sha256"], config.get("weights_bytes"))
    if path.suffix == ".mat":
        from keras_onebit.hub import mcdonnell

        return mcdonnell.build_model(mcdonnell.read_mat(path))
    return _load_packed(path)


def list_entries():
    """One dict per known model (manifest order, then other folders by name):
    id, dataset, factory, binary, default flag, `local` (the entry folder
    found, or None) and `url`."""
    manifest = registry.manifest_entries()
    found = registry.entry_dirs()
    default = registry.default_model_id()
    rows = []
    for model_id in [*manifest, *sorted(set(found) - set(manifest))]:  # manifest order first
        entry = dict(manifest.get(model_id, {}))
        folder = found.get(model_id)
        if folder is not None and not entry:
            with contextlib.suppress(HubError, OSError):
                config = read_config(folder)
                entry = {k: config.get(k) for k in ("factory", "factory_kwargs", "dataset",
                                                     "binary")}
        rows.append({"id": model_id, "dataset": entry.get("dataset"),
                     "factory": entry.get("factory"), "binary": entry.get("binary"),
                     "default": model_id == default, "local": folder, "url": entry.get("url")})
    return rows


def list_models():
    """Sorted ids of every known hub model (manifest entries and folders found)."""
    return registry.known_ids()


# ------------------------------------------------------------------ weights= argument


def _pick_for_dataset(model, dataset):
    binary = model_is_binary(model)
    rows = [r for r in list_entries() if r["dataset"] == dataset]
    matching = [r for r in rows if r["factory"] == model.name and bool(r["binary"]) == binary]
    if not matching:
        have = ", ".join(f"{r['id']} ({r['factory']}, {'1-bit' if r['binary'] else 'float'})"
                         for r in rows) or "none"
        raise HubError(
            f"No {'one-bit' if binary else 'float'} {model.name} weights trained on {dataset!r} "
            f"in the hub. Entries for {dataset!r}: {have}."
        )
    return matching[0]["id"]


def _structure(model):
    """[(layer, [weight shapes])] of the layers that define the function
    (the input layer and a final softmax Activation are skipped)."""
    import keras

    out = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.InputLayer | keras.Model):
            continue
        if isinstance(layer, keras.layers.Activation) and layer.name == "predictions":
            continue
        out.append((layer, [tuple(int(d) for d in w.shape) for w in layer.weights]))
    return out


def _describe(layer, shapes):
    return f"{layer.name!r} ({type(layer).__name__}, weight shapes {shapes})"


def copy_weights(source, target, where="weights"):
    """Copies every weight of `source` into `target` after checking that both
    have the same layers (names, types, weight shapes), in order. A one-bit
    source kernel goes into a float target as its forward kernel +-alpha."""
    from keras_onebit.layers import is_binary

    src, dst = _structure(source), _structure(target)
    for i in range(max(len(src), len(dst))):
        if i >= len(src) or i >= len(dst):
            extra = (f"the model has extra layer {_describe(*dst[i])}" if i < len(dst)
                     else f"the weights have extra layer {_describe(*src[i])}")
            raise ArchitectureMismatchError(
                f"{where}: weights for another architecture: {extra} at position {i}.")
        (s, s_shapes), (d, d_shapes) = src[i], dst[i]
        if s.name != d.name or type(s).__name__ != type(d).__name__ or s_shapes != d_shapes:
            raise ArchitectureMismatchError(
                f"{where}: weights for another architecture ({source.name} into "
                f"{target.name}): first mismatching layer at position {i}: the model has "
                f"{_describe(d, d_shapes)}, the weights have {_describe(s, s_shapes)}."
            )
    for (s, _), (d, _) in zip(src, dst, strict=True):
        values = [w.numpy() for w in s.weights]
        if hasattr(d, "kernel_quantizer") and values:
            if is_binary(s) and not is_binary(d):
                values[0] = s.forward_kernel().numpy()
            elif is_binary(d) and not is_binary(s):
                raise ArchitectureMismatchError(
                    f"{where}: layer {d.name!r} is one-bit in the model but float in the weights;"
                    " load float weights into the float twin (binary=False).")
        d.set_weights(values)
    return target


def load_weights_into(model, weights):
    """Loads `weights` into `model` (what the factories' `weights=` does).

    `weights`: a data set name ("cifar10": the hub entry of this factory,
    trained on it, one-bit or float as the model is), a hub id, or a path
    (entry folder, packed weights file, .mat). Raises
    `ArchitectureMismatchError` naming the first mismatching layer."""
    from keras_onebit.data import DATASETS

    name = weights
    if isinstance(weights, str) and weights in DATASETS and _as_path(weights) is None:
        name = _pick_for_dataset(model, weights)
    source = load(name)
    try:
        return copy_weights(source, model, where=str(weights))
    finally:
        del source


__all__ = ["download_entry", "list_entries", "list_models", "load", "load_weights_into",
           "resolve", "sha256_file", "verified_weights"]
