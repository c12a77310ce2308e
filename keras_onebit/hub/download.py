"""Downloads of manifest entries into the user cache: streamed through a temp
file beside the destination, capped at the expected size, renamed only after
the sha256 matches; nothing is left behind on failure. A .mat of the authors'
is converted into a cache entry.
"""

import contextlib
import hashlib
import http.client
import math
import os
import pathlib
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from keras_onebit.hub import folders
from keras_onebit.hub.checksum import verify_file
from keras_onebit.hub.errors import ChecksumError, DownloadError, HubError, ModelNotAvailableError

MAT_FORMATS = ("mcdonnell-keras-mat", "mcdonnell-matlab-mat")
TIMEOUT_ENV = "KERAS_ONEBIT_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT = 30.0  # seconds, for the connection and for each read
MAX_DOWNLOAD_BYTES = 1 << 30  # for a manifest entry without `bytes`
CHUNK = 1 << 20


def download_timeout():
    """Seconds to wait for the connection and for each read of a download:
    `$KERAS_ONEBIT_DOWNLOAD_TIMEOUT`, else 30.

    Raises:
        HubError: if the variable is not a positive number.
    """
    value = os.environ.get(TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise HubError(f"${TIMEOUT_ENV} must be a positive number of seconds, got {value!r}.")
    return seconds


def _fetch(url, out, limit, timeout):
    """Streams `url` into the open file `out`, at most `limit` bytes.
    Returns (hex sha256, bytes read)."""
    digest, count = hashlib.sha256(), 0
    with urllib.request.urlopen(url, timeout=timeout) as response:
        declared = response.headers.get("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > limit:
            raise DownloadError(f"the server announces {int(declared)} bytes, more than the "
                                f"{limit} bytes expected")
        while chunk := response.read(min(CHUNK, limit + 1 - count)):
            count += len(chunk)
            if count > limit:
                raise DownloadError(f"more than the {limit} bytes expected; stopped reading")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), count


def _reason(error):
    """One line saying why a download failed."""
    if isinstance(error, urllib.error.HTTPError):
        error.close()
        return folders.one_line(f"HTTP error {error.code}: {error.reason}")
    if isinstance(error, urllib.error.URLError):
        if not isinstance(error.reason, OSError):
            return folders.one_line(error.reason)
        error = error.reason
    if isinstance(error, TimeoutError):
        return f"no answer within {download_timeout():g} s (${TIMEOUT_ENV})"
    return folders.one_line(f"{type(error).__name__}: {error}")


def _download(url, dest, sha256, size=None, offline=""):
    """Fetches `url` to `dest` through a temp file in `dest`'s folder, renamed
    only after its sha256 matches; nothing is left behind on failure.

    Args:
        url: what to fetch.
        dest: the file to write.
        sha256: its expected hex sha256.
        size: its expected size in bytes (also the cap on what is read), or
            None (cap `MAX_DOWNLOAD_BYTES`).
        offline: what to do instead, appended to every error.

    Returns:
        `dest`.

    Raises:
        DownloadError: a timeout, refused connection, HTTP or I/O error, or a
            file larger than `size`; names the URL and `offline`.
        ChecksumError: the file's sha256 or size is not the expected one.
    """
    dest = pathlib.Path(dest)
    if dest.is_file():
        with contextlib.suppress(ChecksumError):
            return verify_file(dest, sha256, size)
    limit = MAX_DOWNLOAD_BYTES if size is None else size
    timeout = download_timeout()
    tmp = None
    try:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
            with os.fdopen(fd, "wb") as out:
                actual, count = _fetch(url, out, limit, timeout)
        except DownloadError as e:
            raise DownloadError(f"Download of {url} failed: {e}. {offline}".strip()) from e
        except HubError:
            raise
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise DownloadError(f"Download of {url} failed ({_reason(e)}). "
                                f"{offline}".strip()) from e
        if actual != sha256.lower() or (size is not None and count != size):
            raise ChecksumError(
                f"{url}: the download ({count} bytes, sha256 {actual}) is not the file the "
                f"manifest {folders.manifest_path()} names ({size if size is not None else '?'}"
                f" bytes, sha256 {sha256.lower()}); not kept. {offline}".strip())
        os.replace(tmp, dest)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return dest


def _offline_hint(entry):
    if entry.get("source_format") in MAT_FORMATS:
        return (f"Offline: fetch the file elsewhere, run `python -m keras_onebit hub "
                f"import-mcdonnell --mat FILE --out DIR` and add DIR to $KERAS_ONEBIT_HUB (or put "
                f"an existing {entry['id']}/ entry folder in a folder listed there).")
    return (f"Offline: put the {entry['id']}/ entry folder in a folder listed in "
            "$KERAS_ONEBIT_HUB.")


def _download_name(entry):
    """The file name under `downloads/`: the URL's last path segment if it is a
    plain name, else `<id>.download`."""
    name = pathlib.PurePosixPath(urllib.parse.urlparse(entry["url"]).path).name
    return name if folders.is_plain_name(name) else f"{entry['id']}.download"


def download_entry(entry):
    """Downloads a manifest entry with a `url` into the user cache.

    Args:
        entry: the manifest entry (checked again here: its id becomes a
            folder name).

    Returns:
        The entry folder in the cache (a .mat is converted into one).

    Raises:
        FieldError: a bad entry field (e.g. an id with a separator).
        DownloadError, ChecksumError: see `_download`.
    """
    folders.check_manifest_entry(entry, folders.manifest_path())
    if not entry.get("url"):
        raise ModelNotAvailableError(f"Hub model {entry['id']!r} has no download URL.")
    model_id = entry["id"]
    cache = folders.cache_dir()
    raw = _download(entry["url"], cache / "downloads" / _download_name(entry), entry["sha256"],
                    entry.get("bytes"), offline=_offline_hint(entry))
    if entry.get("source_format") in MAT_FORMATS:
        from keras_onebit.hub.mcdonnell import import_mcdonnell

        layout = entry["source_format"].split("-")[1]
        return import_mcdonnell(raw, cache, layout=layout, model_id=model_id)
    # A packed weights file: build the entry folder around it.
    folder = cache / model_id
    folder.mkdir(parents=True, exist_ok=True)
    os.replace(raw, folder / folders.WEIGHTS_NAME)
    config = {"format": folders.ENTRY_FORMAT, "version": 1, "id": model_id,
              "factory": entry.get("factory"), "factory_kwargs": entry.get("factory_kwargs") or {},
              "dataset": entry.get("dataset"), "binary": entry.get("binary"),
              "weights": folders.WEIGHTS_NAME, "weights_sha256": entry["sha256"],
              "weights_bytes": entry.get("bytes"), "source": {"url": entry["url"]}}
    folders.write_json_atomic(folder / folders.CONFIG_NAME, config)
    return folder
