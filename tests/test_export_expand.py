"""`keras_onebit.export.expand`: a packed file back into its plain twin, byte for
byte from its expansion record (from its start-up graph for files packed before
the record: the same outputs); files that are not packed files of this library,
truncated or tampered ones, and newer formats are refused with one line. (The
shipped default's expansion on real images: tests/test_shipped_default.py; the C
expander: tests/test_expand_c.py.)"""

import os
import pathlib
import shutil
import subprocess

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


def without_record(packed):
    """The packed file with its expansion record taken out: as keras_onebit wrote it
    before the record existed (and as `expansion_record=False` writes it)."""
    import flatbuffers

    from keras_onebit.export import expansion_record, flatbuffer
    from keras_onebit.export.expand import schema

    model = schema().ModelT.InitFromPackedBuf(bytearray(packed), 0)
    model.metadata = [m for m in model.metadata if m.name != expansion_record.NAME]
    flatbuffer.remove_unused_buffers(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize("plain", ["float", "int8"])
def test_packing_without_the_record_is_the_file_without_it(fully_binary, plain):
    _, files = fully_binary
    packed = bitpack.pack_filters(files[plain])[0]
    bare = bitpack.pack_filters(files[plain], expansion_record=False)[0]
    assert bare == without_record(packed) and b"OBXP" not in bare
    record = len(packed) - len(bare)
    assert 0 < record < 0.1 * len(bare), record


@pytest.mark.parametrize("packed, plain", [("packed", "float"), ("packed_int8", "int8")])
def test_fully_binary_net_expands_to_the_plain_export_byte_for_byte(fully_binary, packed, plain,
                                                                    tmp_path):
    _, files = fully_binary
    path = tmp_path / f"m_{packed}.tflite"
    path.write_bytes(files[packed])
    assert expand(path) == expand(files[packed]) == files[plain]  # a path or bytes
    assert len(files[plain]) > 4 * len(files[packed])


@pytest.mark.parametrize("packed, plain", [("packed", "float"), ("packed_int8", "int8")])
def test_a_file_without_record_expands_from_its_start_up_graph(fully_binary, packed, plain):
    """Packed files written before the record: the start-up graph evaluated with NumPy
    gives the plain model's operators and constants (not its bytes)."""
    images, files = fully_binary
    old = without_record(files[packed])
    assert len(old) < len(files[packed])
    expanded = expand(old)
    assert expanded != files[plain]
    for xnnpack in (True, False):
        np.testing.assert_array_equal(
            report.litert_outputs(expanded, images, xnnpack=xnnpack),
            report.litert_outputs(files[plain], images, xnnpack=xnnpack))
    counts = bitpack.operator_counts(expanded)
    assert counts == bitpack.operator_counts(files[plain])
    assert not {"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "BATCH_MATMUL"} & set(counts)


def test_packed_files_run_as_stored_with_their_record(fully_binary):
    """The record is metadata: LiteRT's builtin kernels run the packed file as before,
    exactly as the plain one (with XNNPACK the plain file's convs take other kernels)."""
    images, files = fully_binary
    np.testing.assert_array_equal(
        report.litert_outputs(files["packed_int8"], images, xnnpack=False),
        report.litert_outputs(files["int8"], images, xnnpack=False))


def refused(data, *texts):
    with pytest.raises(ExportError) as caught:
        expand(data)
    message = str(caught.value)
    assert "\n" not in message and all(t in message for t in texts), message


def patched(data, marker, offset, value):
    """`data` with the bytes at `offset` after `marker` replaced by `value`."""
    at = data.index(marker) + offset
    return data[:at] + value + data[at + len(value):]


def tampered_records(packed):
    """(file, words of the one-line error) for records broken in each checked way."""
    import struct

    entry = 32  # the first filter entry follows the 32-byte header
    return [
        (patched(packed, b"OBXP", 4, struct.pack("<I", 2)), ("format v2", "upgrade")),
        (patched(packed, b"OBXP", 4, struct.pack("<I", 0)), ("tampered", "record")),
        (patched(packed, b"OBXP", 0, b"OBXQ"), ("tampered", "OBXP")),
        (patched(packed, b"OBXP", 8, struct.pack("<Q", 1 << 40)), ("tampered", "declares")),
        (patched(packed, b"OBXP", 28, struct.pack("<I", 1)), ("tampered", "stream")),
        (patched(packed, b"OBXP", 28, struct.pack("<I", 1 << 30)), ("tampered", "declares")),
        (patched(packed, b"OBXP", entry, struct.pack("<Q", 1 << 33)), ("tampered", "filter 0")),
        (patched(packed, b"OBXP", entry + 8, struct.pack("<Q", 8)), ("tampered", "filter 0")),
        (patched(packed, b"OBXP", entry + 16, struct.pack("<I", 0)), ("tampered", "filter 0")),
        (patched(packed, b"OBXP", entry + 20, b"\x07"), ("tampered", "filter 0")),
        (patched(packed, b"OBXP", entry + 24, struct.pack("<I", 1 << 30)), ("tampered",)),
        (patched(packed, b"OBXP", entry + 32, struct.pack("<f", float("inf"))),
         ("tampered", "filter 0")),
    ]


def test_bad_files_are_refused_in_one_line(fully_binary, tmp_path):
    _, files = fully_binary
    packed = files["packed_int8"]
    refused(b"", "not a .tflite file")
    refused(b"\x00" * 64, "not a .tflite file")
    refused(files["int8"], "not a packed file of keras_onebit")
    refused(packed[:200], "truncated")
    old = without_record(packed)
    refused(bytes(bytearray(old).replace(b"onebit_unpack", b"onebit_unpac/")),
            "not a packed file")
    refused(tmp_path, "is a folder")
    refused(tmp_path / "missing.tflite", "no such file")
    for data, words in tampered_records(packed):
        refused(data, *words)


def test_a_corrupt_skeleton_stream_is_refused(fully_binary):
    from keras_onebit.export import expansion_record

    _, files = fully_binary
    packed = files["packed_int8"]
    header = expansion_record.HEADER.unpack_from(packed, packed.index(b"OBXP"))
    stream = 32 + 40 * header[4]
    refused(patched(packed, b"OBXP", stream, b"\x05"), "skeleton stream is corrupt")
    refused(patched(packed, b"OBXP", stream + 1, b"\x7f"), "skeleton stream is corrupt")


def test_a_newer_format_version_is_refused(fully_binary):
    from keras_onebit.export.expand import schema

    _, files = fully_binary
    s = schema()
    model = s.ModelT.InitFromPackedBuf(bytearray(without_record(files["packed_int8"])), 0)
    model.subgraphs[1].name = b"onebit_unpack/v2"
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    refused(bytes(builder.Output()), "format v2", "upgrade keras_onebit")


def test_a_tampered_start_up_shape_is_refused(fully_binary):
    from keras_onebit.export.expand import schema

    _, files = fully_binary
    s = schema()
    model = s.ModelT.InitFromPackedBuf(bytearray(without_record(files["packed_int8"])), 0)
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


# ----------------------------------------------------------------------------- the C expander

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
SANITIZERS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=undefined")


def compile_expander(out, flags=()):
    """examples/onebit_expand.c + its command line, built with the system C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc or clang) on this machine")
    command = [compiler, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", *flags,
               "-o", str(out), str(EXAMPLES / "onebit_expand.c"),
               str(EXAMPLES / "onebit_expand_main.c")]
    result = subprocess.run(command, capture_output=True, text=True)
    return out if result.returncode == 0 else result.stderr


@pytest.fixture(scope="module")
def expander(tmp_path_factory):
    built = compile_expander(tmp_path_factory.mktemp("c") / "onebit_expand")
    assert isinstance(built, pathlib.Path), built
    return built


def run_c(binary, data, tmp_path, env=None):
    """(exit code, stderr, output bytes or None) of the C expander on `data`."""
    source, out = tmp_path / "in.tflite", tmp_path / "out.tflite"
    source.write_bytes(data)
    out.unlink(missing_ok=True)
    result = subprocess.run([str(binary), str(source), str(out)], capture_output=True, text=True,
                            env=env, timeout=60)
    return result.returncode, result.stderr, out.read_bytes() if out.exists() else None


@pytest.mark.parametrize("packed", ["packed", "packed_int8"])
def test_c_expander_writes_python_s_bytes(fully_binary, expander, packed, tmp_path):
    _, files = fully_binary
    code, err, out = run_c(expander, files[packed], tmp_path)
    assert (code, err) == (0, "") and out == expand(files[packed])


def test_c_expander_refuses_bad_files_in_one_line(fully_binary, expander, tmp_path):
    _, files = fully_binary
    packed = files["packed_int8"]
    cases = [(b"", ("not a .tflite file",)), (files["int8"], ("not a packed file",)),
             (without_record(packed), ("not a packed file",)), *tampered_records(packed)]
    for data, words in cases:
        code, err, out = run_c(expander, data, tmp_path)
        assert code == 1 and out is None and err.count("\n") == 1, (words, err)
        assert all(w in err for w in words), (words, err)
    assert not list(tmp_path.glob("*.tmp"))


def test_c_and_python_agree_on_damaged_records(fully_binary, tmp_path):
    """300 random byte changes inside the record and 40 truncations of the file: the C
    expander, built with AddressSanitizer and UBSan, never reads or writes out of
    bounds, and accepts exactly what Python accepts, with the same bytes."""
    built = compile_expander(tmp_path / "onebit_expand_asan", SANITIZERS)
    if not isinstance(built, pathlib.Path):
        pytest.skip(f"the C compiler builds no sanitizer binary here: {built.splitlines()[0]}")
    _, files = fully_binary
    packed = files["packed_int8"]
    start = packed.index(b"OBXP")
    size = 32 + 40 * int.from_bytes(packed[start + 24:start + 28], "little") + int.from_bytes(
        packed[start + 28:start + 32], "little")
    rng = np.random.default_rng(0)
    changes = zip(rng.integers(start, start + size, 300), rng.integers(0, 256, 300), strict=True)
    cases = [packed[:at] + bytes([value]) + packed[at + 1:] for at, value in changes]
    cases += [packed[:n] for n in rng.integers(8, len(packed), 40)]
    env = {**os.environ, "ASAN_OPTIONS": "exitcode=86:detect_leaks=0",
           "UBSAN_OPTIONS": "halt_on_error=1:exitcode=87:print_stacktrace=1"}
    for data in cases:
        code, err, out = run_c(built, data, tmp_path, env)
        assert code in (0, 1), err
        try:
            want = expand(data)
        except ExportError:
            want = None
        assert out == want, err
