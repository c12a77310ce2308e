"""Atomic, checked file writes shared by every exporter.

`check_writable(path)` runs before any work; `atomic_write(path)` gives a
temporary file in the same directory that replaces `path` only when the block
finishes without error, so nothing half-written is ever left at `path`.
"""

import contextlib
import os
import pathlib
import tempfile

from keras_onebit.export.errors import ExportError


def check_writable(path):
    """Raises ExportError unless a file can be created or replaced at `path`."""
    path = pathlib.Path(path)
    parent = path.parent if str(path.parent) else pathlib.Path(".")
    if path.is_dir():
        raise ExportError(f"Cannot write {path}: it is a directory.")
    if not parent.is_dir():
        raise ExportError(f"Cannot write {path}: directory {parent} does not exist.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"Cannot write {path}: directory {parent} is not writable.")
    if path.exists() and not os.access(path, os.W_OK):
        raise ExportError(f"Cannot write {path}: the existing file is not writable.")
    return path


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Yields a file object; on success the temp file is renamed to `path`."""
    path = check_writable(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path, data):
    with atomic_write(path) as f:
        f.write(data)
    return pathlib.Path(path)


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))
