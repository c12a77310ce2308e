"""Keras model files (`.keras`) in and out: saved atomically, loaded with checks.

`save_model` writes a temporary file beside the target and renames it over the
target only once Keras has written all of it (a checkpoint is never left half
written); `load_model` refuses a file that is not a complete `.keras` zip
archive, and turns whatever Keras raises on a damaged one into a one-line
error of the caller's class.
"""

import contextlib
import os
import pathlib
import zipfile

import keras

from keras_onebit.errors import Error, one_line
from keras_onebit.fileio import regular_file


def save_model(model, path):
    """Saves `model` (and its optimizer state) to `path`, a `.keras` file, atomically."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def load_model(path, name, error, advice=""):
    """The model in the `.keras` file `path`.

    Args:
        path: the file.
        name: how the messages name it (e.g. "--model model.keras").
        error: the exception class to raise (a `keras_onebit.Error` subclass).
        advice: what the user can do, appended to each message (e.g. "; start over").

    Raises:
        error: `path` is not a regular file, not a complete zip archive (a
            `.keras` file is one), or Keras cannot load it; one line.
    """
    path = regular_file(path, "a .keras model file", error)
    if not zipfile.is_zipfile(path):
        raise error(f"{name}: not a complete .keras file (a .keras model is a zip archive; this "
                    f"one is truncated or of another kind, {path.stat().st_size:,} bytes)"
                    f"{advice}.")
    try:
        return keras.saving.load_model(path)
    except Exception as e:  # Keras raises ValueError, TypeError, KeyError, OSError, zip errors...
        if isinstance(e, Error):
            raise
        reason = one_line(f"{type(e).__name__}: {e}", 200)
        raise error(f"{name}: Keras cannot load this model ({reason}){advice}.") from e
