"""Writing and reading one hub entry: config.json, weights, MODEL_CARD.md."""

import datetime
import math
import os
import pathlib
import shutil

from keras_onebit.hub import folders
from keras_onebit.hub.checksum import sha256_file
from keras_onebit.hub.errors import HubError

PREPROCESSING = "raw pixels 0..255 as float32, NHWC; no mean/std: the model's input BN normalizes"


# The config.json fields the hub uses: (field, required, test, what the value must be).
# An optional field may be null.
CONFIG_FIELDS = (
    ("id", True, folders.is_valid_id, folders.ID_RULE),
    ("factory", True, lambda v: v is None or isinstance(v, str), "a string or null"),
    ("weights", True, folders.is_plain_name, folders.NAME_RULE),
    ("weights_sha256", True, folders.is_sha256, "64 hexadecimal digits"),
    ("weights_bytes", False, folders.is_count, "a non-negative integer"),
    ("factory_kwargs", False, folders.is_dict, "an object"),
    ("binary", False, folders.is_bool, "true or false"),
    ("dataset", False, folders.is_str, "a string"),
    ("source", False, folders.is_dict, "an object"),
    ("notes", False, folders.is_str, "a string"),
)
PRECISIONS = ("-1bit", "-float")
CURVES_NAME = "curves.png"


def model_is_binary(model):
    from keras_onebit import layer_walk
    from keras_onebit.layers import is_binary

    return any(is_binary(layer) for layer in layer_walk.iter_layers(model))


def _entry_paths(out_dir, model_id):
    """(hub root, entry folder): `out_dir` may be the root or already `<root>/<model_id>`."""
    out_dir = pathlib.Path(out_dir)
    if out_dir.name == model_id:
        return out_dir.parent, out_dir
    return out_dir, out_dir / model_id


def _is_project_pretrained(root):
    try:
        return pathlib.Path(root).resolve() == folders.pretrained_dir().resolve()
    except OSError:
        return False


def save_entry(
    model,
    out_dir,
    model_id,
    factory,
    factory_kwargs,
    dataset,
    metrics=None,
    training_command=None,
    licence="Apache-2.0",
    notes="",
    source=None,
    default=None,
    extra_files=(),
):
    """Writes a complete hub entry `<out_dir>/<model_id>/` atomically.

    Args:
        model: the trained Keras model (one-bit or float).
        out_dir: the hub folder (e.g. the project's `pretrained/`), or the
            entry folder itself if its name is `model_id`.
        model_id: e.g. "wrn_20_1-cifar10-1bit".
        factory, factory_kwargs: registered factory name and the keyword
            arguments that rebuild the architecture (classes, binary, ...).
        dataset: the training data set name ("cifar10", ...).
        metrics: dict of measured numbers, e.g. {"exact_test_error": 3.7,
            "test_error": 12.9, "command": "python -m keras_onebit eval ..."}.
        training_command: the command that trained the model.
        licence: of the weights. notes: free text for the model card.
        source: optional dict (url, sha256, layout, ...) of imported weights.
        default: True flags the entry as the manifest default.
        extra_files: paths of files to copy into the entry, under their own
            names (e.g. the run's `log.csv` and `curves.png`; the model card
            shows a `curves.png`). Copied before the entry is swapped in.

    When the entry lands in the project's `pretrained/`, `pretrained/index.json`
    is updated (an entry that already has an upstream `url` keeps it, so the
    converted file itself is not referenced by the manifest).

    Returns:
        The entry folder `<out_dir>/<model_id>`, a `pathlib.Path`.

    Raises:
        InvalidIdError: `model_id` is not a plain id (an `UnknownModelError`,
            a `HubError`); checked before any path is built from it.
        FieldError: a config field of the wrong type (a `HubError`).
        HubError: the project's manifest cannot be read or updated.
        HubError: an extra file is missing or named as one of the entry's own.
        ExportError: the model cannot be stored as a packed archive.
    """
    from keras_onebit.export import save_packed

    folders.check_id(model_id)  # before any path is built from it
    extra_files = _check_extra_files(extra_files)
    root, folder = _entry_paths(out_dir, model_id)
    root.mkdir(parents=True, exist_ok=True)
    factory_kwargs = dict(factory_kwargs or {})
    tmp = root / f".{model_id}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        weights = tmp / folders.WEIGHTS_NAME
        save_packed(model, weights, metadata={"hub_id": model_id, "factory": factory,
                                              "factory_kwargs": factory_kwargs,
                                              "dataset": dataset})
        config = _entry_config(model, model_id, factory, factory_kwargs, dataset, weights,
                               metrics=metrics or {}, training_command=training_command,
                               licence=licence, source=source, notes=notes.strip() or None)
        folders.check_fields(config, CONFIG_FIELDS, f"hub entry {model_id!r}")
        folders.write_json_atomic(tmp / folders.CONFIG_NAME, config)
        for path in extra_files:
            shutil.copyfile(path, tmp / path.name)
        twin = _twin_config(root, model_id)
        folders.write_text_atomic(tmp / folders.CARD_NAME,
                                   model_card(config, notes, twin, _has_curves(tmp)))
        twin_card = None
        if twin is not None:  # its card compares with this entry now: written after the
            twin_folder = root / twin["id"]  # swap, made before it (so it cannot fail there)
            twin_card = model_card(twin, _notes_of(twin_folder, twin), config,
                                   _has_curves(twin_folder))
        _swap_in(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if twin_card is not None:
        folders.write_text_atomic(twin_folder / folders.CARD_NAME, twin_card)
    if _is_project_pretrained(root):
        _record_in_manifest(config, root, default)
    return folder


def _check_extra_files(paths):
    paths = [pathlib.Path(p) for p in paths]
    reserved = {folders.WEIGHTS_NAME, folders.CONFIG_NAME, folders.CARD_NAME}
    for path in paths:
        if path.name in reserved:
            raise HubError(f"Extra file {path} would replace the entry's own {path.name}.")
        if not path.is_file():
            raise HubError(f"Extra file {path} for the hub entry does not exist.")
    return paths


def _has_curves(folder):
    return (folder / CURVES_NAME).is_file()


def _swap_in(tmp, folder):
    """Replaces `folder` by `tmp` with renames only (the old one is removed last)."""
    old = None
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _record_in_manifest(config, root, default):
    old = folders.manifest_entries(root).get(config["id"], {})
    entry = {
        "id": config["id"],
        "factory": config["factory"],
        "factory_kwargs": config["factory_kwargs"],
        "dataset": config["dataset"],
        "binary": config["binary"],
    }
    if old.get("url"):  # an upstream entry: keep the download, never the local conversion
        entry.update({k: old[k] for k in ("url", "sha256", "bytes", "source_format") if k in old})
    else:
        entry.update(path=config["id"], sha256=config["weights_sha256"],
                     bytes=config["weights_bytes"])
    if default is None:
        default = bool(old.get("default"))
    if default:
        entry["default"] = True
    folders.update_manifest(entry, root)


def read_config(folder):
    """The checked config.json of an entry folder.

    Args:
        folder: the entry folder.

    Returns:
        The config dict; every field the hub uses has the right type
        (`CONFIG_FIELDS`), and `weights` is a plain file name.

    Raises:
        FileNotFoundError: if the folder has no config.json.
        HubError: if config.json is unreadable, not an object, or resolves
            outside the folder.
        FieldError: naming the file and the first missing or bad field.
    """
    path = entry_file(folder, folders.CONFIG_NAME)
    config = folders.read_json(path, "hub entry config")
    if not isinstance(config, dict):
        raise HubError(f"{path}: not a hub entry config (expected a JSON object).")
    return folders.check_fields(config, CONFIG_FIELDS, str(path))


def entry_file(folder, name, field=None):
    """The path of the file `name` of an entry, after checking that it stays
    inside the entry folder once symlinks are resolved.

    Args:
        folder: the entry folder.
        name: a plain file name.
        field: the config.json field that names the file ("weights"), or
            None for a file of fixed name (config.json).

    Returns:
        `folder / name` (not resolved, so messages show the entry's path).

    Raises:
        HubError: if `name` is not a plain name or the file resolves outside
            the folder (an absolute path, `..`, a symlink out).
    """
    folder = pathlib.Path(folder)
    what = f"field {field!r} names {folders.show(name)}, which" if field else f"{name!r}"
    if not folders.is_plain_name(name):
        raise HubError(f"{folder}: field {field!r} must be {folders.NAME_RULE}, got "
                       f"{folders.show(name)}.")
    path = folder / name
    try:
        root, target = folder.resolve(), path.resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
        raise HubError(f"{folder}: {what} cannot be resolved ({folders.one_line(e)}).") from e
    if target == root or not target.is_relative_to(root):
        raise HubError(f"{folder}: {what} resolves to {target}, outside the entry folder; "
                       "refusing to read it.")
    return path


def twin_id(model_id):
    """The id of the other precision of the same model and data set
    ("wrn_20_2-cifar10-1bit" <-> "wrn_20_2-cifar10-float"), or None."""
    for mine, other in (PRECISIONS, PRECISIONS[::-1]):
        if model_id.endswith(mine):
            return model_id[:-len(mine)] + other
    return None


def _entry_config(model, model_id, factory, factory_kwargs, dataset, weights, **fields):
    """config.json of the entry of `model` whose packed weights are the file `weights`;
    `fields` (metrics, training_command, licence, source, notes) are written as given."""
    return {
        "format": folders.ENTRY_FORMAT,
        "version": 1,
        "id": model_id,
        "factory": factory,
        "factory_kwargs": factory_kwargs,
        "classes": int(factory_kwargs.get("classes", model.output_shape[-1])),
        "input_shape": [int(d) for d in model.input_shape[1:]],
        "dataset": dataset,
        "binary": model_is_binary(model),
        "preprocessing": PREPROCESSING,
        "weights": folders.WEIGHTS_NAME,
        "weights_sha256": sha256_file(weights),
        "weights_bytes": weights.stat().st_size,
        **fields,
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _twin_config(root, model_id):
    """The config of the entry's twin in the same hub folder, or None."""
    other = twin_id(model_id)
    if other is None or not (root / other / folders.CONFIG_NAME).is_file():
        return None
    try:
        return read_config(root / other)
    except HubError:  # a broken twin is not this entry's failure
        return None


def _notes_of(folder, config):
    """The notes of an entry: its config's, else (older entries) its card's Notes section."""
    if config.get("notes"):
        return config["notes"]
    card = folder / folders.CARD_NAME
    text = card.read_text() if card.is_file() else ""
    return text.split("\n## Notes\n", 1)[1].strip() if "\n## Notes\n" in text else ""


def _fmt_metric(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def standard_error(accuracy, images):
    """The standard error of an accuracy measured on `images` independent
    images: sqrt(p (1 - p) / n)."""
    return math.sqrt(accuracy * (1 - accuracy) / images)


def _metric_lines(metrics):
    """One line per metric; an accuracy with its image count also gets its
    standard error."""
    lines = []
    for key, value in metrics.items():
        images = metrics.get(key.replace("_accuracy", "_images"))
        if key.endswith("_accuracy") and isinstance(value, float) and isinstance(images, int) \
                and images > 0 and 0 <= value <= 1:
            lines.append(f"- {key}: {_fmt_metric(value)} (standard error "
                         f"{standard_error(value, images):.3f}, {images} images)")
        else:
            lines.append(f"- {key}: {_fmt_metric(value)}")
    return lines


def _twin_lines(config, twin):
    """The one-bit vs float comparison of a card, from both entries' metrics."""
    ours, theirs = config.get("metrics") or {}, twin.get("metrics") or {}
    keys = [k for k in ("exact_test_accuracy", "test_accuracy")
            if isinstance(ours.get(k), float) and isinstance(theirs.get(k), float)]
    if not keys:
        return []
    one_bit, float_ = (ours, theirs) if config.get("binary") else (theirs, ours)
    epochs = (one_bit.get("epochs"), float_.get("epochs"))
    same_length = epochs[0] == epochs[1] or None in epochs
    lines = ["", "## One-bit vs float", "",
             f"The twin of this entry: `{twin['id']}` (the same architecture and "
             f"{'training' if same_length else 'recipe'}, "
             f"{'float32' if config.get('binary') else 'one-bit'} weights).", "",
             "| metric | one-bit | float | float - one-bit |", "|---|---|---|---|"]
    for key in keys:
        gap = 100 * (float_[key] - one_bit[key])
        lines.append(f"| {key} | {100 * one_bit[key]:.2f}% | {100 * float_[key]:.2f}% | "
                     f"{gap:+.2f} points |")
    if not same_length:
        lines += [f"| epochs | {epochs[0]} | {epochs[1]} | |", "",
                  "The two entries trained for different numbers of epochs, so the gap mixes "
                  "precision with training length."]
    return lines


def model_card(config, notes="", twin=None, curves=False):
    """MODEL_CARD.md text for an entry config (and the config of its twin of
    the other precision, if there is one: the card then gives the gap).
    `curves`: the entry folder holds the training curves, `curves.png`."""
    kwargs = ", ".join(f"{k}={v!r}" for k, v in config["factory_kwargs"].items())
    metrics = dict(config.get("metrics") or {})
    commands = [metrics.pop(k) for k in ("command", "commands") if k in metrics]
    lines = [
        f"# {config['id']}",
        "",
        f"`keras_onebit.hub.load({config['id']!r})` or "
        f"`keras_onebit.models.{config['factory']}({kwargs}{', ' if kwargs else ''}"
        f"weights={config['id']!r})`.",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{config['factory']}({kwargs})` |",
        f"| weights | {'one bit per conv weight' if config['binary'] else 'float32'} |",
        f"| classes | {config['classes']} |",
        f"| input | {tuple(config['input_shape'])}, {config['preprocessing']} |",
        f"| training data | {config['dataset']} |",
        f"| licence | {config.get('licence')} |",
        f"| weights file | `{config['weights']}`, {config['weights_bytes']:,} bytes |",
        f"| sha256 | `{config['weights_sha256']}` |",
        "",
        "## Accuracy measured by this project",
        "",
    ]
    if metrics:
        lines += _metric_lines(metrics)
    else:
        lines.append("Not measured yet.")
    for command in commands:
        for c in command if isinstance(command, list) else [command]:
            lines += ["", "```sh", str(c), "```"]
    if twin is not None:
        lines += _twin_lines(config, twin)
    lines += ["", "## Training", ""]
    if config.get("training_command"):
        lines += ["```sh", str(config["training_command"]), "```"]
        if curves:
            lines += ["", f"![training curves]({CURVES_NAME})"]
    else:
        lines.append("Not trained by this project (see Source).")
    source = config.get("source")
    if source:
        lines += ["", "## Source", ""]
        lines += [f"- {k}: {v}" for k, v in source.items()]
    if notes:
        lines += ["", "## Notes", "", notes.strip()]
    return "\n".join(lines) + "\n"

