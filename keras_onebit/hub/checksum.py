"""sha256 of files, and the check run on every load."""

import hashlib
import os

from keras_onebit.hub.errors import ChecksumError, TruncatedFileError

CHUNK = 1 << 20


def sha256_file(path):
    """Hex sha256 of the file at `path`, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path, sha256, size=None):
    """Raises `TruncatedFileError` if the file is shorter than `size` bytes
    (when given), `ChecksumError` if its sha256 is not `sha256`. Returns path."""
    if not sha256:
        raise ChecksumError(f"{path}: no sha256 recorded for this file; refusing to load it.")
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
