"""TFLite Micro: 1-bit lookup-table compression, arena size, C source.

`compress(int8_bytes)` finds every CONV_2D / DEPTHWISE_CONV_2D /
FULLY_CONNECTED filter holding at most two values per output channel (the
binary kernels, +-127 after int8 quantization) and compresses it with
tflite-micro's LookUpTableCompression(index_bitwidth=1, PerChannel(axis=0)):
one bit per weight plus a 2-entry table per channel. PerTensor tables give
wrong outputs with per-channel int8 filters (SPEC §6). The result runs only on
TFLite Micro (its DECODE operator) and is bit-identical to the int8 model.

TFLite Micro needs an explicit arena: `minimum_arena(model_bytes)` measures
it by bisection with the tflite-micro Python interpreter, and
`declared_arena(minimum)` adds the margin (`arena_margin`) that model_data.h
declares, so that other TFLite Micro builds fit too.
"""

import contextlib
import math
import os
import sys

import numpy as np

from keras_onebit.export.errors import ExportError

FILTER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
ARENA_ALIGN = 1024
ARENA_MARGIN_BYTES = 16 * 1024  # the smallest margin model_data.h adds (see arena_margin)
ARENA_MARGIN_FRACTION = 0.05  # ... or this fraction of the minimum, when larger


def _micro():
    try:
        from tflite_micro.python.tflite_micro import runtime
        from tflite_micro.tensorflow.lite.micro import compression
        from tflite_micro.tensorflow.lite.micro.compression import model_editor, spec
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    except ImportError as e:
        raise ExportError("The micro format needs the tflite-micro package "
                          "(pip install keras_onebit[micro]).") from e
    return runtime, compression, model_editor, spec, schema


def binary_filters(model_bytes):
    """[(subgraph, tensor index, name)] of filters with <= 2 values per channel."""
    _, _, model_editor, _, schema = _micro()
    model = model_editor.read(bytes(model_bytes))
    codes = {getattr(schema.BuiltinOperator, name) for name in FILTER_OPS}
    found = {}
    for s, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators:
            if op.opcode not in codes or len(op.inputs) < 2 or op.inputs[1] is None:
                continue
            tensor = op.inputs[1]
            array = tensor.array
            if array is None or array.dtype != np.int8:
                continue
            per_channel = array.reshape(array.shape[0], -1)
            if all(len(np.unique(row)) <= 2 for row in per_channel):
                found[(s, tensor.index)] = tensor.name
    return [(s, t, name) for (s, t), name in sorted(found.items())]


def compress(model_bytes):
    """The int8 model with every binary filter stored as 1-bit LUT indices."""
    _, compression, _, spec, _ = _micro()
    filters = binary_filters(model_bytes)
    if not filters:
        raise ExportError("The int8 model has no binary filters to compress.")
    specs = [spec.Tensor(subgraph=s, tensor=t, compression=[
        spec.LookUpTableCompression(index_bitwidth=1, mode=spec.PerChannel(axis=0))])
        for s, t, _ in filters]
    return bytes(compression.compress(bytes(model_bytes), specs))


def interpreter(model_bytes, arena_size):
    runtime = _micro()[0]
    return runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=int(arena_size))


def run(model_bytes, images, arena_size):
    """Outputs of the TFLite Micro interpreter for each image (float32 in)."""
    it = interpreter(model_bytes, arena_size)
    outputs = []
    for image in np.asarray(images, np.float32):
        it.set_input(image[None], 0)
        it.invoke()
        outputs.append(np.array(it.get_output(0))[0])
    return np.stack(outputs)


@contextlib.contextmanager
def _quiet():
    """Silences the C++ interpreter's messages on fd 1 and 2 (failed allocations)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [null]:
            os.close(fd)


def _works(model_bytes, arena_size, image):
    with _quiet():
        return _try(model_bytes, arena_size, image)


def _try(model_bytes, arena_size, image):
    try:
        it = interpreter(model_bytes, arena_size)
        it.set_input(image[None], 0)
        it.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def minimum_arena(model_bytes, image, upper=None):
    """The smallest arena (bytes, a multiple of 1 kB) the model runs in."""
    image = np.asarray(image, np.float32)
    hi = upper or max(1 << 20, 4 * len(model_bytes))
    while not _works(model_bytes, hi, image):
        hi *= 2
        if hi > 1 << 31:
            raise ExportError("TFLite Micro could not run the model with a 2 GB arena.")
    lo = 0
    while hi - lo > ARENA_ALIGN:
        mid = (lo + hi) // 2 // ARENA_ALIGN * ARENA_ALIGN
        if mid <= lo:
            break
        if _works(model_bytes, mid, image):
            hi = mid
        else:
            lo = mid
    return hi


def arena_margin(minimum):
    """Bytes model_data.h adds to the measured minimum arena: max(16 kB, 5 % of it),
    rounded up to 1 kB.

    The minimum is measured with tflite-micro's Python interpreter: a 64-bit
    host, the reference kernels, the allocation-recording allocator and this
    tflite-micro version. A C++ build of the same version with the reference
    kernels (issue 11: USE_TFLM_COMPRESSION, the micro format) ran in the
    declared minimum with 912 bytes to spare and failed 1 kB below it: the two
    agree to within the 1 kB bisection step. The margin is for builds that differ:
    - optimized kernels (CMSIS-NN, ESP-NN, Xtensa) ask for scratch buffers the
      reference kernels do not: for a 3x3 int8 convolution about
      4 x input channels x 9 bytes (2.3 kB at 64 channels, 4.6 kB at 128);
    - another tflite-micro version changes the persistent structures (per-op
      data, tensor metadata, the DECODE operator's buffers) by a few kB;
    - an arena array that is not 16-byte aligned loses up to 15 bytes.
    A 32-bit device's smaller pointers only shrink the persistent part. The
    5 % term scales the margin with models whose activations (and so the
    optimized kernels' buffers) are large."""
    margin = max(ARENA_MARGIN_BYTES, math.ceil(ARENA_MARGIN_FRACTION * int(minimum)))
    return -(-margin // ARENA_ALIGN) * ARENA_ALIGN


def declared_arena(minimum):
    """The arena model_data.h declares: the measured minimum plus `arena_margin`."""
    return int(minimum) + arena_margin(minimum)


def custom_codes(model_bytes):
    """The custom operator codes a .tflite file uses (e.g. {"TFLM_DECODE"})."""
    schema = _micro()[-1]
    model = schema.Model.GetRootAsModel(bytes(model_bytes), 0)
    codes = (model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength()))
    return {code.decode() for code in codes if code}


def operator_names(model_bytes):
    """The operators the model's sub-graphs run: builtin names ("CONV_2D"), custom
    codes ("TFLM_DECODE") for CUSTOM ones; codes no operator uses are left out."""
    schema = _micro()[-1]
    model = schema.Model.GetRootAsModel(bytes(model_bytes), 0)
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        names.append(code.CustomCode().decode() if number == schema.BuiltinOperator.CUSTOM
                     else builtin[number])
    return {names[graph.Operators(j).OpcodeIndex()]
            for graph in map(model.Subgraphs, range(model.SubgraphsLength()))
            for j in range(graph.OperatorsLength())}


# MicroMutableOpResolver methods whose names do not follow from the operator's
RESOLVER_METHODS = {"TFLM_DECODE": "AddDecode", "BATCH_MATMUL": "AddBatchMatMul",
                    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM"}


def resolver_method(operator):
    """The MicroMutableOpResolver method registering `operator`: AVERAGE_POOL_2D ->
    AddAveragePool2D, SELECT_V2 -> AddSelectV2, TFLM_DECODE -> AddDecode."""
    if operator in RESOLVER_METHODS:
        return RESOLVER_METHODS[operator]
    if not operator.replace("_", "").isalnum() or not operator.isupper():
        raise ExportError(f"TFLite Micro has no resolver method for the custom operator "
                          f"{operator!r}.")
    return "Add" + "".join(part if part[0].isdigit() else part.capitalize()
                           for part in operator.split("_"))


def resolver_methods(model_bytes):
    """The sorted MicroMutableOpResolver methods that register every operator of the model."""
    return sorted(resolver_method(name) for name in operator_names(model_bytes))


def c_source(model_bytes, name="g_model_data", arena_size=None, header="model_data.h",
             minimum_arena=None):
    """(model_data.cc, model_data.h) text: a 16-byte aligned array and its length.

    `arena_size`: the tensor arena the files declare as `<name>_arena_size`
    (`declared_arena(minimum)` in an export) and as the macro `<NAME>_ARENA_SIZE`
    (for a static arena); `minimum_arena`, when given, is also declared as
    `<name>_arena_minimum`, the measured minimum. The macro `<NAME>_USES_DECODE`
    is 1 when the model needs TFLite Micro's DECODE operator (the micro format).
    `<NAME>_OPERATORS(X)` applies X to each MicroMutableOpResolver method the model
    needs (`resolver_methods`; an X-macro) and `<NAME>_OPERATOR_COUNT` counts them,
    so a program registers exactly the model's operators (examples/micro_main.cc)."""
    data = bytes(model_bytes)
    rows = []
    for start in range(0, len(data), 12):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in data[start:start + 12]) + ",")
    arena, arena_decl = _arena_lines(name, arena_size, minimum_arena)
    h = _header(name, header, arena_decl, resolver_methods(data))
    cc = (f"// Generated by keras_onebit.export: a TFLite Micro model.\n"
          f'#include "{header}"\n\n'
          f"alignas(16) const unsigned char {name}[] = {{\n" + "\n".join(rows) + "\n};\n"
          f"const unsigned int {name}_len = {len(data)};\n{arena}")
    return cc, h


def _header(name, header, arena_decl, methods):
    """model_data.h's text: the array's declarations, the arena's, and the operators."""
    guard = header.upper().replace(".", "_").replace("/", "_") + "_"
    decode = int("AddDecode" in methods)
    return (f"// Generated by keras_onebit.export: a TFLite Micro model.\n#ifndef {guard}\n"
            f"#define {guard}\n\n"
            f"// The .tflite flatbuffer, 16-byte aligned.\nextern const unsigned char {name}[];\n"
            f"extern const unsigned int {name}_len;\n{arena_decl}"
            f"// 1 when the model needs TFLite Micro's DECODE operator (the micro format).\n"
            f"#define {name.upper()}_USES_DECODE {decode}\n"
            f"// The operators the model uses, as tflite::MicroMutableOpResolver methods (an\n"
            f"// X-macro: {name.upper()}_OPERATORS(X) expands to X(method) for each).\n"
            f"#define {name.upper()}_OPERATOR_COUNT {len(methods)}\n"
            f"#define {name.upper()}_OPERATORS(X) \\\n"
            + " \\\n".join(f"  X({m})" for m in methods) + "\n\n"
            f"#endif  // {guard}\n")


def _arena_lines(name, arena_size, minimum_arena):
    """(definitions for the .cc, declarations with their comment for the .h)."""
    if arena_size is None:
        return "", ""
    arena = f"const unsigned int {name}_arena_size = {int(arena_size)};\n"
    decl = (f"extern const unsigned int {name}_arena_size;\n"
            f"#define {name.upper()}_ARENA_SIZE {int(arena_size)}\n")
    if minimum_arena is None:
        return arena, "// TFLite Micro tensor arena size in bytes.\n" + decl
    arena += f"const unsigned int {name}_arena_minimum = {int(minimum_arena)};\n"
    margin = int(arena_size) - int(minimum_arena)
    comment = (
        f"// TFLite Micro tensor arena in bytes: {name}_arena_size is the minimum\n"
        f"// measured with the tflite-micro Python interpreter ({name}_arena_minimum,\n"
        f"// reference kernels) plus a margin of {margin} bytes, max(16 kB, 5%), for other\n"
        "// builds: optimized kernels' scratch buffers (CMSIS-NN, ESP-NN), another\n"
        "// tflite-micro version, alignment. See arena_margin in keras_onebit/export/micro.py.\n")
    return arena, comment + decl + f"extern const unsigned int {name}_arena_minimum;\n"
