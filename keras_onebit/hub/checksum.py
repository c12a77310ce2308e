"""sha256 of files, and the check run on every load."""

import hashlib
import os
import re

from keras_onebit.fileio import regular_file
from keras_onebit.hub.errors import ChecksumError, HubError, TruncatedFileError

CHUNK = 1 << 20


def sha256_file(path):
    """Hex sha256 of the file at `path`, read in 1 MiB chunks.

    Args:
        path: the file to hash (a str or path-like).

    Returns:
        The 64-character lowercase hex digest, a str.
    """
    digest = hashlib.sha256()
    path = regular_file(path, "a weights file", HubError)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path, sha256, size=None):
    """Checks the size and sha256 of a file.

    Args:
        path: the file.
        sha256: the expected hex sha256 (64 hexadecimal digits, any case).
        size: the expected size in bytes, or None.

    Returns:
        `path`.

    Raises:
        TruncatedFileError: if the file is shorter than `size` bytes.
        ChecksumError: if no valid sha256 is given, or the file's is another.
        HubError: if `size` is not a non-negative integer.
    """
    if not sha256:
        raise ChecksumError(f"{path}: no sha256 recorded for this file; refusing to load it.")
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ChecksumError(f"{path}: the expected sha256 must be 64 hexadecimal digits, got "
                            f"{repr(sha256)[:80]}; refusing to load the file.")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise HubError(f"{path}: the expected size must be a non-negative integer, got "
                       f"{repr(size)[:80]}.")
    actual_size = os.path.getsize(path)
    if size is not None and actual_size < int(size):
        raise TruncatedFileError(
            f"{path}: truncated file: {actual_size} bytes, expected {int(size)} "
            f"(sha256 should be {sha256})."
        )
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise ChecksumError(
            f"{path}: sha256 mismatch: expected {sha256.lower()}, actual {actual} "
            f"({actual_size} bytes). The file is corrupt or was replaced; delete it and "
            "fetch it again."
        )
    return path
