"""`load(name_or_path)`: resolving a hub id or a path to checked weights, and loading them.
`keras_onebit.hub.transfer` copies weights into a model (`load_weights_into`).

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
import os
import pathlib

from keras_onebit.fileio import regular_file
from keras_onebit.hub import folders
from keras_onebit.hub.checksum import sha256_file, verify_file
from keras_onebit.hub.download import MAT_FORMATS, download_entry
from keras_onebit.hub.entry import entry_file, read_config
from keras_onebit.hub.errors import (
    ChecksumError,
    HubError,
    ModelNotAvailableError,
    PathNotFoundError,
)


def _exists(path):
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def as_path(name_or_path):
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
        return name in folders.known_ids()
    return False


def _not_found(name_or_path, path):
    text = str(name_or_path)
    if isinstance(name_or_path, os.PathLike) or folders.is_valid_id(text):
        return PathNotFoundError(f"{path}: no such file or hub entry folder.")
    return PathNotFoundError(
        f"{folders.show(text)}: no such file or hub entry folder, and not a hub id either "
        f"(an id is {folders.ID_RULE}).")


# ------------------------------------------------------------------------ resolving


def _resolve(name_or_path):
    """(kind, path, model_id): model_id is the id the entry was resolved by,
    None for a path."""
    path = as_path(name_or_path)
    if path is not None:
        if not _exists(path):
            raise _not_found(name_or_path, path)
        return ("entry" if (path / folders.CONFIG_NAME).is_file() else "path"), path, None
    model_id = folders.check_id(str(name_or_path))
    folder = folders.find_entry_dir(model_id)
    if folder is not None:
        return "entry", folder, model_id
    entry = folders.manifest_entries().get(model_id)
    if entry is None and model_id == folders.default_model_id():
        raise ModelNotAvailableError(
            f"The default hub model {model_id!r} is not available: no {model_id}/ folder in "
            f"{', '.join(str(d) for d in folders.search_dirs())} (not trained or shipped yet).")
    if entry is None:
        raise folders.unknown_model(model_id)
    if entry.get("url"):
        return "entry", download_entry(entry), model_id
    raise ModelNotAvailableError(
        f"Hub model {model_id!r} is in the manifest but its folder {model_id}/ is in none of "
        f"{', '.join(str(d) for d in folders.search_dirs())}, and it has no download URL."
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
    entries = folders.manifest_entries()
    manifest = folders.manifest_path()
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
                f"{weights}: converted from a file with sha256 {folders.show(got)} (config.json "
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
            f"{folder / folders.CONFIG_NAME}: field 'id' is {config['id']!r}, but the folder "
            f"was found as hub model {model_id!r}; an entry folder must be named as its id.")
    if not weights.is_file():
        raise ModelNotAvailableError(f"{weights}: the weights file of hub entry "
                                     f"{config['id']!r} is missing.")
    verify_file(weights, config["weights_sha256"], config.get("weights_bytes"))
    return config, weights


# ---------------------------------------------------------------------------- load


def load_packed_file(path):
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
    kind, path = weights_file(name_or_path, sha256)
    if kind == "mat":
        return load_mat(path)
    return load_packed_file(path)


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
        raise HubError(f"{path} is not a hub entry folder (it has no {folders.CONFIG_NAME}); "
                       "give a hub id or an entry folder.")
    return verified_weights(path, model_id)


def weights_file(name_or_path, sha256=None):
    """("packed" or "mat", path) of what `load` reads, after every check of `load`."""
    kind, path, model_id = _resolve(name_or_path)
    if kind == "entry":
        _, weights = verified_weights(path, model_id)
        return "packed", weights
    if path.is_dir():
        raise HubError(f"{path}: a folder without {folders.CONFIG_NAME}; not a hub entry.")
    regular_file(path, "a .onebit or .mat weights file", HubError)
    if sha256:
        verify_file(path, sha256)
    elif (path.parent / folders.CONFIG_NAME).is_file():
        config = read_config(path.parent)
        if config["weights"] == path.name:
            verified_weights(path.parent)
    return ("mat" if path.suffix == ".mat" else "packed"), path


def load_mat(path, classifier_activation="softmax"):
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
    manifest = folders.manifest_entries()
    found = folders.entry_dirs()
    default = folders.default_model_id()
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
    return folders.known_ids()


# ------------------------------------------------------------------ weights= argument
#
def __getattr__(name):
    """`copy_weights` and `load_weights_into` moved to `keras_onebit.hub.transfer`; the old
    import path keeps working (imported late: transfer imports this module)."""
    if name in ("copy_weights", "load_weights_into"):
        from keras_onebit.hub import transfer

        return getattr(transfer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["list_entries", "list_ids", "load", "resolve", "sha256_file", "verified_weights",
           "verify_entry"]
