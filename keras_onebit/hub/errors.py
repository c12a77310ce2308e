"""Errors of the hub. All are `HubError`, a `ValueError`; each names the file or model."""


from keras_onebit.errors import Error


class HubError(Error, ValueError):
    """A hub entry, manifest or weights file the hub cannot use."""


class UnknownModelError(HubError, KeyError):
    """A model name that no manifest entry or hub folder knows (lists the known ones)."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelNotAvailableError(HubError, FileNotFoundError):
    """A known model whose files are nowhere local and that has no download URL."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class ChecksumError(HubError):
    """A file whose sha256 is not the expected one (names file, expected, actual)."""


class TruncatedFileError(ChecksumError):
    """A file shorter than its recorded size."""


class ArchitectureMismatchError(HubError):
    """Weights for another architecture (names the first mismatching layer and shapes)."""


class MatFormatError(HubError):
    """A .mat file that is not one of the authors' two WRN layouts (names what is missing)."""
