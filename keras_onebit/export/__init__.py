"""Export: the packed one-bit archive and TFLite / TFLite Micro models.

    from keras_onebit import export
    export.save_packed(model, "wrn.onebit")       # sign bits + scales + floats
    model = export.load_packed("wrn.onebit")
    export.export_tflite(model, "wrn.tflite", format="int8",
                         representative_data=images)

Formats of `export_tflite`: "float", "int8", "int4", "packed", "micro".
See docs/FORMAT.md for the archive's byte layout.
"""

from keras_onebit.export.errors import ExportError
from keras_onebit.export.packed import (
    limit_bytes,
    load_packed,
    read_manifest,
    save_packed,
)
from keras_onebit.export.tflite import FORMATS, convert, export_tflite

__all__ = [
    "FORMATS", "ExportError", "convert", "export_tflite", "limit_bytes", "load_packed",
    "read_manifest", "save_packed",
]
