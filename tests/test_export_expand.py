"""`keras_onebit.export.expand`: a packed file back into its plain twin, exactly;
files that are not packed files of this library, truncated or tampered ones, and
newer formats are refused with one line. (The shipped default's expansion on real
images: tests/test_shipped_default.py.)"""

import keras
import numpy as np
import pytest

import keras_onebit as kob
from keras_onebit.export import ExportError, bitpack, expand, report, tflite


@pytest.fixture(scope="module")
def fully_binary():
    """A seeded fully binary WRN-10-2 (binary activations; its 32-channel convs at 32x32
    are im2col products in `packed`), with its four TFLite files."""
    keras.utils.set_random_seed(3)
    model = kob.models.wrn(10, 2, input_quantizer="ste_sign", classifier_activation=None)
    images = np.random.default_rng(3).uniform(0, 255, (24, 32, 32, 3)).astype("float32")
    files = {fmt: tflite.convert(model, fmt, images[:16])
             for fmt in ("float", "int8", "packed", "packed_int8")}
    assert bitpack.operator_counts(files["packed"]).get("BATCH_MATMUL", 0) >= 2
    return images[16:], files


@pytest.mark.parametrize("packed, plain", [("packed", "float"), ("packed_int8", "int8")])
def test_fully_binary_net_expands_exactly(fully_binary, packed, plain, tmp_path):
    images, files = fully_binary
    path = tmp_path / f"m_{packed}.tflite"
    path.write_bytes(files[packed])
    expanded = expand(path)
    assert expanded == expand(files[packed])  # a path or bytes, deterministic
    for xnnpack in (True, False):
        np.testing.assert_array_equal(
            report.litert_outputs(expanded, images, xnnpack=xnnpack),
            report.litert_outputs(files[plain], images, xnnpack=xnnpack))
    counts = bitpack.operator_counts(expanded)
    assert counts == bitpack.operator_counts(files[plain])
    assert not {"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "BATCH_MATMUL"} & set(counts)


def refused(data, *texts):
    with pytest.raises(ExportError) as caught:
        expand(data)
    message = str(caught.value)
    assert "\n" not in message and all(t in message for t in texts), message


def test_bad_files_are_refused_in_one_line(fully_binary, tmp_path):
    _, files = fully_binary
    packed = files["packed_int8"]
    refused(b"", "not a .tflite file")
    refused(b"\x00" * 64, "not a .tflite file")
    refused(files["int8"], "not a packed file of keras_onebit")
    refused(packed[:200], "truncated")
    newer = packed.replace(b"onebit_unpack\x00", b"onebit_unpack/v2\x00")
    assert len(newer) != len(packed) or newer != packed
    refused(bytes(bytearray(packed).replace(b"onebit_unpack", b"onebit_unpac/")),
            "not a packed file")
    refused(tmp_path, "is a folder")
    refused(tmp_path / "missing.tflite", "no such file")


def test_a_newer_format_version_is_refused(fully_binary):
    from keras_onebit.export.expand import schema

    _, files = fully_binary
    s = schema()
    model = s.ModelT.InitFromPackedBuf(bytearray(files["packed_int8"]), 0)
    model.subgraphs[1].name = b"onebit_unpack/v2"
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    refused(bytes(builder.Output()), "format v2", "upgrade keras_onebit")


def test_a_tampered_start_up_shape_is_refused(fully_binary):
    from keras_onebit.export.expand import schema

    _, files = fully_binary
    s = schema()
    model = s.ModelT.InitFromPackedBuf(bytearray(files["packed_int8"]), 0)
    graph = model.subgraphs[1]
    gather = next(op for op in graph.operators
                  if model.operatorCodes[op.opcodeIndex].builtinCode
                  == s.BuiltinOperator.GATHER)
    graph.tensors[int(gather.outputs[0])].shape = np.asarray([1 << 20, 1 << 20], np.int32)
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    refused(bytes(builder.Output()), "tampered packed file")


def test_interpreter_helper_expands_packed_files_only(fully_binary, tmp_path):
    from keras_onebit.export import interpreter

    images, files = fully_binary
    path = tmp_path / "m_packed_int8.tflite"
    path.write_bytes(files["packed_int8"])
    it = interpreter(path, num_threads=1)
    assert not {"CALL_ONCE", "READ_VARIABLE"} & {d["op_name"] for d in it._get_ops_details()}
    np.testing.assert_array_equal(report.interpreter_outputs(it, images),
                                  report.litert_outputs(files["int8"], images))
    plain = interpreter(files["float"])
    np.testing.assert_array_equal(report.interpreter_outputs(plain, images),
                                  report.litert_outputs(files["float"], images))
