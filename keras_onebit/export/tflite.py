"""TFLite (LiteRT) conversions of the deploy clone.

- "float": +-alpha float kernels, builtin ops only (XNNPACK runs it).
- "int8": full-integer post-training quantization from representative data;
  binary kernels become exactly +-127 per channel. Float input and output.
  A network with binary activations (`input_quantizer`) instead gets exact
  int8 convs of its signs in its float graph, without calibration
  (sign_int8.py): rounding its pre-sign values would flip signs.
- "int4": fake_quant(4 bits, narrow range) kernels and the private converter
  flag `_experimental_low_bit_qat`: exact +-7 int4 kernels, int8 activations.
  A network with binary activations gets int8's exact sign convs with INT4
  +-7 filters (sign_int8.py, `bits=4`): the same signs and outputs as int8.
- "packed": the float model with each binary filter stored as UINT8 sign
  bits (+ alpha), expanded once at start-up into a variable (bitpack.py);
  computes exactly what "float" computes.
- "packed_int8": the int8 model, filters likewise as UINT8 sign bits expanded
  once into +-127 int8 variables; computes exactly what "int8" computes.
- "micro": the int8 model with TFLite Micro 1-bit lookup-table compression
  (micro.py); runs only on TFLite Micro.
"""

import pathlib

import numpy as np
import tensorflow as tf

from keras_onebit import compat
from keras_onebit.errors import require_tensorflow_backend
from keras_onebit.export import bitpack, sign_int8
from keras_onebit.export.deploy import deploy_clone
from keras_onebit.export.errors import ExportError
from keras_onebit.export.files import atomic_write, check_writable
from keras_onebit.layer_walk import all_layers

FORMATS = ("float", "int8", "int4", "packed", "packed_int8", "micro")
QUANTIZED = ("int8", "int4", "packed_int8", "micro")
REPRESENTATIVE_SAMPLES = 200


def _concrete_function(model):
    shape = (1,) + tuple(model.input_shape[1:])

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="pixels")])
    def serve(x):
        return model(x, training=False)

    return serve.get_concrete_function()


def frozen_function(model):
    """The model's inference function with every variable folded into a constant
    (`from_concrete_functions` with variables leaves them uninitialised)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    return convert_variables_to_constants_v2(_concrete_function(model))


def _converter(model):
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen_function(model)])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def _representative(data, input_shape, samples=None):
    if data is None:
        raise ExportError("Quantized formats (int8, int4, packed_int8, micro) need "
                          "representative_data: a few hundred real input images, as the model "
                          "takes them.")
    try:
        data = np.asarray(data, np.float32)
    except (TypeError, ValueError) as e:
        raise ExportError(f"representative_data is not numeric images ({e}).") from e
    if data.ndim == 0 or tuple(data.shape[1:]) != tuple(input_shape[1:]):
        raise ExportError(f"representative_data has shape {data.shape}; the model takes "
                          f"(N, {', '.join(map(str, input_shape[1:]))}).")
    if len(data) == 0:
        raise ExportError("representative_data holds no images; quantization needs a few "
                          "hundred.")
    finite = np.isfinite(data).reshape(len(data), -1).all(axis=1)
    if not finite.all():
        first = int(np.argmin(finite))
        raise ExportError(f"representative_data image {first} holds NaN or infinite values "
                          f"({int((~finite).sum())} such images): calibrating on them gives a "
                          "wrong model.")
    data = data[:samples or REPRESENTATIVE_SAMPLES]

    def generate():
        for image in data:
            yield [image[None]]

    return generate


def binary_activations(model):
    """True when some layer of `model` binarizes its input (`input_quantizer`)."""
    return any(getattr(layer, "input_quantizer", None) is not None for layer in all_layers(model))


def convert(model, format="float", representative_data=None, expansion_record=True):
    """The .tflite bytes of `model` in `format` (micro: the uncompressed int8 model).

    Converted with TensorFlow's TFLite converter from a deploy clone with
    constant kernels (never from the training graph).

    Args:
        model: a built Keras model of the exportable layer types.
        format: one of `FORMATS` (default "float").
        representative_data: real input images (N, H, W, C), raw as the model
            takes them; needed by "int8", "int4", "packed_int8" and "micro"
            (the first `REPRESENTATIVE_SAMPLES` are used; a network with
            binary activations needs none: its int8 scales are exact).
        expansion_record: packed formats carry the record that expands them
            into the plain file byte for byte (`expand`, examples/onebit_expand.c);
            False saves its few kB where the file only runs as stored.

    Returns:
        The .tflite flatbuffer, as bytes.

    Raises:
        ExportError: an unknown format; a layer or input quantizer the
            exporters cannot convert; missing, empty, wrongly shaped or
            non-finite representative data for a quantized format; or a
            failed TFLite conversion.
    """
    if format not in FORMATS:
        raise ExportError(f"Unknown format {format!r}: expected one of {', '.join(FORMATS)}.")
    require_tensorflow_backend("TFLite export")
    if format in bitpack.BASE:
        plain = convert(model, bitpack.BASE[format], representative_data)
        return bitpack.pack_filters(plain, expansion_record=expansion_record)[0]
    if format in sign_int8.FORMAT_BITS and binary_activations(model):
        return sign_int8.quantize_sign_convs(convert(model, "float"),
                                             sign_int8.FORMAT_BITS[format])[0]
    mode = "int4" if format == "int4" else "float"
    representative = (_representative(representative_data, model.input_shape)
                      if format in QUANTIZED else None)
    converter = _converter(deploy_clone(model, mode))
    if format in ("int8", "micro", "int4"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if format == "int4":
        compat.enable_low_bit_qat(converter)
    try:
        return converter.convert()
    except Exception as e:  # the converter's errors are long and varied
        raise ExportError(f"TFLite conversion to {format} failed: {e}") from e


def export_tflite(model, path, format="float", representative_data=None, expansion_record=True):
    """Writes `model` as a .tflite file in `format` at `path` (atomically).

    Args:
        model: a built Keras model of the exportable layer types.
        path: the .tflite file to write (its folder must exist).
        format: one of `FORMATS` (default "float"); "micro" also compresses
            the int8 model with TFLite Micro's 1-bit lookup tables.
        representative_data: real input images (N, H, W, C), raw as the model
            takes them, needed by int8, int4, packed_int8 and micro.
        expansion_record: as `convert`.

    Returns:
        The path written, a `pathlib.Path`.

    Raises:
        ExportError: `path` cannot be written, or as `convert`.
    """
    check_writable(path)
    if format == "micro":
        from keras_onebit.export import micro

        data = micro.compress(convert(model, "int8", representative_data))
    else:
        data = convert(model, format, representative_data, expansion_record)
    with atomic_write(path) as f:
        f.write(data)
    return pathlib.Path(path)

