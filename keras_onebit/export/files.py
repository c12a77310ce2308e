"""The exporters' file writes: `keras_onebit.fileio`'s atomic, checked writes,
raising ExportError (one line) for a path that cannot be written."""

import functools

from keras_onebit import fileio
from keras_onebit.export.errors import ExportError

check_writable = functools.partial(fileio.check_writable, error=ExportError)
atomic_write = functools.partial(fileio.atomic_write, error=ExportError)
write_bytes = functools.partial(fileio.write_bytes, error=ExportError)
write_text = functools.partial(fileio.write_text, error=ExportError)
