"""The one gate for every file the library reads: a regular file (symlinks
followed), of a size known before anything is read, or a one-line error of
the caller's class. A device (`/dev/zero`), a pipe or a folder given where a
file belongs is refused here, before a reader could wait on it or read it
until memory runs out.

Below every other module (it imports only the standard library), so data,
hub, export and training all read through it.
"""

import os
import pathlib
import stat


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
