"""Expanding a packed .tflite file back into its plain twin, once, at load time:
one bit per weight on disk, the plain model's speed in memory.

    plain = keras_onebit.export.expand("model_packed_int8.tflite")  # -> int8 model
    interpreter = Interpreter(model_content=plain)

`packed_int8` becomes the `int8` export, `packed` the `float` export, byte for
byte: the file's expansion record (expansion_record.py; examples/onebit_expand.c
reads the same record in C) holds the plain file's bytes outside its filters,
and each filter is written back from its sign bits.

A packed file written before the record existed expands from its start-up
sub-graph (`onebit_unpack`, bitpack.py), evaluated here with NumPy: each
variable it assigns becomes the constant filter its reads stood for, the
variable and call-once operators go, and every im2col product of a float conv
(conv_matmul.py) becomes the CONV_2D it computes. That gives the plain
export's operators and constants (the same outputs), not its bytes (tensor
order, the names and options the packed file dropped), see docs/FORMAT.md.

Needs only NumPy and a TFLite flatbuffer schema module (ai-edge-litert's, else
tflite-micro's): no TensorFlow, so an app with only `ai-edge-litert` can run it.
A file that is not a packed file of this library, a truncated or tampered one, or
one of a newer format version is refused with one line (`ExportError`) before any
large allocation: every declared size is checked against its data and a limit.
"""

import math
import os

import numpy as np

from keras_onebit.export import expansion_record, flatbuffer
from keras_onebit.export.errors import ExportError
from keras_onebit.fileio import regular_file

STARTUP_NAME = b"onebit_unpack"  # version 1; a later format names it onebit_unpack/v<N>
FORMAT_VERSION = 1
MAX_FILE_BYTES = 2 << 30  # flatbuffers address 2 GiB
MAX_ELEMENTS = 1 << 28  # of any one tensor the start-up graph computes (1 GiB of float32)
NUMPY_TYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32,
               "UINT8": np.uint8, "INT8": np.int8, "INT64": np.int64, "INT16": np.int16,
               "BOOL": np.bool_}


def schema():
    """The TFLite schema module: ai-edge-litert's, else tflite-micro's (no TensorFlow)."""
    try:
        from ai_edge_litert import schema_py_generated as module
    except ImportError:
        try:
            from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as module
        except ImportError as e:
            from keras_onebit.errors import MissingDependencyError

            raise MissingDependencyError(
                "Expanding a packed .tflite file needs a TFLite schema module: pip install "
                "ai-edge-litert (or 'keras_onebit[export]').") from e
    return module


def expand(model):
    """The plain model a packed .tflite file was made from, as bytes.

    Args:
        model: a `packed` or `packed_int8` file of this library: its path, or
            its bytes.

    Returns:
        The bytes of the expanded model: `packed` -> the float model,
        `packed_int8` -> the int8 model, with constant filters.

    Raises:
        ExportError: not a .tflite flatbuffer, not a packed file of this
            library, a newer packed format, or a truncated or tampered file
            (one line naming what is wrong).
    """
    data = _read(model)
    s = schema()
    plain = _from_record(s, data)
    if plain is not None:
        return plain
    m = _parse(s, data)
    startup = _startup_index(m)
    names = flatbuffer.operator_names(s, m)
    values = _Startup(s, m, m.subgraphs[startup], names).run()
    main = m.subgraphs[0]
    _constants_from_reads(s, m, main, names, values)
    _convs_from_products(s, m, main, names)
    _int8_quantization(s, main, names)
    m.subgraphs = [sg for i, sg in enumerate(m.subgraphs) if i != startup]
    _prune(m, names)
    return _pack(m)


# ----------------------------------------------------------------------------- reading


def _read(model):
    if isinstance(model, bytes | bytearray | memoryview):
        return bytes(model)
    path = regular_file(model, "a packed .tflite file", ExportError, MAX_FILE_BYTES)
    with open(path, "rb") as f:
        return f.read()


def _check_identifier(data):
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ExportError(f"not a .tflite file ({len(data)} bytes, no TFL3 identifier).")
    if int.from_bytes(data[:4], "little") >= len(data):
        raise ExportError("truncated .tflite file: its root table lies past its end.")


def _from_record(s, data):
    """The plain file from the packed file's expansion record, or None for a
    packed file without one (one packed before the record existed)."""
    _check_identifier(data)
    try:
        root = s.Model.GetRootAsModel(data, 0)
        if expansion_record.find(root) is None:
            return None
        plain = expansion_record.expand(root, data)
    except ExportError:
        raise
    except Exception as e:  # flatbuffers raises struct.error, IndexError...
        raise ExportError(f"truncated or corrupt .tflite file ({len(data)} bytes; "
                          f"{type(e).__name__} while decoding it).") from e
    if plain[4:8] != b"TFL3":
        raise ExportError("tampered packed file: its expansion record gives no .tflite file.")
    return plain


def _parse(s, data):
    """The flatbuffer's object model (a ModelT); a file that does not decode is
    one line."""
    try:
        m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0))
    except Exception as e:  # flatbuffers raises struct.error, IndexError, UnicodeError...
        raise ExportError(f"truncated or corrupt .tflite file ({len(data)} bytes; "
                          f"{type(e).__name__} while decoding it).") from e
    if not m.subgraphs:
        raise ExportError("not a packed file of keras_onebit: the .tflite file has no graph.")
    return m


def _startup_index(m):
    """Index of the packed file's start-up sub-graph; refuses other files and versions."""
    for i, graph in enumerate(m.subgraphs):
        name = graph.name or b""
        if name == STARTUP_NAME:
            if i == 0:
                raise ExportError("tampered packed file: its start-up graph is the main one.")
            return i
        if name.startswith(STARTUP_NAME + b"/v"):
            raise ExportError(f"a packed file of format {name[len(STARTUP_NAME) + 1:].decode()} "
                              f"(this keras_onebit expands format v{FORMAT_VERSION}): upgrade "
                              "keras_onebit.")
    raise ExportError("not a packed file of keras_onebit (no onebit_unpack sub-graph): only "
                      "the packed and packed_int8 formats expand.")


def _type_name(s, code):
    names = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    return names.get(code, "?")


def _shape(tensor):
    shape = [] if tensor.shape is None else [int(d) for d in tensor.shape]
    if any(d < 0 for d in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise ExportError(f"tampered packed file: a tensor of shape {shape}.")
    return shape


def _constant(s, m, tensor):
    """A constant tensor's value, its data checked against its declared shape."""
    dtype = NUMPY_TYPES.get(_type_name(s, tensor.type))
    if dtype is None or not 0 <= tensor.buffer < len(m.buffers):
        raise ExportError("tampered packed file: a constant of an unknown type or buffer.")
    shape = _shape(tensor)
    raw = m.buffers[tensor.buffer].data
    raw = np.zeros(0, np.uint8) if raw is None else np.asarray(raw, np.uint8)
    if raw.size != math.prod(shape) * np.dtype(dtype).itemsize:
        raise ExportError(f"tampered packed file: a constant of shape {shape} holds "
                          f"{raw.size} bytes.")
    return raw.view(dtype).reshape(shape)


# ----------------------------------------------------------------------------- start-up


class _Startup:
    """Evaluates the start-up sub-graph with NumPy: {variable name: value}."""

    OPS = ("DEQUANTIZE", "CAST", "GATHER", "SLICE", "RESHAPE", "TRANSPOSE", "MUL",
           "VAR_HANDLE", "ASSIGN_VARIABLE")

    def __init__(self, s, m, graph, names):
        self.s, self.m, self.graph, self.names = s, m, graph, names
        self.values, self.variables = {}, {}

    def run(self):
        for op in self.graph.operators or []:
            name = self.names[op.opcodeIndex] if 0 <= op.opcodeIndex < len(self.names) else "?"
            if name not in self.OPS:
                raise ExportError(f"tampered packed file: operator {name} in the start-up graph.")
            getattr(self, name.lower())(op, [self.value(i) for i in op.inputs
                                             if name not in ("VAR_HANDLE", "ASSIGN_VARIABLE")])
        if not self.variables:
            raise ExportError("tampered packed file: its start-up graph assigns no variable.")
        return self.variables

    def value(self, index):
        index = int(index)
        if index in self.values:
            return self.values[index]
        if not 0 <= index < len(self.graph.tensors):
            raise ExportError("tampered packed file: an operator reads a missing tensor.")
        return _constant(self.s, self.m, self.graph.tensors[index])

    def out(self, op, value):
        tensor = self.graph.tensors[int(op.outputs[0])]
        dtype = NUMPY_TYPES.get(_type_name(self.s, tensor.type))
        if list(value.shape) != _shape(tensor) or dtype is None:
            raise ExportError(f"tampered packed file: a start-up value of shape "
                              f"{list(value.shape)} for a tensor of shape {_shape(tensor)}.")
        self.values[int(op.outputs[0])] = value.astype(dtype)

    def declared(self, op):
        return _shape(self.graph.tensors[int(op.outputs[0])])

    def dequantize(self, op, args):
        q = self.graph.tensors[int(op.inputs[0])].quantization
        scale = np.asarray(q.scale if q is not None and q.scale is not None else [1.0], np.float32)
        zero = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [0])
        x = args[0].astype(np.float32)
        if scale.size > 1:  # per channel along quantizedDimension
            axis = int(q.quantizedDimension)
            view = [1] * x.ndim
            view[axis] = -1
            scale, zero = scale.reshape(view), zero.reshape(view)
        self.out(op, ((x - zero.astype(np.float32)) * scale).astype(np.float32))

    def cast(self, op, args):
        self.out(op, args[0])

    def gather(self, op, args):
        options = op.builtinOptions
        axis = int(getattr(options, "axis", 0) or 0)
        if math.prod(self.declared(op)) > MAX_ELEMENTS:
            raise ExportError("tampered packed file: a gathered tensor too large.")
        params, indices = args
        if indices.size and (indices.min() < 0 or indices.max() >= params.shape[axis]):
            raise ExportError("tampered packed file: a gather index out of range.")
        self.out(op, np.take(params, indices.astype(np.int64), axis=axis))

    def slice(self, op, args):
        x, begin, size = args
        size = [x.shape[i] - b if s_ == -1 else s_ for i, (b, s_) in enumerate(zip(
            begin.tolist(), size.tolist(), strict=True))]
        self.out(op, x[tuple(slice(b, b + n) for b, n in zip(begin.tolist(), size,
                                                             strict=True))])

    def reshape(self, op, args):
        shape = self.declared(op)
        if math.prod(shape) != args[0].size:
            raise ExportError("tampered packed file: a reshape changes the element count.")
        self.out(op, args[0].reshape(shape))

    def transpose(self, op, args):
        x, perm = args
        if sorted(perm.tolist()) != list(range(x.ndim)):
            raise ExportError("tampered packed file: a transpose of a bad permutation.")
        self.out(op, np.transpose(x, perm.tolist()))

    def mul(self, op, args):
        self.out(op, (args[0] * args[1]).astype(np.float32))

    def var_handle(self, op, args):
        self.values[int(op.outputs[0])] = op.builtinOptions.sharedName

    def assign_variable(self, op, args):
        name = self.values.get(int(op.inputs[0]))
        if not isinstance(name, bytes):
            raise ExportError("tampered packed file: a variable assigned without its handle.")
        self.variables[name] = self.value(op.inputs[1])


# ----------------------------------------------------------------------------- main graph


def _constants_from_reads(s, m, main, names, values):
    """Each READ_VARIABLE's output becomes a constant holding the variable's value;
    the VAR_HANDLE, READ_VARIABLE and CALL_ONCE operators go."""
    handles, kept = {}, []
    for op in main.operators:
        name = names[op.opcodeIndex]
        if name == "VAR_HANDLE":
            handles[int(op.outputs[0])] = op.builtinOptions.sharedName
        elif name == "READ_VARIABLE":
            variable = handles.get(int(op.inputs[0]))
            if variable not in values:
                raise ExportError(f"tampered packed file: a read of variable {variable!r}, "
                                  "which the start-up graph does not assign.")
            _set_constant(s, m, main.tensors[int(op.outputs[0])], values[variable])
        elif name != "CALL_ONCE":
            kept.append(op)
    main.operators = kept


def _set_constant(s, m, tensor, value):
    dtype = NUMPY_TYPES.get(_type_name(s, tensor.type))
    if dtype is None or list(value.shape) != _shape(tensor):
        raise ExportError(f"tampered packed file: a variable of shape {list(value.shape)} read "
                          f"into a tensor of shape {_shape(tensor)}.")
    buffer = s.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(value.astype(dtype)).tobytes(), np.uint8)
    m.buffers.append(buffer)
    tensor.buffer = len(m.buffers) - 1


def _int8_quantization(s, main, names):
    """The int8 export's quantization of each filter and conv bias, where packing
    made it smaller (bitpack: one scale for equal per-channel ones; no bias scales
    on CONV_2D, which LiteRT's builtin kernels do not read but XNNPACK does)."""
    dims = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3}
    for op in main.operators:
        name = names[op.opcodeIndex]
        if name not in dims or len(op.inputs) < 2:
            continue
        x, filt = main.tensors[int(op.inputs[0])], main.tensors[int(op.inputs[1])]
        if filt.type != s.TensorType.INT8 or filt.quantization is None:
            continue
        q = filt.quantization
        channels = int(filt.shape[dims[name]])
        if q.scale is not None and len(q.scale) == 1 and channels > 1:
            q.scale = np.repeat(np.asarray(q.scale, np.float32), channels)
            q.zeroPoint = np.zeros(channels, np.int64)
            q.quantizedDimension = dims[name]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = main.tensors[int(op.inputs[2])]
            if bias.type == s.TensorType.INT32 and (bias.quantization is None
                                                    or bias.quantization.scale is None):
                bias.quantization = s.QuantizationParametersT()
                bias.quantization.scale = (np.float32(x.quantization.scale[0])
                                           * np.asarray(q.scale, np.float32)).astype(np.float32)
                bias.quantization.zeroPoint = np.zeros(len(q.scale), np.int64)
                bias.quantization.quantizedDimension = 0


def _convs_from_products(s, m, main, names):
    """Each im2col product of a float conv (conv_matmul.py) becomes its CONV_2D."""
    from keras_onebit.export import unlower

    unlower.restore_convs(s, m, main, names)


# ----------------------------------------------------------------------------- writing


def _prune(m, names):
    """Drops the tensors no operator or graph uses, then unused buffers and codes."""
    flatbuffer.remove_unused_tensors(m)
    flatbuffer.remove_unused_buffers(m)
    codes = sorted({op.opcodeIndex for sg in m.subgraphs for op in sg.operators})
    index = {old: new for new, old in enumerate(codes)}
    m.operatorCodes = [m.operatorCodes[i] for i in codes]
    for sg in m.subgraphs:
        for op in sg.operators:
            op.opcodeIndex = index[op.opcodeIndex]


def _pack(m):
    import flatbuffers

    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def is_packed(model):
    """True when `model` (a path or bytes) is a packed file of this library."""
    data = _read(model)
    return data[4:8] == b"TFL3" and STARTUP_NAME in data


def interpreter(model, num_threads=None):
    """A LiteRT interpreter of a .tflite file, allocated; a packed file is expanded
    first (`expand`), so it runs at its plain twin's speed.

    Args:
        model: a .tflite file's path or bytes (any format but micro).
        num_threads: LiteRT's `num_threads` (None: its default).

    Returns:
        An allocated `ai_edge_litert.interpreter.Interpreter`.

    Raises:
        ExportError: a packed file that cannot be expanded (see `expand`).
        MissingDependencyError: ai-edge-litert is not installed.
    """
    from keras_onebit.errors import require

    module = require("ai_edge_litert.interpreter", "export", "Running a .tflite model (LiteRT)")
    data = _read(model)
    content = expand(data) if is_packed(data) else data
    it = module.Interpreter(model_content=content, num_threads=num_threads)
    it.allocate_tensors()
    return it


def expand_file(path, out):
    """Writes `expand(path)` to `out` atomically; returns `out`."""
    from keras_onebit.export.files import atomic_write

    atomic_write(out, expand(path))
    return os.fspath(out)
