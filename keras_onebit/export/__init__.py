"""Export: the packed one-bit archive and TFLite / TFLite Micro models.

    from keras_onebit import export
    export.save_packed(model, "wrn.onebit")       # sign bits + scales + floats
    model = export.load_packed("wrn.onebit")
    export.export_tflite(model, "wrn.tflite", format="int8",
                         representative_data=images)

Formats of `export_tflite` (all converted from a deploy clone with constant
kernels, never from the training graph):
- "float": +-alpha float32 kernels; the reference (XNNPACK in LiteRT).
- "int8": full-integer post-training quantization from `representative_data`;
  binary kernels are exactly +-127 per channel. A network with binary
  activations instead gets exact int8 convs of its signs inside its float
  graph (sign_int8; no calibration), so every format agrees with Keras.
- "int4": exact +-7 int4 kernels (fake_quant + `_experimental_low_bit_qat`),
  int8 activations; with binary activations, int8's exact sign convs with
  INT4 filters.
- "packed": the float model with the sign bits of each binary filter in a
  UINT8 tensor (builtin ops only; LiteRT and TFLite Micro), expanded once at
  the first invoke into variables; computes exactly what "float" computes.
- "packed_int8": the same for the int8 model (+-127 int8 variables): one bit
  per weight in the file, int8 speed; computes exactly what "int8" computes.
- "micro": int8 + TFLite Micro 1-bit lookup tables (TFLite Micro only).
`export_bundle` (bundle.py) writes every format with a report; the command is
`python -m keras_onebit export`. docs/FORMAT.md has the byte layouts.

Modules, lower first (a module imports only those before it): errors, files,
packed (archive), deploy (deploy clone), lz and expansion_record (what gives a
packed .tflite back its source model, byte for byte), bitpack (UINT8 sign bits
in a .tflite), expand (packed file -> plain file, no TensorFlow), sign_int8
(exact int8 convs of signs), tflite (conversions), micro (TFLM compression,
arena, C source), report (measurements, report files), fallback (BN statistics
for a stand-in model the caller builds), bundle (all formats at once).
"""

from keras_onebit.export.errors import ExportError
from keras_onebit.export.expand import expand, interpreter
from keras_onebit.export.packed import (
    limit_bytes,
    load_packed,
    read_manifest,
    save_packed,
)

# The TFLite converter needs TensorFlow: its names are imported on first use, so
# `import keras_onebit` works on Keras's JAX and PyTorch backends without it.
_TFLITE = ("FORMATS", "convert", "export_tflite")


def __getattr__(name):
    if name in _TFLITE:
        from keras_onebit.errors import require

        require("tensorflow", "cpu", "TFLite export (the converter)")
        from keras_onebit.export import tflite

        return getattr(tflite, name)
    raise AttributeError(f"module 'keras_onebit.export' has no attribute {name!r}")


def export_bundle(*args, **kwargs):
    """Exports `model` in every format into one folder and measures each file.

    Imports `keras_onebit.export.bundle` (LiteRT, TFLite Micro) only when
    called. Writes `<name>.onebit` and `<name>_<format>.tflite` (and the
    micro C source) into `out_dir`; the report it returns is what
    `python -m keras_onebit export` writes as report.json / report.md.

    Args:
        model: a built Keras model of the exportable layer types.
        out_dir: the output folder (created if missing).
        images: real input images (N, H, W, C) for the comparison with Keras
            and the latency.
        representative: images for the int8 / int4 calibration.
        formats: the TFLite formats (a sequence of `FORMATS` names or a
            comma-separated string); default all.
        name: the file name stem; default `model.name`.
        source: free text recorded in the archive's metadata and the report.
        micro_images: images run in the TFLite Micro interpreter.
        threads: LiteRT threads for the outputs and the latency.
        latency_runs: timed LiteRT invocations per format.
        command: the command line, recorded in the report.
        tflm_formats: formats also run in TFLite Micro.
        progress: a print-like function for the progress lines.
        expansion_record: packed files carry the record that expands them into
            their plain twins byte for byte (default); False saves its few kB.

    Returns:
        The report dict: "model" (name, binary weights, float parameters,
        one-bit limit bytes, float32 bytes), "images", "threads",
        "latency_runs", "command", "formats" (one row per file: bytes, ratio to
        the one-bit limit, max |difference| and argmax agreement with Keras,
        latency) and "seconds".

    Raises:
        ExportError: an unknown format, a layer or input quantizer the
            exporters cannot convert, an output folder that cannot be
            created or written, missing or bad representative images, or a
            failed conversion (all before any file for the unsupported layer,
            format or folder).
    """
    from keras_onebit.export.bundle import export_bundle as run

    return run(*args, **kwargs)


__all__ = [
    "FORMATS", "ExportError", "convert", "expand", "export_bundle", "export_tflite",
    "interpreter", "limit_bytes",
    "load_packed", "read_manifest", "save_packed",
]
