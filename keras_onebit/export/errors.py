"""The one error type of the exporter."""

from keras_onebit.errors import Error


class ExportError(Error, ValueError):
    """A model, archive or output path the exporter cannot handle.

    The message names what is wrong: the layer and its type, the archive entry,
    both shapes of a mismatch, or the path.
    """
