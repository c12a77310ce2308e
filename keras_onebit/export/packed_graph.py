"""The "packed" TFLite format: sign bits stay packed in the file.

No TFLite runtime has a 1-bit tensor type, and a convolution whose filter is
not a constant loses XNNPACK in LiteRT (SPEC §6; about 4x slower here). But
XNNPACK does run BATCH_MATMUL with a non-constant right-hand side at full
speed, so each binary layer becomes a matrix product whose right-hand side is
a resource variable, unpacked once:

    first invoke only (an IF on a boolean variable): one int8 constant with
        every kernel's bits -> 8 bit planes (CONCATENATION with one byte from
        the input and STRIDED_SLICE, CAST, FLOOR, MUL, SUB) -> per layer
        (2b - 1) * alpha -> ASSIGN_VARIABLE
    every invoke: READ_VARIABLE -> BATCH_MATMUL, fed by an im2col of the
        input (PAD, STRIDED_SLICE, CONCATENATION, RESHAPE) for kh x kw > 1

The byte taken from the input (always 0) stops the converter from folding the
unpack back into float constants; a 0.0 from the input is also added after
each product, since the converter fuses a following ReLU into BATCH_MATMUL
and drops it. The converter writes each variable's zero
initial value into its CALL_ONCE sub-graph (4 bytes per weight);
`strip_variable_inits` replaces those constants by FILL operators, keeping
the ASSIGN_VARIABLEs that TFLite Micro needs to allocate the variables.
Only builtin ops are used: the file runs on stock LiteRT and TFLite Micro.
Measured on WRN-16-4 (2 threads): about 2x the float model's latency (the
im2col copies and the per-invoke READ_VARIABLE copies), against 10x for a
per-inference unpack feeding CONV_2D; bench/README.md has the numbers.

Bit layout inside the graph: every binary kernel, in layer order, flattened
in C order (HWIO = rows of the (kh*kw*C_in, C_out) matrix) and concatenated,
N weights in all, padded with zeros to 8*M; weight i is bit i // M (least
significant = 0) of byte i % M.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_onebit.export.errors import ExportError

KERNEL_MIN_BYTES = 16  # float32 variable initial values at least this large are stripped


def plane_bits(signs):
    """int8 (M,) bytes of a boolean kernel in the bit-plane layout above."""
    flat = np.asarray(signs, bool).reshape(-1)
    m = math.ceil(flat.size / 8)
    planes = np.zeros(8 * m, np.uint8)
    planes[:flat.size] = flat
    planes = planes.reshape(8, m)
    packed = np.zeros(m, np.uint8)
    for k in range(8):
        packed |= planes[k] << k
    return packed.view(np.int8)


def unpack_planes(bits, count, zero):
    """float32 (count,) of 0/1 from int8 bytes in the bit-plane layout (graph ops).

    `zero` is an int8 (1,) computed from the model input, joined to the bytes
    and sliced off again: without it the converter folds the unpack (or its
    CAST) back into a float constant."""
    joined = tf.concat([tf.constant(bits), zero], axis=0)[:bits.size]
    c = tf.cast(joined, tf.float32)
    v = c - 256.0 * tf.floor(c * (1.0 / 256.0))  # two's complement -> 0..255
    floors = [v] + [tf.floor(v * (1.0 / 2.0**k)) for k in range(1, 9)]
    planes = [floors[k] - 2.0 * floors[k + 1] for k in range(8)]
    flat = tf.concat(planes, axis=0)
    return flat[:count]


@keras.saving.register_keras_serializable(package="keras_onebit_deploy")
class PackedKernelLayer(keras.layers.Layer):
    """A binary Conv2D / Dense of the deploy clone holding packed sign bits.

    `self.variable` (a tf.Variable holding the unpacked (K, C_out) matrix) is
    attached by `PackedServer`; `unpack()` builds the start-up sub-graph.
    """

    def __init__(self, kind, signs, alpha, kernel_shape, strides=(1, 1), padding="same",
                 bias=None, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind
        self.signs = np.asarray(signs, bool)
        self.alpha = np.asarray(alpha, np.float32)
        self.kernel_shape = tuple(int(d) for d in kernel_shape)
        self.strides = tuple(strides)
        self.padding = padding
        self.bias_value = None if bias is None else np.asarray(bias, np.float32)
        self.activation = keras.activations.get(activation)
        self.variable = None
        self.zero = None

    @property
    def matrix_shape(self):
        return (math.prod(self.kernel_shape[:-1]), self.kernel_shape[-1])

    def kernel_from_bits(self, b):
        """The (K, C_out) kernel from its 0/1 floats (graph ops)."""
        return tf.reshape(2.0 * b - 1.0, self.matrix_shape) * tf.constant(self.alpha)

    def _im2col(self, x):
        kh, kw = self.kernel_shape[:2]
        sh, sw = self.strides
        h, w = int(x.shape[1]), int(x.shape[2])
        if self.padding == "same":
            oh, ow = math.ceil(h / sh), math.ceil(w / sw)
            ph = max((oh - 1) * sh + kh - h, 0)
            pw = max((ow - 1) * sw + kw - w, 0)
            if ph or pw:
                x = tf.pad(x, [[0, 0], [ph // 2, ph - ph // 2], [pw // 2, pw - pw // 2], [0, 0]])
        else:
            oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        if kh == kw == 1 and sh == sw == 1:
            return x, oh, ow
        cols = [x[:, dy:dy + (oh - 1) * sh + 1:sh, dx:dx + (ow - 1) * sw + 1:sw, :]
                for dy in range(kh) for dx in range(kw)]
        return (tf.concat(cols, axis=-1) if len(cols) > 1 else cols[0]), oh, ow

    def call(self, x):
        rows, cols = self.matrix_shape
        kernel = tf.reshape(self.variable.read_value(), (rows, cols))
        if self.kind == "conv":
            patches, oh, ow = self._im2col(x)
            y = tf.matmul(tf.reshape(patches, (-1, rows)), kernel)
            y = tf.reshape(y, (-1, oh, ow, cols))
        else:
            y = tf.matmul(x, kernel)
        # The converter fuses a ReLU that follows BATCH_MATMUL into it and then
        # drops it (TF 2.21, non-constant right-hand side): adding a 0.0 taken
        # from this layer's input, which it cannot fold, keeps the activation
        # (fused into this ADD instead).
        y = y + (self.zero if self.zero is not None
                 else tf.minimum(tf.abs(tf.reshape(x, [-1])[0]), 0.0))
        if self.bias_value is not None:
            y = y + tf.constant(self.bias_value)
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        if self.kind == "dense":
            return tuple(input_shape[:-1]) + (self.kernel_shape[-1],)
        kh, kw = self.kernel_shape[:2]
        sh, sw = self.strides
        if self.padding == "same":
            size = [math.ceil(input_shape[1] / sh), math.ceil(input_shape[2] / sw)]
        else:
            size = [(input_shape[1] - kh) // sh + 1, (input_shape[2] - kw) // sw + 1]
        return (input_shape[0], *size, self.kernel_shape[-1])


def packed_layer(layer, config):
    """The PackedKernelLayer replacing binary layer `layer` in the deploy clone."""
    conv = isinstance(layer, keras.layers.Conv2D)
    if conv and (tuple(config.get("dilation_rate", (1, 1))) != (1, 1)
                 or config.get("groups", 1) != 1 or config.get("data_format") == "channels_first"):
        raise ExportError(
            f"Cannot export layer {layer.name!r} of type {type(layer).__name__} as packed: "
            "dilation, groups and channels_first are not supported.")
    bias = keras.ops.convert_to_numpy(layer.bias) if getattr(layer, "bias", None) is not None \
        else None
    return PackedKernelLayer(
        "conv" if conv else "dense", layer.sign_bits(), layer.kernel_alpha(),
        tuple(layer.kernel.shape), strides=tuple(config.get("strides", (1, 1))),
        padding=config.get("padding", "same"), bias=bias, activation=config.get("activation"),
        name=layer.name)


class PackedServer(tf.Module):
    """The inference function: unpack once (first call), then run the clone."""

    def __init__(self, clone):
        super().__init__()
        self.clone = clone
        self.packed = [layer for layer in clone._flatten_layers(include_self=False)
                       if isinstance(layer, PackedKernelLayer)]
        if not self.packed:
            raise ExportError("The model has no binary layers to pack.")
        with tf.init_scope():
            self.ready = tf.Variable(False, name="unpacked")
            self.kernels = [tf.Variable(tf.zeros(layer.matrix_shape), name=f"{layer.name}_w")
                            for layer in self.packed]
        for layer, variable in zip(self.packed, self.kernels, strict=True):
            layer.variable = variable
        signs = np.concatenate([layer.signs.reshape(-1) for layer in self.packed])
        self.count = int(signs.size)
        self.bits = plane_bits(signs)  # every kernel, in layer order, one constant
        self.values = [(w, keras.ops.convert_to_numpy(w)) for w in clone.weights]
        shape = (1,) + tuple(clone.input_shape[1:])
        self.serve = tf.function(self._serve,
                                 input_signature=[tf.TensorSpec(shape, tf.float32, "pixels")])

    def _unpack_all(self, zero):
        flat = unpack_planes(self.bits, self.count, zero)
        start = 0
        for layer, variable in zip(self.packed, self.kernels, strict=True):
            size = layer.signs.size
            variable.assign(layer.kernel_from_bits(flat[start:start + size]))
            start += size
        self.ready.assign(True)
        return tf.constant(True)

    def _serve(self, x):
        first = tf.minimum(tf.abs(tf.reshape(x, [-1])[:1]), 0.0)  # [0.0], but not a constant
        zero = tf.cast(first, tf.int8)
        done = tf.cond(self.ready, lambda: tf.constant(True), lambda: self._unpack_all(zero))
        # Keras variables (BN statistics, ...) enter as constants: only the
        # unpacked kernels are resource variables.
        constants = [(w, tf.constant(value)) for w, value in self.values]
        with tf.control_dependencies([done]), keras.StatelessScope(state_mapping=constants):
            zero = tf.minimum(tf.abs(tf.reshape(x, [-1])[0]), 0.0)
            for layer in self.packed:
                layer.zero = zero
            try:
                return self.clone(x, training=False)
            finally:
                for layer in self.packed:
                    layer.zero = None


def strip_variable_inits(model_bytes, min_bytes=KERNEL_MIN_BYTES, strip_names=True):
    """Replaces the large all-zero initial values the converter writes for the
    kernel variables (4 bytes per weight, in its CALL_ONCE sub-graph) by FILL
    operators; the unpack then assigns the real kernels on the first invoke.

    The ASSIGN_VARIABLE operators stay in the CALL_ONCE sub-graph: TFLite Micro
    allocates a variable's buffer when it prepares the first assignment it
    sees. With `strip_names`, the names of inner tensors are blanked too (the
    im2col sub-graphs have hundreds). Returns (bytes, number replaced)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    assign = schema.BuiltinOperator.ASSIGN_VARIABLE
    replaced = 0

    def fill_opcode():
        if schema.BuiltinOperator.FILL not in codes:
            code = schema.OperatorCodeT()
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FILL
            code.version = 1
            model.operatorCodes.append(code)
            codes.append(schema.BuiltinOperator.FILL)
        return codes.index(schema.BuiltinOperator.FILL)

    def constant(subgraph, array, tensor_type):
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        model.buffers.append(buffer)
        tensor = schema.TensorT()
        tensor.shape = np.asarray(array.shape, np.int32)
        tensor.type = tensor_type
        tensor.buffer = len(model.buffers) - 1
        tensor.name = b""
        subgraph.tensors.append(tensor)
        return len(subgraph.tensors) - 1

    shared_names = {}
    for subgraph in model.subgraphs:
        operators, filled, value = [], set(), None
        for op in subgraph.operators or []:
            if codes[op.opcodeIndex] == assign and len(op.inputs) > 1:
                index = int(op.inputs[1])
                tensor = subgraph.tensors[index]
                data = model.buffers[tensor.buffer].data if tensor.buffer else None
                if index not in filled and tensor.type == schema.TensorType.FLOAT32 \
                        and data is not None and len(data) >= min_bytes and not np.any(data):
                    if value is None:
                        value = constant(subgraph, np.zeros((), np.float32),
                                         schema.TensorType.FLOAT32)
                    dims = constant(subgraph, np.asarray(tensor.shape, np.int32),
                                    schema.TensorType.INT32)
                    fill = schema.OperatorT()
                    fill.opcodeIndex = fill_opcode()
                    fill.inputs = np.asarray([dims, value], np.int32)
                    fill.outputs = np.asarray([index], np.int32)
                    fill.builtinOptionsType = schema.BuiltinOptions.FillOptions
                    fill.builtinOptions = schema.FillOptionsT()
                    operators.append(fill)
                    model.buffers[tensor.buffer].data = None
                    tensor.buffer = 0
                    filled.add(index)
                    replaced += 1
                elif index in filled:
                    replaced += 1
            if isinstance(op.builtinOptions, schema.VarHandleOptionsT):
                # variable names carry per-process counters: make them stable
                options = op.builtinOptions
                key = (options.container, options.sharedName)
                options.sharedName = shared_names.setdefault(
                    key, f"onebit_var_{len(shared_names)}".encode())
            operators.append(op)
        subgraph.operators = operators
        if strip_names:  # also makes the bytes reproducible (names carry counters)
            main = subgraph is model.subgraphs[0]
            io = {int(i) for part in (subgraph.inputs, subgraph.outputs) if part is not None
                  for i in part} if main else set()
            for index, tensor in enumerate(subgraph.tensors or []):
                if index not in io:
                    tensor.name = b""
                q = tensor.quantization
                if q is not None and (q.scale is None or len(q.scale) == 0):
                    tensor.quantization = None  # an empty table per tensor otherwise
            if not main:
                subgraph.name = f"onebit_subgraph_{model.subgraphs.index(subgraph)}".encode()
    builder = flatbuffers.Builder(len(model_bytes))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), replaced


def _schema():
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def convert(model):
    """The packed .tflite bytes of `model` (see the module docstring)."""
    from keras_onebit.export.deploy import deploy_clone

    server = PackedServer(deploy_clone(model, "packed"))
    function = server.serve.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], server)
    converter.experimental_enable_resource_variables = True
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        data = converter.convert()
    except Exception as e:
        raise ExportError(f"TFLite conversion to packed failed: {e}") from e
    data, removed = strip_variable_inits(data)
    if removed != len(server.kernels):
        raise ExportError(f"Packed export: expected {len(server.kernels)} kernel initial values "
                          f"to replace, found {removed}.")
    return data
