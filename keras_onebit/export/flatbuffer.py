"""Editing a .tflite flatbuffer's object model: new tensors, constants and
builtin operators, appended to a sub-graph (no converter runs again)."""

import numpy as np


def schema():
    """The TFLite schema module (tflite-micro's copy, else TensorFlow's)."""
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as module
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as module
    return module


def options(s, name, **fields):
    """`<name>OptionsT` of the schema `s` with `fields` set."""
    value = getattr(s, name + "OptionsT")()
    for key, v in fields.items():
        setattr(value, key, v)
    return value


def operator_names(s, model):
    """The builtin operator name (e.g. "CONV_2D") of each operator code of `model`,
    "?" for a code the schema `s` does not know."""
    builtin = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    return [builtin.get(max(c.builtinCode, c.deprecatedBuiltinCode), "?")
            for c in model.operatorCodes]


def remove_unused_tensors(model):
    """Drops the tensors no operator, graph input or output uses, in every
    sub-graph, and renumbers the references (operators, graph, signatures).
    A tensor left without producer or data would otherwise get arena memory for
    the whole run in TFLite Micro."""
    for n, sg in enumerate(model.subgraphs):
        used = {int(i) for op in sg.operators for i in [*op.inputs, *op.outputs] if i >= 0}
        used |= {int(i) for i in [*sg.inputs, *sg.outputs]}
        keep = sorted(used)
        index = {old: new for new, old in enumerate(keep)}
        sg.tensors = [sg.tensors[i] for i in keep]
        for op in sg.operators:
            op.inputs = np.asarray([index[int(i)] if i >= 0 else -1 for i in op.inputs],
                                   np.int32)
            op.outputs = np.asarray([index[int(i)] for i in op.outputs], np.int32)
        sg.inputs = np.asarray([index[int(i)] for i in sg.inputs], np.int32)
        sg.outputs = np.asarray([index[int(i)] for i in sg.outputs], np.int32)
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == n:
                for entry in [*(signature.inputs or []), *(signature.outputs or [])]:
                    entry.tensorIndex = index[int(entry.tensorIndex)]


def remove_unused_buffers(model):
    """Drops the buffers that no tensor or metadata entry uses (buffer 0, the
    empty sentinel, stays) and renumbers the references to the others."""
    used = {0} | {int(t.buffer) for sg in model.subgraphs for t in sg.tensors}
    used |= {int(m.buffer) for m in model.metadata or []}
    keep = sorted(used)
    index = {old: new for new, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for sg in model.subgraphs:
        for t in sg.tensors:
            t.buffer = index[int(t.buffer)]
    for m in model.metadata or []:
        m.buffer = index[int(m.buffer)]
    if model.metadataBuffer is not None and len(model.metadataBuffer):
        model.metadataBuffer = np.asarray([index[int(i)] for i in model.metadataBuffer
                                           if int(i) in index], np.int32)


class Editor:
    """Adds tensors, buffers and operators to a flatbuffer object model."""

    def __init__(self, model, s):
        self.model, self.s = model, s
        self.codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]

    def opcode(self, name, version=1):
        op = getattr(self.s.BuiltinOperator, name)
        for i, code in enumerate(self.model.operatorCodes):
            if self.codes[i] == op and code.version >= version:
                return i
        code = self.s.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = op, min(op, 127), version
        self.model.operatorCodes.append(code)
        self.codes.append(op)
        return len(self.codes) - 1

    def tensor(self, subgraph, shape, dtype, data=None, quantization=None):
        tensor = self.s.TensorT()
        tensor.shape = np.asarray(shape, np.int32)
        tensor.type = dtype
        tensor.name = None  # no name: reads as ""
        tensor.quantization = quantization
        if data is not None:
            buffer = self.s.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.model.buffers.append(buffer)
            tensor.buffer = len(self.model.buffers) - 1
        subgraph.tensors.append(tensor)
        return len(subgraph.tensors) - 1

    def op(self, name, inputs, outputs, options=None, version=1):
        op = self.s.OperatorT()
        op.opcodeIndex = self.opcode(name, version)
        op.inputs = np.asarray(inputs, np.int32)
        op.outputs = np.asarray(outputs, np.int32)
        if options is not None:
            op.builtinOptionsType = getattr(self.s.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        return op


class GraphBuilder:
    """Appends operators to `ops` (default: the sub-graph's own list) whose
    tensors live in `subgraph`. Constants with the same bytes are shared."""

    def __init__(self, editor, subgraph, ops=None):
        self.ed, self.sg, self.s = editor, subgraph, editor.s
        self.ops = subgraph.operators if ops is None else ops
        self.shared = {}

    def const(self, array, dtype):
        array = np.ascontiguousarray(array)
        key = (array.dtype.str, array.shape, array.tobytes(), dtype)
        if key not in self.shared:
            self.shared[key] = self.ed.tensor(self.sg, array.shape, dtype, array)
        return self.shared[key]

    def int32(self, values):
        return self.const(np.asarray(values, np.int32), self.s.TensorType.INT32)

    def add(self, name, inputs, shape, dtype, options=None, version=1, out=None):
        """Appends operator `name`; returns its output tensor (a new one without
        quantization, or `out`)."""
        if out is None:
            out = self.ed.tensor(self.sg, shape, dtype)
        self.ops.append(self.ed.op(name, inputs, [out], options, version))
        return out

    def shape_of(self, tensor):
        return [int(d) for d in self.sg.tensors[tensor].shape]

    def reshape(self, value, shape, out=None):
        """RESHAPE to `shape` (a -1 is kept in the new-shape operand, so the
        batch may change at run time; the tensor gets `static` dims)."""
        static = list(shape)
        if -1 in static:
            static[static.index(-1)] = int(np.prod(self.shape_of(value)) // -np.prod(static))
        if out is None and self.shape_of(value) == static:
            return value
        # the shape operand alone (no options table: LiteRT and TFLite Micro read the operand)
        return self.add("RESHAPE", [value, self.int32(shape)], static,
                        self.sg.tensors[value].type, out=out)
