"""Errors of the hub. All are `HubError`, a `ValueError`; each names the file or model.

Messages are one line and say what is wrong and where (the file, the manifest
entry, the field, the URL).
"""


from keras_onebit.errors import Error


class HubError(Error, ValueError):
    """A hub entry, manifest or weights file the hub cannot use."""


class UnknownModelError(HubError, KeyError):
    """A model name that no manifest entry or hub folder knows (lists the known ones)."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidIdError(UnknownModelError):
    """A model id that is not a plain name: letters, digits, '_', '.', '-' only,
    no path separator, not starting with '.', at most 128 characters."""


class PathNotFoundError(HubError, FileNotFoundError):
    """A name given as a path (it has a separator or a weights suffix) that does not exist."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class FieldError(HubError):
    """A field of an entry's config.json or of the manifest with the wrong type or
    value (names the file, the manifest entry and the field)."""


class ModelNotAvailableError(HubError, FileNotFoundError):
    """A known model whose files are nowhere local and that has no download URL."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class DownloadError(HubError):
    """A download that failed (timeout, refused, HTTP error, too large); names the
    URL and what to do offline."""


class ChecksumError(HubError):
    """A file whose sha256 is not the expected one (names file, expected, actual)."""


class TruncatedFileError(ChecksumError):
    """A file shorter than its recorded size."""


class ArchitectureMismatchError(HubError):
    """Weights for another architecture (names the first mismatching layer and shapes)."""


class MatFormatError(HubError):
    """A .mat file that is not one of the authors' two WRN layouts (names what is missing)."""
