"""Exact int8 for binary activations: the int8 and int4 formats of a network
whose convs take sign(x) (Bi-Real Net, the fully binary WRN), made from its
float model.

Full-integer quantization puts the pre-sign values (a real-valued residual
stream) on an int8 grid, so every value within half a step of 0 takes the
wrong sign, and a binary net amplifies each flip: measured on a seeded fully
binary WRN-16-4, the converter's int8 model agreed with Keras on 48% of the
top classes. Here nothing is rounded that Keras does not round:

    float:  x -GREATER_EQUAL 0, SELECT_V2(1, -1)-> s -CONV_2D(filter +-v_c, bias b_c)-> y
    int8:   x -MUL 2^100, ADD 0.75 (RELU_N1_TO_1), QUANTIZE-> s (int8, scale 1: +-1)
              -CONV_2D int8 (filter +-127, scale 1/127: exactly +-1; bias 0)-> q (int8)
              -DEQUANTIZE-> n -MUL v_c [-ADD b_c] (the conv's fused activation)-> y

The sign is clamp(x * 2^100 + 0.75, -1, 1) rounded to int8: +1 for x >= 0 (as
Keras' sign(0) = +1) and -1 for every x <= -1.75 * 2^-100 (about -1.4e-30), so
it differs from Keras only for negative x closer to 0 than that. Unlike
GREATER_EQUAL and SELECT_V2, these three operators run in LiteRT's XNNPACK
delegate, with everything else: on bireal_20_2 the whole graph is one XNNPACK
partition, 2.1x faster than with the select (1 thread, measured side by side).

The int8 conv counts agreements: n = sum of +-1 products, an integer with
|n| <= kh * kw * C_in and the parity of that count (zero padding adds 0 to
both), so with C_in even its output scale 2 holds n / 2 exactly for
|n| <= 254 (scale 1 and |n| <= 127 for odd C_in); beyond, the output
saturates (`report.sign_saturation` counts it on real images). The largest |n| of
bireal_20_2's 128-channel convs after 11 epochs of training was 188 (K = 1152). Everything else
(the stream, BN, the real-valued stem, shortcut and classifier) stays float32,
as in the float model, so the int8 file computes what the float file computes
up to the order of float sums. No calibration data is needed: every scale is
exact by construction. `bitpack` packs these +-127 filters as for any int8
model (packed_int8) and `micro` compresses them (micro).

With `bits=4` (the int4 format) the filters are INT4 instead, +-7 with scale
1/7, two to a byte (low nibble first, as TFLite packs them); the conv still
counts n exactly (7 n times the multiplier 1 / (7 * scale) rounds to n / scale,
as 127 n does in int8), so int4 computes the same signs and outputs as int8.
"""

import flatbuffers
import numpy as np

from keras_onebit.export import flatbuffer
from keras_onebit.export.bitpack import binary_alpha, drop_empty_buffers, strip_names
from keras_onebit.export.errors import ExportError

INT8_MAX = 127
# bits -> (the largest value of a filter, TFLite's CONV_2D version for that filter type)
FILTER_LEVELS = {8: (INT8_MAX, 3), 4: (7, 7)}
FORMAT_BITS = {"int8": 8, "micro": 8, "int4": 4}  # the export formats made here, and their filters
SIGN_GAIN = 2.0**100  # exact in float32; x * 2^100 is exact below overflow
SIGN_OFFSET = 0.75  # sign(0) = +1: QUANTIZE rounds 0.75 to 1 in every rounding mode


def _constant(s, model, tensor):
    """The data of a float32, int32 or int8 constant tensor, else None."""
    buffer = model.buffers[tensor.buffer].data if tensor.buffer else None
    if buffer is None or len(buffer) == 0:
        return None
    dtype = {s.TensorType.FLOAT32: np.float32, s.TensorType.INT32: np.int32,
             s.TensorType.INT8: np.int8}.get(int(tensor.type))
    if dtype is None:
        return None
    return np.frombuffer(bytes(buffer), dtype).reshape(tensor.shape)


def _scalar(array, value):
    """True when `array` is one float32 equal to `value`."""
    return (array is not None and array.size == 1 and array.dtype == np.float32
            and float(array.ravel()[0]) == value)


class _Graph:
    """The main sub-graph's operators by name, and who reads each tensor."""

    def __init__(self, model, schema):
        self.model, self.s = model, schema
        self.main = model.subgraphs[0]
        self.names = flatbuffer.operator_names(schema, model)
        self.readers, self.producer = {}, {}
        for i, op in enumerate(self.main.operators):
            for t in op.inputs:
                self.readers.setdefault(int(t), []).append(i)
            for t in op.outputs:
                self.producer[int(t)] = i

    def name(self, op):
        return self.names[op.opcodeIndex]

    def constant(self, t):
        return None if t < 0 else _constant(self.s, self.model, self.main.tensors[t])

    def sign_source(self, index):
        """(x, the GREATER_EQUAL's index) when operator `index` is
        SELECT_V2(GREATER_EQUAL(x, 0), 1, -1) of float constants, and the
        comparison is read by it alone; else None."""
        op = self.main.operators[index]
        if self.name(op) not in ("SELECT_V2", "SELECT") or len(op.inputs) != 3:
            return None
        yes, no = self.constant(int(op.inputs[1])), self.constant(int(op.inputs[2]))
        if not (_scalar(yes, 1.0) and _scalar(no, -1.0)):
            return None
        cond = int(op.inputs[0])
        compare = self.producer.get(cond)
        if compare is None or self.readers.get(cond) != [index]:
            return None
        ge = self.main.operators[compare]
        if self.name(ge) != "GREATER_EQUAL" or not _scalar(self.constant(int(ge.inputs[1])), 0.0):
            return None
        return int(ge.inputs[0]), compare

    def binary_conv(self, index, source):
        """The filter's per-channel magnitude when operator `index` is a float
        CONV_2D reading `source` as its input (not its filter) with a binary filter."""
        op = self.main.operators[index]
        if self.name(op) != "CONV_2D" or int(op.inputs[0]) != source or \
                list(op.inputs).count(source) != 1:
            return None
        array = self.constant(int(op.inputs[1]))
        if array is None or array.dtype != np.float32:
            return None
        alpha = binary_alpha(array)
        return None if alpha is None or not np.all(alpha > 0) else alpha


def _sign_convs(graph):
    """[(select index, (x, compare index), [(conv index, alpha)])] of the signs
    read only by binary convs."""
    found = []
    outputs = {int(t) for t in graph.main.outputs}
    for i, op in enumerate(graph.main.operators):
        source = graph.sign_source(i)
        if source is None:
            continue
        out = int(op.outputs[0])
        readers = graph.readers.get(out, [])
        convs = [(r, graph.binary_conv(r, out)) for r in readers]
        if readers and all(alpha is not None for _, alpha in convs) and out not in outputs:
            found.append((i, source, convs))
    return found


class _Rewriter(flatbuffer.GraphBuilder):
    """Turns each found sign into int8 and each of its convs into the int8 chain."""

    def __init__(self, model, schema, bits=8):
        super().__init__(flatbuffer.Editor(model, schema), model.subgraphs[0], [])
        self.model, self.bits = model, bits
        self.after = {}  # operator index -> the operators replacing it

    def quantization(self, scales, axis=0):
        q = self.s.QuantizationParametersT()
        q.scale = np.asarray(scales, np.float32)
        q.zeroPoint = np.zeros(len(q.scale), np.int64)
        q.quantizedDimension = axis
        return q

    def int8_sign(self, select, x, compare):
        """GREATER_EQUAL + SELECT_V2 (operators `compare`, `select`) become
        MUL 2^100 -> ADD 0.75 (RELU_N1_TO_1) -> QUANTIZE (int8, scale 1), writing
        the select's output: +1 for x >= 0, -1 for x <= -1.75 * 2^-100."""
        op = self.sg.operators[select]
        out = self.sg.tensors[int(op.outputs[0])]
        out.type = self.s.TensorType.INT8
        out.quantization = self.quantization([1.0])
        float32, shape = self.s.TensorType.FLOAT32, self.shape_of(x)
        scaled, shifted = (self.ed.tensor(self.sg, shape, float32) for _ in range(2))
        activation = self.s.ActivationFunctionType
        self.after[compare] = []
        self.after[select] = [
            self.ed.op("MUL", [x, self.const(np.asarray(SIGN_GAIN, np.float32), float32)],
                       [scaled], flatbuffer.options(self.s, "Mul",
                                                    fusedActivationFunction=activation.NONE)),
            self.ed.op("ADD", [scaled, self.const(np.asarray(SIGN_OFFSET, np.float32), float32)],
                       [shifted], flatbuffer.options(
                           self.s, "Add", fusedActivationFunction=activation.RELU_N1_TO_1)),
            self.ed.op("QUANTIZE", [shifted], [int(op.outputs[0])])]

    def int8_conv(self, index, alpha):
        """Operator `index` (a float CONV_2D) as int8 conv -> DEQUANTIZE -> MUL [-> ADD]."""
        op = self.sg.operators[index]
        filt = self.sg.tensors[int(op.inputs[1])]
        array = _constant(self.s, self.model, filt)
        c_out, c_in = array.shape[0], array.shape[-1]
        bias = self.constant_or_zero(op, c_out)
        out_scale = 2.0 if c_in % 2 == 0 else 1.0
        top, version = FILTER_LEVELS[self.bits]
        signs = np.where(array >= 0, top, -top).astype(np.int8)
        kind, data = ((self.s.TensorType.INT8, signs) if self.bits == 8
                      else (self.s.TensorType.INT4, pack_int4(signs)))
        f = self.ed.tensor(self.sg, array.shape, kind, data,
                           self.quantization(np.full(c_out, 1.0 / top)))
        b = self.ed.tensor(self.sg, (c_out,), self.s.TensorType.INT32, np.zeros(c_out, np.int32),
                           self.quantization(np.full(c_out, 1.0 / top)))
        shape = self.shape_of(int(op.outputs[0]))
        q = self.ed.tensor(self.sg, shape, self.s.TensorType.INT8, None,
                           self.quantization([out_scale]))
        activation = op.builtinOptions.fusedActivationFunction
        conv_options = op.builtinOptions
        conv_options.fusedActivationFunction = self.s.ActivationFunctionType.NONE
        ops = [self.ed.op("CONV_2D", [op.inputs[0], f, b], [q], conv_options, version=version)]
        float32 = self.s.TensorType.FLOAT32
        n = self.ed.tensor(self.sg, shape, float32)
        ops.append(self.ed.op("DEQUANTIZE", [q], [n], version=2))
        scale = self.const(np.asarray(alpha, np.float32), float32)
        last, biased = int(op.outputs[0]), bool(np.any(bias != 0))
        scaled = self.ed.tensor(self.sg, shape, float32) if biased else last
        none = self.s.ActivationFunctionType.NONE
        ops.append(self.ed.op("MUL", [n, scale], [scaled], flatbuffer.options(
            self.s, "Mul", fusedActivationFunction=none if biased else activation)))
        if biased:
            ops.append(self.ed.op("ADD", [scaled, self.const(bias, float32)], [last],
                                  flatbuffer.options(self.s, "Add",
                                                     fusedActivationFunction=activation)))
        self.after[index] = ops

    def constant_or_zero(self, op, c_out):
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = _constant(self.s, self.model, self.sg.tensors[int(op.inputs[2])])
            if bias is None or bias.dtype != np.float32:
                raise ExportError("Exact int8 signs: a binary conv's bias is not a float "
                                  "constant.")
            return np.asarray(bias, np.float32).reshape(c_out)
        return np.zeros(c_out, np.float32)

    def finish(self):
        ops = []
        for i, op in enumerate(self.sg.operators):
            ops.extend(self.after.get(i, [op]))
        self.sg.operators = ops


def pack_int4(values):
    """int8 values in [-8, 7] as TFLite's INT4 buffer: two to a byte, the first in
    the low nibble (an odd count ends with a zero nibble)."""
    nibbles = np.asarray(values, np.int8).ravel().view(np.uint8) & 0x0F
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def quantize_sign_convs(float_bytes, bits=8):
    """The int8 model of a float model whose binary convs read signs (see the module
    docstring); `bits=4` stores their filters as INT4. Returns (bytes, number of
    convs made int8).

    Raises:
        ExportError: the model has no conv reading a sign.
    """
    schema = flatbuffer.schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(float_bytes), 0)
    graph = _Graph(model, schema)
    found = _sign_convs(graph)
    if not found:
        raise ExportError("Exact int8 signs: the model has no binary CONV_2D reading "
                          "sign(x) (a SELECT_V2 of +1 and -1).")
    if bits not in FILTER_LEVELS:
        raise ExportError(f"Exact signs: filters of {bits} bits; expected one of "
                          f"{sorted(FILTER_LEVELS)}.")
    rewriter = _Rewriter(model, schema, bits)
    count = 0
    for select, (x, compare), convs in found:
        rewriter.int8_sign(select, x, compare)
        for index, alpha in convs:
            rewriter.int8_conv(index, alpha)
            count += 1
    rewriter.finish()
    flatbuffer.remove_unused_tensors(model)  # the float filters, biases, +-1 and conditions
    drop_empty_buffers(model)
    strip_names(model)
    builder = flatbuffers.Builder(len(float_bytes) // 4 + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), count


def sign_conv_outputs(model_bytes):
    """Indices (main sub-graph) of the int8 outputs of the convs that read an int8 sign."""
    schema = flatbuffer.schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    graph = _Graph(model, schema)
    signs = {int(op.outputs[0]) for op in graph.main.operators
             if graph.name(op) == "QUANTIZE"
             and graph.main.tensors[int(op.outputs[0])].type == schema.TensorType.INT8}
    return [int(op.outputs[0]) for op in graph.main.operators
            if graph.name(op) == "CONV_2D" and int(op.inputs[0]) in signs]
