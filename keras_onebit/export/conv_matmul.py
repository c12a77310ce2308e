"""A float CONV_2D whose filter is not a constant, as an im2col product that
LiteRT's XNNPACK delegate runs (it takes only constant CONV_2D filters, but a
BATCH_MATMUL with a run-time right-hand side):

    x [-PAD-] -STRIDED_SLICE per column tap (kw)-> -CONCATENATION (channels)->
      -STRIDED_SLICE per row tap (kh)-> -CONCATENATION-> (N, OH, OW, K) -RESHAPE (-1, K)->
      -BATCH_MATMUL(filter matrix (K, C_out))-> -RESHAPE (-1, OH, OW, C_out)->
      [-ADD bias-] with the conv's fused activation

K = kh * kw * C_in in the Keras kernel's (HWIO) order, so the filter matrix is
the Keras kernel reshaped to (K, C_out). XNNPACK packs a product's right-hand
side at every invoke; where the filter matrix is the larger operand (C_out >=
OH * OW: deep, narrow layers) the filter goes first instead, as (C_out, K):

      BATCH_MATMUL(filter (C_out, K), columns, adj_y) -> (C_out, N * OH * OW)
      -TRANSPOSE-> (N * OH * OW, C_out) -RESHAPE-> ...

so the columns, not the filter, are packed. Taking the column taps first, then the
row taps, needs kh + kw views instead of kh * kw (fewer operators: each costs
about 100 bytes of graph). A 1x1 conv with stride 1 needs no views. The
arithmetic is the conv's, summed in another order (float rounding).
"""

import numpy as np

from keras_onebit.export import flatbuffer

ACTIVATION_OPS = {1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}  # fused activation -> operator
MIN_MACS = 1 << 22  # smaller convs stay CONV_2D: ~1 kB of graph would buy little time


def can_lower(s, subgraph, op, code, min_macs=MIN_MACS):
    """True for a float32 CONV_2D with a known input shape, a fused activation
    that an ADD or an activation operator can carry, and at least `min_macs`
    multiply-adds per image (a narrow stem on 3 channels, a small classifier:
    no; they take a fraction of the time, and their graph would cost bytes)."""
    if code != s.BuiltinOperator.CONV_2D or len(op.outputs) != 1:
        return False
    x = subgraph.tensors[int(op.inputs[0])]
    y = subgraph.tensors[int(op.outputs[0])]
    filt = subgraph.tensors[int(op.inputs[1])]
    if (x.type != s.TensorType.FLOAT32 or len(x.shape) != 4 or any(d <= 0 for d in x.shape)
            or op.builtinOptions.fusedActivationFunction not in (0, *ACTIVATION_OPS)):
        return False
    macs = int(np.prod(y.shape[1:])) * int(np.prod(filt.shape[1:]))
    return macs >= min_macs


def filter_first(g, op):
    """True when CONV_2D `op`'s product takes the filter as its left operand,
    (C_out, K) (see the module docstring): per image no more output pixels
    than output channels."""
    _, oh, ow, c_out = g.shape_of(int(op.outputs[0]))
    return oh * ow <= c_out


def _same_padding(size, out, stride, extent):
    total = max((out - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def _taps(g, x, axis, count, stride, dilation, out):
    """Along `axis` (1: rows, 2: columns): the `count` strided views of a filter
    tap each, concatenated on the channels (one view needs no concatenation).
    STRIDED_SLICE with default options, whose ends past an axis are clamped
    to it: the batch stays resizable (a SLICE with constant begin and size
    keeps its output's stored shape in LiteRT)."""
    s = g.s
    shape = g.shape_of(x)
    if count == 1 and stride == 1:
        return x
    strides = [1, 1, 1, 1]
    strides[axis] = stride
    view_shape = list(shape)
    view_shape[axis] = out
    views = []
    whole = 1 << 30  # an end past every axis: clamped to its size (any batch)
    for tap in range(count):
        begin = [0, 0, 0, 0]
        begin[axis] = tap * dilation
        end = [whole] * 4
        stop = tap * dilation + (out - 1) * stride + 1
        # counted from the axis' end when short of it: the same constant for every conv
        # of this filter size and padding, whatever its image size
        end[axis] = whole if stop >= shape[axis] else stop - shape[axis]
        views.append(g.add("STRIDED_SLICE", [x, g.int32(begin), g.int32(end), g.int32(strides)],
                           view_shape, s.TensorType.FLOAT32))
    if count == 1:
        return views[0]
    view_shape[3] = shape[3] * count
    return g.add("CONCATENATION", views, view_shape, s.TensorType.FLOAT32,
                 flatbuffer.options(s, "Concatenation", axis=3, fusedActivationFunction=0))


def _im2col(g, op, kh, kw):
    """x as columns (N, OH, OW, kh * kw * C_in) for CONV_2D `op`, in the kernel's
    (row, column, channel) order: the column taps first, then the row taps."""
    s, o = g.s, op.builtinOptions
    x = int(op.inputs[0])
    n, h, w, c = g.shape_of(x)
    _, oh, ow, _ = g.shape_of(int(op.outputs[0]))
    dh, dw = o.dilationHFactor or 1, o.dilationWFactor or 1
    if o.padding == s.Padding.SAME:
        top, bottom = _same_padding(h, oh, o.strideH, (kh - 1) * dh + 1)
        left, right = _same_padding(w, ow, o.strideW, (kw - 1) * dw + 1)
        if top or bottom or left or right:
            paddings = np.asarray([[0, 0], [top, bottom], [left, right], [0, 0]], np.int32)
            x = g.add("PAD", [x, g.const(paddings, s.TensorType.INT32)],
                      (n, h + top + bottom, w + left + right, c), s.TensorType.FLOAT32)
    x = _taps(g, x, 2, kw, o.strideW, dw, ow)
    return _taps(g, x, 1, kh, o.strideH, dh, oh)


def _product(g, columns, matrix, first):
    """columns (M, K) times the filter: `matrix` (K, C_out), or (C_out, K) as
    the left operand when `first`; (M, C_out) either way."""
    s, T = g.s, g.s.TensorType
    rows, c_out = g.shape_of(columns)[0], g.shape_of(matrix)[0 if first else 1]
    if not first:  # the default options: no options table
        return g.add("BATCH_MATMUL", [columns, matrix], (rows, c_out), T.FLOAT32)
    options = flatbuffer.options(s, "BatchMatMul", adjX=False, adjY=True,
                                 asymmetricQuantizeInputs=False)
    product = g.add("BATCH_MATMUL", [matrix, columns], (c_out, rows), T.FLOAT32, options)
    return g.add("TRANSPOSE", [product, g.int32([1, 0])], (rows, c_out), T.FLOAT32)


def lower(g, op, matrix, kh, kw, first=False):
    """Appends to `g` the operators that compute CONV_2D `op` with the filter
    `matrix`, a float32 tensor (kh * kw * C_in, C_out), or (C_out, kh * kw *
    C_in) when `first` (see `filter_first`); they write the conv's own output
    tensor. The product is one matrix product over all N * OH * OW pixels
    (measured faster in XNNPACK than the (N, OH, OW, K) columns as batches of
    rows)."""
    s, T = g.s, g.s.TensorType
    out = int(op.outputs[0])
    shape = g.shape_of(out)
    bias = int(op.inputs[2]) if len(op.inputs) > 2 else -1
    activation = op.builtinOptions.fusedActivationFunction
    columns = g.reshape(_im2col(g, op, kh, kw), [-1, g.shape_of(matrix)[1 if first else 0]])
    product = _product(g, columns, matrix, first)
    last = bias < 0 and not activation
    y = g.reshape(product, [-1, *shape[1:]], out=out if last else None)
    if bias >= 0:  # no options table without an activation (none is read as none)
        add_options = None
        if activation:
            add_options = flatbuffer.options(s, "Add", fusedActivationFunction=activation)
        g.add("ADD", [y, bias], shape, T.FLOAT32, add_options, out=out)
    elif activation:
        g.add(ACTIVATION_OPS[activation], [y], shape, T.FLOAT32, out=out)
