"""Sign bits in UINT8 tensors: a converted .tflite model with its binary filters
replaced by packed bits that are expanded once, at start-up, into variables.

`pack_filters(model_bytes)` edits the flatbuffer of a float or int8 model the
converter wrote (no converter runs again, so nothing folds the unpack back
into constants). Every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED filter
holding one magnitude per output channel (a binary kernel: +-alpha in a float
model, +-127 in an int8 one; any such filter is stored exactly) becomes:

    file:     one UINT8 constant of sign bits per filter, in the byte layout of
              the .onebit archive (docs/FORMAT.md): the Keras kernel (HWIO, or
              IO for a dense layer) flattened in C order, weight i = bit 7 - i % 8
              of byte i // 8, 1 = +1; float filters also keep alpha (one float32,
              or one per output channel)
    start-up: a CALL_ONCE sub-graph, per filter: DEQUANTIZE (uint8 -> float)
              -> CAST (int32) -> GATHER from a shared 256 x 8 int8 table (the
              eight signs of each byte value, times 127 for int8 models, 1 for
              float ones) [-> SLICE when the weights are not a multiple of 8]
              -> RESHAPE to the Keras kernel's shape -> TRANSPOSE, its last
              axis (C_out) first: the filter's shape (a depthwise filter: the
              RESHAPE alone) [float: -> DEQUANTIZE with scale alpha, or scale 1
              and a MUL by one alpha per channel] -> ASSIGN_VARIABLE
    inference: VAR_HANDLE -> READ_VARIABLE -> the original operator; a float
              CONV_2D instead becomes an im2col BATCH_MATMUL (`conv_matmul`;
              the variable then holds the scaled filter matrix, (K, C_out)
              with no TRANSPOSE, or (C_out, K) where the filter is the left
              operand), because LiteRT's XNNPACK delegate runs a product
              with a run-time matrix but no CONV_2D with a run-time filter

and, as the metadata buffer "onebit_expand", the expansion record
(expansion_record.py) that gives back the source model byte for byte (checked
here), for `expand` and examples/onebit_expand.c.

Otherwise the operator, its quantization (per-channel int8 scales stay on the
filter tensor) and everything else in the graph are unchanged: `packed_int8`
computes exactly what `int8` computes, `packed` what `float` computes up to the
order of the float sums. All operators are
builtin and run on stock LiteRT and in TFLite Micro (whose CAST takes no
uint8, hence DEQUANTIZE first). Output bytes depend only on the input bytes.
"""

import flatbuffers
import numpy as np

from keras_onebit.export import conv_matmul, flatbuffer
from keras_onebit.export import expansion_record as record
from keras_onebit.export.errors import ExportError

BASE = {"packed": "float", "packed_int8": "int8"}  # format -> the conversion it packs
FILTER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
MIN_WEIGHTS = 64  # smaller filters stay constants (the unpack would cost more bytes)


def sign_table(magnitude):
    """(256, 8) int8: row v holds the signs of the bits of byte v, most
    significant first, times `magnitude` (127 or 1)."""
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="big")
    return ((2 * bits.astype(np.int16) - 1) * magnitude).astype(np.int8)


def filter_matrix(array):
    """The Keras kernel matrix (K, C_out) of a TFLite filter (C_out, ...) or, for
    DEPTHWISE_CONV_2D, (1, kh, kw, C_out)."""
    return array.reshape(array.shape[0], -1).T


def binary_alpha(array, depthwise=False):
    """Per-output-channel magnitude of a filter holding one magnitude per channel,
    else None."""
    matrix = array.reshape(-1, array.shape[-1]) if depthwise else filter_matrix(array)
    magnitude = np.abs(matrix.astype(np.float64))
    alpha = magnitude.max(axis=0)
    if not np.all(magnitude == alpha[None, :]):
        return None
    return alpha


class _Unpacker(flatbuffer.GraphBuilder):
    """Builds the start-up operators of one sub-graph: UINT8 sign bits -> a
    kernel value -> ASSIGN_VARIABLE. Constants (the sign table, shapes, the
    permutation) are shared by every kernel of the sub-graph."""

    def __init__(self, editor, subgraph):
        super().__init__(editor, subgraph)
        self.byte_q = self.per_tensor(1.0)

    def per_tensor(self, scale):
        q = self.s.QuantizationParametersT()
        q.scale = np.asarray([scale], np.float32)
        q.zeroPoint = np.asarray([0], np.int64)
        return q

    def matrix(self, bits, shape, magnitude):
        """(the int8 tensor of +-magnitude of `shape` (in C order), the UINT8
        tensor of `bits`) from `bits` (np.packbits order, big-endian bits):
        DEQUANTIZE, CAST, GATHER, RESHAPE [, SLICE]. The int8 tensors carry no
        quantization (see `scale`)."""
        T = self.s.TensorType
        dtype, version = T.INT8, 2
        key = ("table", magnitude)
        if key not in self.shared:
            self.shared[key] = self.ed.tensor(self.sg, (256, 8), T.INT8, sign_table(magnitude))
        table = self.shared[key]
        b = self.ed.tensor(self.sg, bits.shape, T.UINT8, bits, self.byte_q)
        f = self.add("DEQUANTIZE", [b], bits.shape, T.FLOAT32)
        # CAST and GATHER (axis 0) as their defaults: no options tables
        i = self.add("CAST", [f], bits.shape, T.INT32)
        g = self.add("GATHER", [table, i], (bits.size, 8), dtype, None, version)
        count = int(np.prod(shape))
        if bits.size * 8 != count:
            g = self.reshape(g, [bits.size * 8])
            g = self.add("SLICE", [g, self.const(np.zeros(1, np.int32), T.INT32),
                                   self.const(np.asarray([count], np.int32), T.INT32)],
                         (count,), dtype, None, version)
        return self.reshape(g, list(shape)), b

    def transpose(self, value):
        """The last axis first: (..., C_out) -> (C_out, ...), e.g. a Keras
        kernel (HWIO) to a TFLite filter (OHWI), or (K, C_out) to (C_out, K)."""
        shape = self.shape_of(value)
        rank = len(shape)
        dtype = self.sg.tensors[value].type
        perm = self.const(np.asarray([rank - 1, *range(rank - 1)], np.int32),
                          self.s.TensorType.INT32)
        return self.add("TRANSPOSE", [value, perm], (shape[-1], *shape[:-1]), dtype, None,
                        2 if dtype == self.s.TensorType.INT8 else 1)

    def scale(self, value, alpha, axis):
        """(float32 of the +-1 int8 `value` times alpha, the tensor of the
        scales or None). One alpha for every channel: DEQUANTIZE with scale
        alpha (exactly +-alpha, no MUL, no scales tensor); else DEQUANTIZE
        (scale 1) and MUL by one alpha per channel along `axis`."""
        alpha = np.asarray(alpha, np.float32)
        shape = self.shape_of(value)
        T = self.s.TensorType
        uniform = bool(np.all(alpha == alpha[0])) and alpha[0] > 0  # a scale must be > 0
        self.sg.tensors[value].quantization = self.per_tensor(alpha[0] if uniform else 1.0)
        value = self.add("DEQUANTIZE", [value], shape, T.FLOAT32)
        if uniform:
            return value, None
        dims = [1] * len(shape)
        dims[axis] = alpha.size
        scales = self.const(alpha.reshape(dims), T.FLOAT32)
        return self.add("MUL", [value, scales], shape, T.FLOAT32,
                        flatbuffer.options(self.s, "Mul")), scales

    def assign(self, name, value):
        handle, op = _var_handle(self.ed, self.sg, name)
        self.sg.operators.append(op)
        self.sg.operators.append(self.ed.op("ASSIGN_VARIABLE", [handle, value], []))


def _per_tensor_if_uniform(tensor):
    """One scale and zero point instead of one per channel when all are equal
    (a per-layer alpha): the same multipliers, 12 bytes less per channel."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) <= 1:
        return
    zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0])
    if np.all(q.scale == q.scale[0]) and np.all(zero == zero[0]):
        q.scale = np.asarray(q.scale[:1], np.float32)
        q.zeroPoint = np.asarray(zero[:1], np.int64)
        q.quantizedDimension = 0


def strip_names(model):
    """Drops the names of inner tensors (the converter's carry long layer paths;
    an absent name reads as "" in LiteRT and TFLite Micro, 12 bytes less than an
    empty one) and empty quantization tables; graph inputs and outputs keep theirs."""
    for n, subgraph in enumerate(model.subgraphs):
        io = {int(i) for part in (subgraph.inputs, subgraph.outputs) if part is not None
              for i in part} if n == 0 else set()
        for index, tensor in enumerate(subgraph.tensors or []):
            if index not in io:
                tensor.name = None
            q = tensor.quantization
            if q is not None and (q.scale is None or len(q.scale) == 0):
                tensor.quantization = None


def _binary_filters(model, schema, min_weights):
    """{tensor index: (alpha, depthwise, array)} of the constant binary filters of the main
    sub-graph, and the consumers of each {tensor index: [operator index]}."""
    main = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    wanted = {getattr(schema.BuiltinOperator, name) for name in FILTER_OPS}
    depthwise_code = schema.BuiltinOperator.DEPTHWISE_CONV_2D
    found, consumers = {}, {}
    for index, op in enumerate(main.operators):
        for i in op.inputs:
            consumers.setdefault(int(i), []).append(index)
        if codes[op.opcodeIndex] not in wanted or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        t = int(op.inputs[1])
        tensor = main.tensors[t]
        data = model.buffers[tensor.buffer].data if tensor.buffer else None
        if data is None or tensor.type not in (schema.TensorType.INT8, schema.TensorType.FLOAT32):
            continue
        dtype = np.int8 if tensor.type == schema.TensorType.INT8 else np.float32
        array = np.frombuffer(bytes(data), dtype).reshape(tensor.shape)
        if array.size < min_weights:
            continue
        depthwise = codes[op.opcodeIndex] == depthwise_code
        alpha = binary_alpha(array, depthwise)
        if alpha is not None and t not in found:
            found[t] = (alpha, depthwise, array)
    for t in list(found):  # only filters: never an input of other operators
        users = consumers[t]
        if any(int(main.operators[u].inputs[1]) != t or list(main.operators[u].inputs).count(t) > 1
               for u in users):
            del found[t]
    return found, consumers


def pack_filters(model_bytes, min_weights=MIN_WEIGHTS, conv_as_matmul=True,
                 min_macs=conv_matmul.MIN_MACS, expansion_record=True):
    """The model with its binary filters as UINT8 sign bits (see the module
    docstring). `conv_as_matmul`: a float CONV_2D of a packed filter with at
    least `min_macs` multiply-adds per image becomes an im2col BATCH_MATMUL
    (`conv_matmul`: LiteRT's XNNPACK delegate runs it, not a CONV_2D with a
    variable filter). `expansion_record`: store the record that expands the
    file back into `model_bytes` (False: a few kB smaller, for a device that
    runs the file as stored; `expand` then rebuilds an equivalent model from
    the start-up graph). Returns (bytes, number of filters packed)."""
    schema = flatbuffer.schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    if len(model.subgraphs) != 1:
        raise ExportError("Packing sign bits: expected a model with one sub-graph, found "
                          f"{len(model.subgraphs)}.")
    found, consumers = _binary_filters(model, schema, min_weights)
    if not found:
        raise ExportError("The model has no binary filters to pack (no CONV_2D, "
                          "DEPTHWISE_CONV_2D or FULLY_CONNECTED filter of at least "
                          f"{min_weights} weights with one magnitude per channel).")
    root = schema.Model.GetRootAsModel(model_bytes, 0)
    holes = [record.buffer_position(root, model.subgraphs[0].tensors[t].buffer)
             for t in sorted(found)]
    packer = _Packer(model, schema, conv_as_matmul, min_macs)
    for n, (t, found_filter) in enumerate(sorted(found.items())):
        packer.pack(n, t, *found_filter, consumers[t])
    packer.finish()
    # the converter's minimum runtime (e.g. 1.6.0) fits the source graph, not the call-once
    # and variable operators added here: no claim rather than a wrong one
    model.metadata = [m for m in model.metadata or [] if m.name != b"min_runtime_version"]
    drop_empty_buffers(model)
    strip_names(model)
    if not expansion_record:
        return _serialized(model, len(model_bytes)), len(found)
    packed = _add_record(model, schema, model_bytes, holes, packer.sources)
    if record.expand(schema.Model.GetRootAsModel(packed, 0), packed) != model_bytes:
        raise ExportError("Packing sign bits: the expansion record does not give back the "
                          "model it was packed from.")
    return packed, len(found)


class _Packer:
    """Packs filters one by one: their start-up operators go to a new sub-graph
    (`onebit_unpack`), their reads (and any conv computed as a product) to the
    main graph, which `finish` rebuilds with a CALL_ONCE first."""

    def __init__(self, model, schema, conv_as_matmul, min_macs):
        self.model, self.s = model, schema
        self.conv_as_matmul, self.min_macs = conv_as_matmul, min_macs
        self.main = model.subgraphs[0]
        self.ed = flatbuffer.Editor(model, schema)
        init = schema.SubGraphT()
        init.tensors, init.operators, init.inputs, init.outputs = [], [], [], []
        init.name = b"onebit_unpack"
        model.subgraphs.append(init)
        self.unpack = _Unpacker(self.ed, init)
        self.main_graph = flatbuffer.GraphBuilder(self.ed, self.main, [])
        self.reads = {}  # consumer operator index -> [VAR_HANDLE, READ_VARIABLE] before it
        self.replaced = {}  # conv operator index -> the operators that compute it as a product
        self.sources = []  # per filter: what the expansion record says of it (see `pack`)

    def pack(self, n, t, alpha, depthwise, array, users):
        """Filter tensor `t` (the n-th found) becomes variable `onebit_var_<n>`."""
        filt = self.main.tensors[t]
        first = None
        if self.conv_as_matmul and not depthwise:
            first = _matmul_layout(self.main_graph, users, self.min_macs)
        name = f"onebit_var_{n}".encode()
        value, bits, scales = _unpacked(self.unpack, filt, alpha, depthwise, array, first)
        self.unpack.assign(name, value)
        self.sources.append(self._source(filt, alpha, depthwise, array, bits, scales))
        if filt.type == self.s.TensorType.INT8:
            _int8_quantization(self.ed, self.main, filt, users)
        # inference: the filter becomes the variable's value
        self.model.buffers[filt.buffer].data = None
        filt.buffer = 0
        if first is not None:
            self._as_products(t, filter_matrix(array).shape, users, first)
        self.reads.setdefault(min(users), []).extend(_read_variable(self.ed, self.main, name, t))

    def _source(self, filt, alpha, depthwise, array, bits, scales):
        """(count, channels, dtype, layout, bits tensor, scales tensor or None,
        magnitude) of a filter unpacked from the start-up graph's tensors `bits`
        and `scales`."""
        r = record
        is_int8 = filt.type == self.s.TensorType.INT8
        channels = array.shape[-1] if depthwise else array.shape[0]
        magnitude = 127.0 if is_int8 else float(alpha[0])
        return (array.size, channels, r.INT8 if is_int8 else r.FLOAT32,
                r.CHANNEL_LAST if depthwise else r.CHANNEL_FIRST, bits, scales,
                magnitude)

    def _as_products(self, t, matrix_shape, users, first):
        """Each user of filter `t` (a CONV_2D) becomes an im2col product; the
        filter tensor takes the matrix's shape."""
        filt = self.main.tensors[t]
        _, kh, kw, _ = (int(d) for d in filt.shape)
        filt.shape = np.asarray(matrix_shape[::-1] if first else matrix_shape, np.int32)
        filt.shapeSignature = None
        for u in users:
            self.main_graph.ops = self.replaced[u] = []
            conv_matmul.lower(self.main_graph, self.main.operators[u], t, kh, kw, first)

    def finish(self):
        operators = [self.ed.op("CALL_ONCE", [], [], flatbuffer.options(
            self.s, "CallOnce", initSubgraphIndex=len(self.model.subgraphs) - 1))]
        for index, op in enumerate(self.main.operators):
            operators += self.reads.get(index, []) + self.replaced.get(index, [op])
        self.main.operators = operators


def _add_record(model, schema, plain, holes, sources):
    """The packed file's bytes with the expansion record (expansion_record.py)
    as the metadata buffer "onebit_expand". Its stream references the bytes
    around it, so it is written into a place of fixed size: the file is laid
    out with an empty place, the record made against that layout, and the
    place grown and the record made again until it fits (twice, as a rule)."""
    startup = model.subgraphs[-1].tensors
    filters = [(count, channels, dtype, layout, int(startup[bits].buffer),
                0 if scales is None else int(startup[scales].buffer), magnitude)
               for count, channels, dtype, layout, bits, scales, magnitude in sources]
    buffer, entry = schema.BufferT(), schema.MetadataT()
    model.buffers.append(buffer)
    entry.name, entry.buffer = record.NAME, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    room = 0
    for _ in range(4):
        buffer.data = np.zeros(room, np.uint8)
        draft = _serialized(model, len(plain))
        root = schema.Model.GetRootAsModel(draft, 0)
        start = record.buffer_position(root, entry.buffer)[0] if room else 0
        skip = sorted([(start, start + room)] + [
            (p, p + n) for p, n in (record.buffer_position(root, f[4])
                                    for f in filters)])
        ranges = [(a[1], b[0]) for a, b in zip([(0, 0), *skip], [*skip, (len(draft),) * 2],
                                               strict=True) if b[0] > a[1]]
        spans = record.bias_scale_spans(schema, plain, draft, holes)
        made = record.build(plain, holes, filters, draft, ranges, spans)
        if room and len(made) <= room:  # the draft's empty place, filled: nothing else moves
            return draft[:start] + made + bytes(room - len(made)) + draft[start + room:]
        room = len(made) + 16
    raise ExportError("Packing sign bits: the expansion record found no stable place.")


def _serialized(model, size_hint):
    builder = flatbuffers.Builder(size_hint // 4 + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _matmul_layout(g, users, min_macs):
    """None: the filter's users stay as they are; else every user is a CONV_2D
    to compute as an im2col product, and this says whether its filter matrix
    is the left operand (`conv_matmul.filter_first`; all users agree)."""
    ops = [g.sg.operators[u] for u in users]
    if not all(conv_matmul.can_lower(g.s, g.sg, op, g.ed.codes[op.opcodeIndex], min_macs)
               for op in ops):
        return None
    first = {conv_matmul.filter_first(g, op) for op in ops}
    return first.pop() if len(first) == 1 else None


def _unpacked(unpack, filt, alpha, depthwise, array, first):
    """The start-up operators that rebuild one filter from its sign bits: the
    filter tensor's own layout, or (`first` not None) the filter matrix of an
    im2col product, (K, C_out) or, when `first`, (C_out, K). Returns (the
    filter's value, its UINT8 bits tensor, its scales tensor or None)."""
    is_int8 = filt.type == unpack.s.TensorType.INT8
    matrix = array.reshape(-1, array.shape[-1]) if depthwise else filter_matrix(array)
    bits = np.packbits(matrix.reshape(-1) > 0, bitorder="big")
    magnitude = 127 if is_int8 else 1
    if first is not None:
        value, packed = unpack.matrix(bits, matrix.shape, magnitude)
        value = unpack.transpose(value) if first else value
        value, scales = unpack.scale(value, alpha, 0 if first else -1)
        return value, packed, scales
    shape = [int(d) for d in filt.shape]
    if depthwise:  # (1, kh, kw, C_out): the Keras kernel's own order
        value, packed = unpack.matrix(bits, shape, magnitude)
    else:  # TFLite filters are (C_out, ...): the Keras kernel with its last axis first
        value, packed = unpack.matrix(bits, [*shape[1:], shape[0]], magnitude)
        value = unpack.transpose(value)
    if is_int8:
        return value, packed, None
    value, scales = unpack.scale(value, alpha, -1 if depthwise else 0)
    return value, packed, scales


def _int8_quantization(ed, main, filt, users):
    """Per-tensor scales where a per-layer alpha made all channels equal."""
    _per_tensor_if_uniform(filt)
    for u in users:
        inputs = main.operators[u].inputs
        if len(inputs) > 2 and inputs[2] >= 0:
            bias = main.tensors[int(inputs[2])]
            if ed.codes[main.operators[u].opcodeIndex] == ed.s.BuiltinOperator.CONV_2D:
                bias.quantization = None  # see _drop_bias_quantization
            else:
                _per_tensor_if_uniform(bias)


def _read_variable(ed, main, name, tensor):
    """VAR_HANDLE + READ_VARIABLE into `tensor`."""
    handle, op = _var_handle(ed, main, name)
    return [op, ed.op("READ_VARIABLE", [handle], [tensor])]


def _var_handle(ed, subgraph, name):
    """A resource tensor in `subgraph` and the VAR_HANDLE of variable `name`
    that writes it (no container: read as none)."""
    handle = ed.tensor(subgraph, (), ed.s.TensorType.RESOURCE)
    return handle, ed.op("VAR_HANDLE", [], [handle],
                         flatbuffer.options(ed.s, "VarHandle", sharedName=name))


def drop_empty_buffers(model):
    """Points every tensor without data at buffer 0 (the converter gives each
    activation its own empty buffer, 12 bytes or more apiece) and removes the
    buffers no tensor or metadata uses any more (the emptied filters too)."""
    for subgraph in model.subgraphs:
        for t in subgraph.tensors:
            b = model.buffers[t.buffer]
            if (b.data is None or len(b.data) == 0) and not getattr(b, "offset", 0):
                t.buffer = 0
    flatbuffer.remove_unused_buffers(model)


def operator_counts(model_bytes):
    """How often each operator occurs in a .tflite model, over all sub-graphs.

    Args:
        model_bytes: the flatbuffer (bytes of a .tflite file).

    Returns:
        {operator name: count}, builtin operators by their schema name
        (e.g. "CONV_2D"), custom ones by their custom code (e.g. "LceBconv2d").
    """
    schema = flatbuffer.schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = [c.customCode.decode() if c.customCode else
             builtin[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    counts = {}
    for graph in model.subgraphs:
        for op in graph.operators:
            counts[names[op.opcodeIndex]] = counts.get(names[op.opcodeIndex], 0) + 1
    return dict(sorted(counts.items()))
