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

Nothing read here is trusted: ids are plain names (letters, digits, `_ . -`)
checked before any path is built from them, every manifest field is type- and
range-checked (`FieldError` names the file, entry and field), and JSON files
are read only up to `MAX_JSON_BYTES`.
"""

import json
import os
import pathlib
import re
import urllib.parse

from keras_onebit import errors, fileio
from keras_onebit.fileio import regular_file
from keras_onebit.hub.errors import FieldError, HubError, InvalidIdError, UnknownModelError

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
# An installed wheel carries the hub as package data (setup.py copies the
# project's pretrained/ there); a checkout or editable install uses pretrained/.
PACKAGED = pathlib.Path(__file__).resolve().parents[1] / "_pretrained"
PRETRAINED = PACKAGED if (PACKAGED / "index.json").is_file() else PROJECT_ROOT / "pretrained"
MANIFEST_NAME = "index.json"
MANIFEST_FORMAT = "keras_onebit.hub.index"
MANIFEST_VERSION = 1
CONFIG_NAME = "config.json"
CARD_NAME = "MODEL_CARD.md"
WEIGHTS_NAME = "weights.onebit"
ENTRY_FORMAT = "keras_onebit.hub.entry"
FALLBACK_DEFAULT_ID = "wrn_20_1-cifar10-1bit"
MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 255
MAX_JSON_BYTES = 1 << 20  # config.json and index.json are a few kB
URL_SCHEMES = ("http", "https", "file")  # file: a local mirror of the upstream files

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
ID_RULE = (f"a hub id (letters, digits, '_', '.', '-'; not starting with '.'; at most "
           f"{MAX_ID_LENGTH} characters)")
NAME_RULE = ("a plain file name inside the entry folder (letters, digits, '_', '.', '-'; "
             "no path separator, no '..', not absolute)")


def pretrained_dir():
    """The shipped hub folder: the wheel's package data, else the checkout's pretrained/."""
    return PRETRAINED


def cache_dir():
    """The user cache: `$KERAS_ONEBIT_CACHE`, else `~/.keras/keras_onebit`."""
    env = os.environ.get("KERAS_ONEBIT_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".keras" / "keras_onebit"


def env_dirs():
    value = os.environ.get("KERAS_ONEBIT_HUB", "")
    return [pathlib.Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def search_dirs():
    """The hub folders in resolution order (they need not exist).

    Returns:
        A list of `pathlib.Path`: each folder of `$KERAS_ONEBIT_HUB` (split on
        `os.pathsep`), the shipped `pretrained/`, then the user cache
        (`$KERAS_ONEBIT_CACHE`, else `~/.keras/keras_onebit`).
    """
    return env_dirs() + [pretrained_dir(), cache_dir()]


# ----------------------------------------------------------------------------- files


def write_text_atomic(path, text):
    """Writes `text` to `path` via a temp file in the same folder + os.replace
    (creating the folder first)."""
    return fileio.write_text(path, text, HubError, make_folder=True)


def write_json_atomic(path, data):
    """`data` as JSON in its own key order, written as `write_text_atomic` does."""
    return fileio.write_json(path, data, sort_keys=False, error=HubError, make_folder=True)


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def read_json(path, what):
    """The JSON value of the file at `path`.

    Args:
        path: the file (a config.json or index.json).
        what: what the file is, for messages ("hub manifest", ...).

    Returns:
        The decoded value.

    Raises:
        FileNotFoundError: if there is no file at `path`.
        HubError: if the file is not a regular file, is larger than
            `MAX_JSON_BYTES`, is not UTF-8 JSON, is nested too deeply or has
            an object with a key twice.
    """
    path = pathlib.Path(path)
    if path.exists():
        regular_file(path, f"the {what}", HubError, MAX_JSON_BYTES)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise HubError(f"{path}: unreadable {what} ({e}).") from e
    if len(data) > MAX_JSON_BYTES:
        raise HubError(f"{path}: the {what} is larger than {MAX_JSON_BYTES} bytes; "
                       "refusing to read it.")
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_object_without_duplicates)
    except RecursionError as e:
        raise HubError(f"{path}: the {what} is nested too deeply to read.") from e
    except _DuplicateKey as e:
        raise HubError(f"{path}: the {what} has the key {show(e.args[0])} twice in one "
                       "object.") from e
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, huge integers
        raise HubError(f"{path}: unreadable {what} ({one_line(e)}).") from e


# ------------------------------------------------------------------------- checking


def one_line(value):
    """`str(value)` with line breaks replaced by spaces (messages are one line)."""
    return errors.one_line(value, limit=10**6)


def show(value, limit=200):
    """A short one-line repr of `value` for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_plain_name(value, max_length=MAX_NAME_LENGTH):
    """True for a file or folder name that cannot leave its folder: letters,
    digits, `_ . -`, not starting with '.' (so never '.' or '..'), no separator."""
    return (isinstance(value, str) and len(value) <= max_length
            and _PLAIN_NAME.fullmatch(value) is not None)


def is_valid_id(value):
    """True for a well-formed hub id (a plain name of at most `MAX_ID_LENGTH`)."""
    return is_plain_name(value, MAX_ID_LENGTH)


def check_id(model_id):
    """Returns `model_id` if it is a well-formed hub id.

    Args:
        model_id: the id to check (it becomes a folder name).

    Returns:
        `model_id`.

    Raises:
        InvalidIdError: if it is not a string of letters, digits, `_ . -`
            (not starting with '.') of at most `MAX_ID_LENGTH` characters.
    """
    if not is_valid_id(model_id):
        raise InvalidIdError(f"Invalid hub model id {show(model_id)}: an id must be {ID_RULE}.")
    return model_id


def is_sha256(value):
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_url(value):
    if not isinstance(value, str) or len(value) > 4096 or any(c.isspace() for c in value):
        return False
    try:
        parts = urllib.parse.urlparse(value)
    except ValueError:
        return False
    if parts.scheme == "file":
        return bool(parts.path)
    return parts.scheme in URL_SCHEMES and bool(parts.netloc)


def is_str(value):
    return isinstance(value, str)


def is_bool(value):
    return isinstance(value, bool)


def is_dict(value):
    return isinstance(value, dict)


# (field, required, test, what the value must be). An optional field may be null.
MANIFEST_FIELDS = (
    ("id", True, is_valid_id, ID_RULE),
    ("sha256", True, is_sha256, "64 hexadecimal digits"),
    ("bytes", False, is_count, "a non-negative integer"),
    ("url", False, is_url, "an http://, https:// or file:// URL"),
    ("path", False, is_plain_name, "a plain folder name under the manifest's folder"),
    ("source_format", False, is_str, "a string"),
    ("factory", False, is_str, "a string"),
    ("factory_kwargs", False, is_dict, "an object"),
    ("dataset", False, is_str, "a string"),
    ("binary", False, is_bool, "true or false"),
    ("default", False, is_bool, "true or false"),
)


def check_fields(data, fields, where):
    """Checks the fields of a JSON object against a table of rules.

    Args:
        data: the decoded JSON object (a dict).
        fields: (name, required, test, rule) tuples; `test(value)` is true for
            a good value, `rule` says what the value must be. Optional fields
            may be absent or null.
        where: the start of every message, e.g. "pretrained/index.json: entry 'x'".

    Returns:
        `data`.

    Raises:
        FieldError: naming the first missing or bad field, its rule and value.
    """
    missing = [name for name, required, _, _ in fields if required and name not in data]
    if missing:
        raise FieldError(f"{where}: missing field{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(repr(m) for m in missing)}.")
    for name, required, test, rule in fields:
        if name not in data or (data[name] is None and not required):
            continue
        if not test(data[name]):
            raise FieldError(f"{where}: field {name!r} must be {rule}, got {show(data[name])}.")
    return data


def check_manifest_entry(entry, where="manifest"):
    """Returns the manifest `entry` (a dict) after checking every field the hub
    uses; raises `FieldError` naming `where`, the entry and the field."""
    if not isinstance(entry, dict):
        raise FieldError(f"{where}: a model entry must be an object, got {show(entry)}.")
    name = entry.get("id")
    label = f"entry {show(name)}" if isinstance(name, str) else "an entry"
    return check_fields(entry, MANIFEST_FIELDS, f"{where}: {label}")


# -------------------------------------------------------------------------- manifest


def manifest_path(root=None):
    return pathlib.Path(root or pretrained_dir()) / MANIFEST_NAME


def read_index(root=None):
    """The manifest dict ({"format", "version", "models": [...]}); empty if absent.

    Args:
        root: the folder of `index.json`; default the project's `pretrained/`.

    Returns:
        The manifest, every entry checked (`check_manifest_entry`).

    Raises:
        HubError: if the file is unreadable or not a manifest.
        FieldError: for a bad field or an id listed twice (names the entry).
    """
    path = manifest_path(root)
    try:
        data = read_json(path, "hub manifest")
    except FileNotFoundError:
        return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "models": []}
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise HubError(f"{path}: not a hub manifest (expected an object with a 'models' list).")
    seen = set()
    for entry in data["models"]:
        check_manifest_entry(entry, path)
        if entry["id"] in seen:
            raise FieldError(f"{path}: entry {entry['id']!r} is listed more than once.")
        seen.add(entry["id"])
    return data


def manifest_entries(root=None):
    """{id: entry dict} of the manifest, in file order."""
    return {entry["id"]: entry for entry in read_index(root)["models"]}


def update_manifest(entry, root=None):
    """Adds or replaces `entry` (by id) in the manifest under `root`, atomically.
    A `default: true` entry clears the flag on the others."""
    check_manifest_entry(entry, manifest_path(root))
    data = read_index(root)
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
    (which may not exist yet: loading it then raises a `HubError`, e.g.
    `ModelNotAvailableError`, a FileNotFoundError).

    An unreadable manifest is treated as one without a default (no error).

    Returns:
        The model id, a str.
    """
    try:
        entries = manifest_entries()
    except HubError:
        return FALLBACK_DEFAULT_ID
    for model_id, entry in entries.items():
        if entry.get("default"):
            return model_id
    return FALLBACK_DEFAULT_ID


# --------------------------------------------------------------------------- folders


def _sub_folders(root):
    try:
        return sorted(root.iterdir()) if root.is_dir() else []
    except OSError:  # an unreadable folder has no entries
        return []


def entry_dirs():
    """{id: folder} of every entry folder found, first folder in search order wins
    (folders whose name is not a valid id are skipped)."""
    found = {}
    for root in search_dirs():
        for sub in _sub_folders(root):
            if not is_valid_id(sub.name) or not (sub / CONFIG_NAME).is_file():
                continue
            found.setdefault(sub.name, sub)
    return found


def find_entry_dir(model_id):
    """The first `<root>/<model_id>/` holding a config.json, or None.

    Raises:
        InvalidIdError: if `model_id` is not a valid id (checked before any
            path is built from it).
    """
    check_id(model_id)
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
