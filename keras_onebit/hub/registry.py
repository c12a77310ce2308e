"""Where hub models live: the manifest, the search folders, resolution.

A hub folder holds one sub-folder per model id, each with `config.json`, the
packed weights file and `MODEL_CARD.md`. Folders searched, first hit wins:

1. every folder in `$KERAS_ONEBIT_HUB` (os.pathsep-separated; a local mirror),
2. the project's `pretrained/`,
3. the user cache `~/.keras/keras_onebit/` (`$KERAS_ONEBIT_CACHE` overrides).

The manifest `pretrained/index.json` lists the project's entries: id, `path`
(a folder under pretrained/) or `url` (downloaded into the cache, verified by
sha256, converted if it is one of the authors' .mat files), sha256, and a
`default` flag.
"""

import json
import os
import pathlib

from keras_onebit.hub.errors import HubError, UnknownModelError

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
PRETRAINED = PROJECT_ROOT / "pretrained"
MANIFEST_NAME = "index.json"
MANIFEST_FORMAT = "keras_onebit.hub.index"
MANIFEST_VERSION = 1
CONFIG_NAME = "config.json"
CARD_NAME = "MODEL_CARD.md"
WEIGHTS_NAME = "weights.onebit"
ENTRY_FORMAT = "keras_onebit.hub.entry"
FALLBACK_DEFAULT_ID = "wrn_20_1-cifar10-1bit"


def pretrained_dir():
    return PRETRAINED


def cache_dir():
    """The user cache: `$KERAS_ONEBIT_CACHE`, else `~/.keras/keras_onebit`."""
    env = os.environ.get("KERAS_ONEBIT_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".keras" / "keras_onebit"


def env_dirs():
    value = os.environ.get("KERAS_ONEBIT_HUB", "")
    return [pathlib.Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def search_dirs():
    """The hub folders in resolution order (they need not exist)."""
    return env_dirs() + [pretrained_dir(), cache_dir()]


# ----------------------------------------------------------------------------- files


def write_text_atomic(path, text):
    """Writes `text` to `path` via a temp file in the same folder + os.replace
    (creating the folder first)."""
    from keras_onebit.export import files

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return files.write_text(path, text)


def write_json_atomic(path, data):
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HubError(f"{path}: unreadable {what} ({e}).") from e


# -------------------------------------------------------------------------- manifest


def manifest_path(root=None):
    return pathlib.Path(root or pretrained_dir()) / MANIFEST_NAME


def read_manifest(root=None):
    """The manifest dict ({"format", "version", "models": [...]}); empty if absent."""
    path = manifest_path(root)
    try:
        data = read_json(path, "hub manifest")
    except FileNotFoundError:
        return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "models": []}
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise HubError(f"{path}: not a hub manifest (expected an object with a 'models' list).")
    for entry in data["models"]:
        if not isinstance(entry, dict) or "id" not in entry:
            raise HubError(f"{path}: every entry of 'models' needs an 'id': {entry!r}.")
    return data


def manifest_entries(root=None):
    """{id: entry dict} of the manifest, in file order."""
    return {entry["id"]: entry for entry in read_manifest(root)["models"]}


def update_manifest(entry, root=None):
    """Adds or replaces `entry` (by id) in the manifest under `root`, atomically.
    A `default: true` entry clears the flag on the others."""
    data = read_manifest(root)
    models = [e for e in data["models"] if e["id"] != entry["id"]]
    old = next((e for e in data["models"] if e["id"] == entry["id"]), None)
    index = data["models"].index(old) if old is not None else len(models)
    if entry.get("default"):
        for e in models:
            e.pop("default", None)
    models.insert(index, entry)
    data.update(format=MANIFEST_FORMAT, version=MANIFEST_VERSION, models=models)
    return write_json_atomic(manifest_path(root), data)


def default_model_id():
    """The id flagged `default` in the manifest, else "wrn_20_1-cifar10-1bit"
    (which may not exist yet: loading it then raises FileNotFoundError)."""
    try:
        entries = manifest_entries()
    except HubError:
        return FALLBACK_DEFAULT_ID
    for model_id, entry in entries.items():
        if entry.get("default"):
            return model_id
    return FALLBACK_DEFAULT_ID


# --------------------------------------------------------------------------- folders


def entry_dirs():
    """{id: folder} of every entry folder found, first folder in search order wins."""
    found = {}
    for root in search_dirs():
        if not root.is_dir():
            continue
        for sub in sorted(root.iterdir()):
            if sub.name.startswith(".") or not (sub / CONFIG_NAME).is_file():
                continue
            found.setdefault(sub.name, sub)
    return found


def find_entry_dir(model_id):
    """The first `<root>/<model_id>/` holding a config.json, or None."""
    for root in search_dirs():
        folder = root / model_id
        if (folder / CONFIG_NAME).is_file():
            return folder
    return None


def known_ids():
    """Sorted ids of the manifest and of every entry folder found."""
    return sorted(set(manifest_entries()) | set(entry_dirs()))


def unknown_model(name):
    known = known_ids()
    return UnknownModelError(
        f"Unknown hub model {name!r} (not a path either). Known models: "
        f"{', '.join(known) if known else '(none)'}. Hub folders searched: "
        f"{', '.join(str(d) for d in search_dirs())}."
    )
