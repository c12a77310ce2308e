"""Files in and out, for every part of the library: the base module.

Reading: `regular_file` is the one gate for every file the library reads: a
regular file (symlinks followed), of a size known before anything is read, or
a one-line error of the caller's class. A device (`/dev/zero`), a pipe or a
folder given where a file belongs is refused here, before a reader could wait
on it or read it until memory runs out.

Writing: `check_writable` runs before any work; `atomic_write` gives a temporary
file in the same folder that replaces the target only when the block finishes
without error (so nothing half-written is ever left there); `write_bytes`,
`write_text` and `write_json` write whole files that way.

Below every other module (it imports only the standard library), so data,
hub, export and training all read and write through it; each caller passes
its own error class.
"""

import contextlib
import json
import os
import pathlib
import stat
import tempfile


def regular_file(path, what, error, max_bytes=None):
    """`path` as a Path, once it is known to be a regular file of at most `max_bytes`.

    Args:
        path: a str or path-like; `~` is expanded.
        what: what the file should be, for the message (e.g. "a .onebit archive").
        error: the exception class to raise (a `keras_onebit.Error` subclass).
        max_bytes: the largest size accepted, or None.

    Returns:
        The `pathlib.Path`.

    Raises:
        error: the path does not exist, is a folder, is not a regular file (a
            device, pipe or socket), cannot be examined, or is too large; one
            line naming the path and `what`.
    """
    found = pathlib.Path(os.fspath(path)).expanduser()
    try:
        info = found.stat()
    except FileNotFoundError:
        raise error(f"{found}: no such file; give {what}.") from None
    except OSError as e:
        raise error(f"{found}: cannot be read ({e.strerror or e}); give {what}.") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{found}: is a folder, not a regular file; give {what}.")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{found}: not a regular file (a device, pipe or socket); give {what}.")
    if max_bytes is not None and info.st_size > max_bytes:
        raise error(f"{found}: {info.st_size:,} bytes, larger than the {max_bytes:,} bytes "
                    f"that {what} may have.")
    return found


def check_writable(path, error=OSError):
    """`path` as a Path, once a file can be created or replaced there.

    Args:
        path: a str or path-like.
        error: the exception class to raise (a `keras_onebit.Error` subclass).

    Returns:
        The `pathlib.Path`.

    Raises:
        error: `path` is a folder, its folder is missing or not writable, or the
            existing file is not writable; one line naming the path.
    """
    path = pathlib.Path(path)
    parent = path.parent if str(path.parent) else pathlib.Path(".")
    if path.is_dir():
        raise error(f"Cannot write {path}: it is a directory.")
    if not parent.is_dir():
        raise error(f"Cannot write {path}: directory {parent} does not exist.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise error(f"Cannot write {path}: directory {parent} is not writable.")
    if path.exists() and not os.access(path, os.W_OK):
        raise error(f"Cannot write {path}: the existing file is not writable.")
    return path


@contextlib.contextmanager
def atomic_write(path, mode="wb", error=OSError):
    """Yields a file object; on success the temp file is renamed to `path`
    (mode 0644), on any error it is removed and `path` is left as it was."""
    path = check_writable(path, error)
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


def write_bytes(path, data, error=OSError, make_folder=False):
    """Writes `data` to `path` atomically (`make_folder`: create its folder first)."""
    path = pathlib.Path(path)
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, error=error) as f:
        f.write(data)
    return path


def write_text(path, text, error=OSError, make_folder=False):
    """Writes `text` (UTF-8) to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"), error, make_folder)


def write_json(path, value, sort_keys=True, error=OSError, make_folder=False):
    """Writes `value` as indented JSON (and a final newline) to `path` atomically."""
    text = json.dumps(value, indent=2, sort_keys=sort_keys) + "\n"
    return write_text(path, text, error, make_folder)
