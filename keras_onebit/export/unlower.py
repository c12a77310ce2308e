"""The inverse of conv_matmul.lower: an im2col product with a constant filter
matrix back to the CONV_2D it computes (for `expand`; NumPy only).

The chain conv_matmul writes, read backwards from each BATCH_MATMUL whose filter
matrix is a constant:

    x [-PAD-] [-STRIDED_SLICE column taps-> [CONCATENATION]]
      [-STRIDED_SLICE row taps-> [CONCATENATION]] -RESHAPE (-1, K)-> columns
    BATCH_MATMUL(columns, matrix (K, C_out))  or  BATCH_MATMUL(matrix (C_out, K),
      columns, adj_y) -TRANSPOSE->,  then -RESHAPE-> [-ADD bias (fused activation)-
      | -activation-] -> the conv's output

Strides come from the views' strides, dilations from the second tap's offset, the
taps' counts give the filter's height and width, a PAD means SAME padding.
"""

import numpy as np

from keras_onebit.export.errors import ExportError

ACTIVATIONS = {"RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
WHOLE = 1 << 30  # conv_matmul's "end past the axis"


class _Graph:
    """Producers and consumers of the main graph's tensors."""

    def __init__(self, s, m, sg, names):
        self.s, self.m, self.sg, self.names = s, m, sg, names
        self.producer, self.consumers = {}, {}
        for i, op in enumerate(sg.operators):
            for t in op.outputs:
                self.producer[int(t)] = i
            for t in op.inputs:
                self.consumers.setdefault(int(t), []).append(i)

    def name(self, i):
        return self.names[self.sg.operators[i].opcodeIndex]

    def made_by(self, tensor, *names):
        i = self.producer.get(int(tensor))
        return i if i is not None and self.name(i) in names else None

    def only_consumer(self, tensor):
        users = self.consumers.get(int(tensor), [])
        outputs = {int(t) for t in self.sg.outputs}
        return users[0] if len(users) == 1 and int(tensor) not in outputs else None

    def constant(self, tensor):
        t = self.sg.tensors[int(tensor)]
        data = self.m.buffers[t.buffer].data if 0 <= t.buffer < len(self.m.buffers) else None
        if data is None or not len(data):
            return None
        from keras_onebit.export.expand import NUMPY_TYPES, _type_name

        dtype = NUMPY_TYPES[_type_name(self.s, t.type)]
        return np.asarray(data, np.uint8).view(dtype).reshape([int(d) for d in t.shape])

    def shape(self, tensor):
        return [int(d) for d in self.sg.tensors[int(tensor)].shape]


def restore_convs(s, m, sg, names):
    """Replaces, in sub-graph `sg`, every lowered conv by its CONV_2D."""
    g = _Graph(s, m, sg, names)
    replaced = {}  # index of the chain's last operator -> the CONV_2D
    removed = set()
    for i in range(len(sg.operators)):
        if g.name(i) != "BATCH_MATMUL":
            continue
        conv, chain = _restore(g, i)
        replaced[max(chain)] = conv
        removed |= chain
    if replaced:
        sg.operators = [replaced.get(i, op) for i, op in enumerate(sg.operators)
                        if i not in removed or i in replaced]


def _restore(g, i):
    """(CONV_2D operator, indices of the chain's operators) of the product `i`."""
    op = g.sg.operators[i]
    left, right = (int(t) for t in op.inputs[:2])
    first = g.constant(left) is not None
    matrix_tensor, columns = (left, right) if first else (right, left)
    matrix = g.constant(matrix_tensor)
    if matrix is None or matrix.ndim != 2:
        raise ExportError("tampered packed file: a product without a constant filter matrix.")
    chain = {i}
    tail = int(op.outputs[0])
    if first:
        t = _expect(g, g.only_consumer(tail), "TRANSPOSE", chain)
        tail = int(g.sg.operators[t].outputs[0])
    r = _expect(g, g.only_consumer(tail), "RESHAPE", chain)
    y = int(g.sg.operators[r].outputs[0])
    out, bias, activation = _epilogue(g, y, chain)
    x, kh, kw, options = _columns(g, columns, chain)
    c_in = g.shape(x)[3]
    c_out = matrix.shape[0] if first else matrix.shape[1]
    if matrix.size != kh * kw * c_in * c_out:
        raise ExportError("tampered packed file: a filter matrix of the wrong size.")
    filt = (matrix.reshape(c_out, kh, kw, c_in) if first
            else matrix.reshape(kh, kw, c_in, c_out).transpose(3, 0, 1, 2))
    _set_filter(g, matrix_tensor, np.ascontiguousarray(filt))
    options.fusedActivationFunction = activation
    conv = g.s.OperatorT()
    conv.opcodeIndex = _opcode(g, "CONV_2D")
    conv.inputs = np.asarray([x, matrix_tensor, bias], np.int32)
    conv.outputs = np.asarray([out], np.int32)
    conv.builtinOptionsType = g.s.BuiltinOptions.Conv2DOptions
    conv.builtinOptions = options
    return conv, chain


def _expect(g, i, name, chain):
    if i is None or g.name(i) != name:
        raise ExportError(f"tampered packed file: a conv product without its {name}.")
    chain.add(i)
    return i


def _epilogue(g, y, chain):
    """(conv output, bias tensor or -1, fused activation) after the RESHAPE `y`."""
    i = g.only_consumer(y)
    if i is not None and g.name(i) == "ADD":
        op = g.sg.operators[i]
        other = [int(t) for t in op.inputs if int(t) != y]
        if len(other) == 1 and g.constant(other[0]) is not None and len(g.shape(other[0])) == 1:
            chain.add(i)
            act = op.builtinOptions.fusedActivationFunction if op.builtinOptions else 0
            return int(op.outputs[0]), other[0], act
    if i is not None and g.name(i) in ACTIVATIONS:
        chain.add(i)
        return int(g.sg.operators[i].outputs[0]), -1, ACTIVATIONS[g.name(i)]
    return y, -1, 0


def _columns(g, columns, chain):
    """(conv input x, kh, kw, Conv2DOptions) from the columns' producers."""
    r = _expect(g, g.producer.get(columns), "RESHAPE", chain)
    t = int(g.sg.operators[r].inputs[0])
    t, kh, stride_h, dilation_h = _taps(g, t, 1, chain)
    t, kw, stride_w, dilation_w = _taps(g, t, 2, chain)
    options = g.s.Conv2DOptionsT()
    options.padding = g.s.Padding.VALID
    pad = g.made_by(t, "PAD")
    if pad is not None and all(c in chain for c in g.consumers.get(t, [])):
        chain.add(pad)
        t = int(g.sg.operators[pad].inputs[0])
        options.padding = g.s.Padding.SAME
    options.strideH, options.strideW = stride_h, stride_w
    options.dilationHFactor, options.dilationWFactor = dilation_h, dilation_w
    return t, kh, kw, options


def _taps(g, t, axis, chain):
    """(input of the views along `axis`, count, stride, dilation); no views: (t, 1, 1, 1)."""
    concat = g.made_by(t, "CONCATENATION")
    views = ([int(x) for x in g.sg.operators[concat].inputs] if concat is not None else [t])
    slices = [g.made_by(v, "STRIDED_SLICE") for v in views]
    if any(i is None for i in slices):
        return t, 1, 1, 1
    params = [[g.constant(x) for x in g.sg.operators[i].inputs[1:4]] for i in slices]
    sources = {int(g.sg.operators[i].inputs[0]) for i in slices}
    if len(sources) != 1 or any(p is None for ps in params for p in ps):
        raise ExportError("tampered packed file: im2col views of different inputs.")
    begins = [int(p[0][axis]) for p in params]
    strides = {int(p[2][axis]) for p in params}
    along = any(b != 0 for b in begins) or strides != {1}
    if not along:
        return t, 1, 1, 1
    if len(strides) != 1 or begins[0] != 0:
        raise ExportError("tampered packed file: im2col views of unequal strides.")
    chain.update(slices)
    if concat is not None:
        chain.add(concat)
    dilation = begins[1] if len(begins) > 1 else 1
    if begins != [k * dilation for k in range(len(begins))]:
        raise ExportError("tampered packed file: im2col taps at uneven offsets.")
    return sources.pop(), len(views), strides.pop(), dilation


def _set_filter(g, tensor, value):
    t = g.sg.tensors[tensor]
    buffer = g.s.BufferT()
    buffer.data = np.frombuffer(value.astype(np.float32).tobytes(), np.uint8)
    g.m.buffers.append(buffer)
    t.buffer = len(g.m.buffers) - 1
    t.shape = np.asarray(value.shape, np.int32)
    t.shapeSignature = None


def _opcode(g, name):
    code = getattr(g.s.BuiltinOperator, name)
    for i, c in enumerate(g.m.operatorCodes):
        if max(c.builtinCode, c.deprecatedBuiltinCode) == code:
            return i
    new = g.s.OperatorCodeT()
    new.builtinCode, new.deprecatedBuiltinCode, new.version = code, min(code, 127), 1
    g.m.operatorCodes.append(new)
    g.names.append(name)
    return len(g.m.operatorCodes) - 1
