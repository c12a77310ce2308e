"""TFLite exports vs Keras on real CIFAR-10 images (../shared/data).

One small one-bit WRN-8-1, trained a few steps on real images with its BN
statistics recomputed, is shared by the tests (a random model has near-tied
logits, which makes argmax agreement meaningless).
"""

import keras
import numpy as np
import pytest

import keras_onebit as kob
from keras_onebit import export
from keras_onebit.export import bitpack, conv_matmul, flatbuffer, micro, report, tflite
from keras_onebit.export.fallback import calibrate_batchnorm
from keras_onebit.layers import is_binary


@pytest.fixture(scope="module")
def data(cifar10):
    mask = cifar10["test_exact_mask"]
    order = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
    return {"train": cifar10["x_train"][:4000].astype("float32"),
            "labels": cifar10["y_train"][:4000].astype("int64"),
            "test": cifar10["x_test"][order[:500]].astype("float32")}


@pytest.fixture(scope="module")
def model(data):
    keras.utils.set_random_seed(0)
    model = kob.models.wrn(8, 1, classifier_activation=None)
    model.compile(keras.optimizers.Adam(2e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data["train"], data["labels"], batch_size=64, epochs=2, verbose=0)
    return calibrate_batchnorm(model, data["train"][:2000])


@pytest.fixture(scope="module")
def reference(model, data):
    return model.predict(data["test"], batch_size=100, verbose=0)


@pytest.fixture(scope="module")
def converted(model, data):
    cache = {}

    def get(fmt):
        if fmt not in cache:
            if fmt == "micro":
                cache[fmt] = micro.compress(get("int8"))
            else:
                calibration = data["train"][:tflite.REPRESENTATIVE_SAMPLES]
                cache[fmt] = tflite.convert(model, fmt, calibration)
        return cache[fmt]

    return get


def filters(model_bytes):
    """{tensor name: (type name, raw bytes)} of every CONV_2D filter."""
    schema = flatbuffer.schema()
    fb = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in fb.operatorCodes]
    out = {}
    for sg in fb.subgraphs:
        for op in sg.operators:
            if codes[op.opcodeIndex] == schema.BuiltinOperator.CONV_2D:
                t = sg.tensors[op.inputs[1]]
                out[t.name.decode()] = (names[t.type], bytes(fb.buffers[t.buffer].data),
                                        list(t.shape))
    return out


def test_float_matches_keras(converted, reference, data):
    out = report.litert_outputs(converted("float"), data["test"][:100])
    assert report.compare(reference[:100], out)["max_rel_diff"] <= 1e-4


def test_packed_matches_keras_in_litert(converted, reference, data, model):
    packed = converted("packed")
    out = report.litert_outputs(packed, data["test"][:100])
    assert report.compare(reference[:100], out)["max_rel_diff"] <= 1e-5
    float_out = report.litert_outputs(converted("float"), data["test"][:100])
    assert report.compare(float_out, out)["max_rel_diff"] <= 1e-5
    # the sign bits stay packed; the rest is alpha, BN and the graph (measured 24 kB
    # over the limit here; the graph is about 1 kB per binary layer and a fixed part)
    assert len(packed) < export.limit_bytes(model) + 30_000


def big_convs(model_bytes):
    """CONV_2D operators of at least conv_matmul.MIN_MACS multiply-adds per image."""
    schema, fb = parse(model_bytes)
    main = fb.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in fb.operatorCodes]
    return sum(1 for op in main.operators if codes[op.opcodeIndex] == schema.BuiltinOperator.CONV_2D
               and np.prod(main.tensors[op.outputs[0]].shape[1:])
               * np.prod(main.tensors[op.inputs[1]].shape[1:]) >= conv_matmul.MIN_MACS)


def parse(model_bytes):
    schema = flatbuffer.schema()
    return schema, schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)


@pytest.mark.parametrize("fmt", ["packed", "packed_int8"])
def test_packed_formats_hold_uint8_sign_bits_and_builtin_ops_only(fmt, converted, model):
    from ai_edge_litert.interpreter import Interpreter

    data = converted(fmt)
    schema, fb = parse(data)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in fb.operatorCodes]
    ops = {names[c] for c in codes}
    assert not ops & {"CUSTOM", "DELEGATE", "PLACEHOLDER_FOR_GREATER_OP_CODES"}
    assert all(not c.customCode for c in fb.operatorCodes)  # no custom / Flex ops
    runtime_ops = {o["op_name"] for o in Interpreter(model_content=data)._get_ops_details()}
    assert not any(op.startswith(("Flex", "CUSTOM")) for op in runtime_ops)
    assert {"CALL_ONCE", "READ_VARIABLE", "ASSIGN_VARIABLE"} <= ops
    # every filter is read from a variable: no constant kernel is left. `packed`
    # computes each conv as an im2col product (BATCH_MATMUL, which XNNPACK runs)
    main = fb.subgraphs[0]
    products = [op for op in main.operators if names[codes[op.opcodeIndex]] in (
        "CONV_2D", "BATCH_MATMUL")]
    assert products and all(main.tensors[op.inputs[1]].buffer == 0 for op in products)
    counts = bitpack.operator_counts(data)  # WRN-8-1: every binary layer a conv, all packed
    binary_convs = sum(1 for layer in model.layers if is_binary(layer))
    lowered = big_convs(converted("float")) if fmt == "packed" else 0
    assert counts.get("BATCH_MATMUL", 0) == lowered
    assert counts.get("CONV_2D", 0) == binary_convs - lowered
    # the sign bits: UINT8 constants in the archive's byte layout (np.packbits of
    # the Keras kernel, C order, big-endian bits); a converter that folds a BN
    # with a negative gamma into the conv flips whole output channels
    bits = [fb.buffers[t.buffer].data for sg in fb.subgraphs for t in sg.tensors
            if t.type == schema.TensorType.UINT8 and t.buffer]
    kernels = [layer.sign_bits() for layer in model.layers if is_binary(layer)]
    assert len(bits) == sum(k.size >= bitpack.MIN_WEIGHTS for k in kernels)
    for signs in kernels:
        if signs.size < bitpack.MIN_WEIGHTS:
            continue
        matrix = signs.reshape(-1, signs.shape[-1])
        found = [np.unpackbits(b, count=signs.size).reshape(matrix.shape) for b in bits
                 if b.size == -(-signs.size // 8)]
        assert any(np.all((f == matrix).all(0) | (f != matrix).all(0)) for f in found)
    int8_bytes = len(converted("int8"))
    assert len(data) < int8_bytes / 2
    if fmt == "packed_int8":  # 1 bit instead of 8 per binary weight, little added
        assert len(data) < int8_bytes - 7 * sum(k.size for k in kernels) / 8 + 12_000


@pytest.mark.parametrize("fmt", ["packed", "packed_int8"])
def test_packed_formats_run_in_tflite_micro(fmt, converted, reference, data):
    images = data["test"][:3]
    packed = converted(fmt)
    out = micro.run(packed, images, micro.minimum_arena(packed, images[0]))
    base = converted(bitpack.BASE[fmt])
    base_out = micro.run(base, images, micro.minimum_arena(base, images[0]))
    if fmt == "packed_int8":  # exactly what the model it was made from computes
        assert np.array_equal(out, base_out)
    else:  # the same products, summed in another order (im2col)
        assert report.compare(base_out, out)["max_rel_diff"] <= 1e-6
        assert report.compare(reference[:3], out)["max_rel_diff"] <= 1e-5


def test_packed_int8_agrees_with_keras_and_int8(converted, reference, data, model):
    out = report.litert_outputs(converted("packed_int8"), data["test"])
    result = report.compare(reference, out)
    print(result)
    # packed_int8 is the int8 model (bit-identical in TFLite Micro, see above);
    # in LiteRT its convs run on the builtin kernels instead of XNNPACK, which
    # round a few values differently. On this tiny, briefly trained model int8
    # itself agrees 0.966-0.99 with Keras (test_quantized_agrees_with_keras);
    # packed_int8 measured 0.982 (0.996 with int8), flips only among near-ties.
    # Trained one epoch instead of two, the logits are nearer ties: 0.976 with int8.
    assert result["images"] == 500 and result["argmax_agreement"] >= 0.96
    assert_only_near_ties_flip(model, data, reference, out)
    int8 = report.litert_outputs(converted("int8"), data["test"])
    assert report.compare(int8, out)["argmax_agreement"] >= 0.99


@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_quantized_agrees_with_keras(fmt, converted, reference, data, model):
    out = report.litert_outputs(converted(fmt), data["test"])
    result = report.compare(reference, out)
    print(fmt, result)
    # Measured 0.966-0.99 on this tiny, briefly trained model (3 epochs; 0.978 / 0.982
    # for int8 / int4 after the 2 it trains now; the value moves with
    # the CPU's oneDNN kernels).
    assert result["argmax_agreement"] >= 0.95
    assert_only_near_ties_flip(model, data, reference, out)


def assert_only_near_ties_flip(model, data, reference, out):
    """Per-tensor int8 activations cost a few percent of the logit scale, so only
    near-ties may flip: every image whose top-1 differs from Keras is among the
    quarter of images with the smallest Keras top-2 logit margin (measured: within
    the lowest 16%; a broken export flips images of any margin), unless int8 clips
    it: its pooled features leave the range the calibration images gave that
    tensor. Measured on an AMX Xeon (2026-12-07): 10 of the 500 images leave it;
    one of them (pooled features up to 3.15 where calibration reached 2.36, logits
    off by 0.8) flips at the 84th percentile of margins in int8, int4 and
    packed_int8; every other flip was a near-tie (tools/probes/int8_clipping.py)."""
    top2 = np.sort(reference, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    flipped = out.argmax(axis=1) != reference.argmax(axis=1)
    pool = keras.Model(model.inputs, model.get_layer("pool").output)
    calibrated = pool.predict(data["train"][:tflite.REPRESENTATIVE_SAMPLES], verbose=0)
    features = pool.predict(data["test"], verbose=0)
    clipped = (features.min(axis=1) < calibrated.min()) | (features.max(axis=1) > calibrated.max())
    assert clipped.mean() <= 0.05  # the exemption stays narrow
    assert np.all(margin[flipped & ~clipped] <= np.quantile(margin, 0.25))


def test_int8_binary_kernels_are_exactly_127(converted, model):
    found = filters(converted("int8"))
    assert len(found) == sum(is_binary(layer) for layer in model.layers)
    for name, (kind, raw, shape) in found.items():
        assert kind == "INT8", name
        values = np.frombuffer(raw, np.int8).reshape(shape[0], -1)
        assert set(np.unique(values)) <= {-127, 127}, name


def test_int4_binary_kernels_are_exactly_7(converted):
    found = filters(converted("int4"))
    assert found
    for name, (kind, raw, shape) in found.items():
        assert kind == "INT4", name
        nibbles = np.stack([np.frombuffer(raw, np.uint8) & 15, np.frombuffer(raw, np.uint8) >> 4],
                           -1).reshape(-1)[:int(np.prod(shape))]
        assert set(np.unique(nibbles)) <= {7, 9}, name  # +7 and -7 in two's complement


def test_micro_is_bit_identical_to_int8_in_tflm(converted, data):
    int8, compressed = converted("int8"), converted("micro")
    assert len(compressed) < len(int8) / 2
    images = data["test"][:10]
    arena = micro.minimum_arena(compressed, images[0])
    a = micro.run(compressed, images, arena)
    b = micro.run(int8, images, micro.minimum_arena(int8, images[0]))
    assert np.array_equal(a, b)
    cc, h = micro.c_source(compressed, arena_size=arena)
    assert "alignas(16) const unsigned char g_model_data[]" in cc
    assert f"g_model_data_len = {len(compressed)};" in cc
    assert f"g_model_data_arena_size = {arena};" in cc and "g_model_data_len;" in h
    # the macros a static arena and the resolver use: DECODE only for the micro file
    assert f"#define G_MODEL_DATA_ARENA_SIZE {arena}\n" in h
    assert "#define G_MODEL_DATA_USES_DECODE 1\n" in h
    assert micro.custom_codes(compressed) == {"TFLM_DECODE"} and not micro.custom_codes(int8)
    _, int8_h = micro.c_source(int8, arena_size=arena)
    assert "#define G_MODEL_DATA_USES_DECODE 0\n" in int8_h
    # the resolver's list: the operators of the file, DECODE only in the micro one
    methods = micro.resolver_methods(compressed)
    assert methods == sorted(micro.resolver_methods(int8) + ["AddDecode"])
    assert f"#define G_MODEL_DATA_OPERATOR_COUNT {len(methods)}\n" in h
    assert all(f"  X({m})" in h for m in methods) and "X(AddDecode)" not in int8_h


def test_resolver_method_names():
    assert [micro.resolver_method(op) for op in (
        "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SELECT_V2",
        "RELU6", "L2_NORMALIZATION", "SPACE_TO_BATCH_ND", "TFLM_DECODE")] == [
        "AddAveragePool2D", "AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected",
        "AddSelectV2", "AddRelu6", "AddL2Normalization", "AddSpaceToBatchNd", "AddDecode"]
    with pytest.raises(export.ExportError, match="no resolver method for the custom operator"):
        micro.resolver_method("LceBconv2d")


def test_same_model_exported_twice_gives_identical_bytes(model, data, tmp_path):
    for fmt in ("float", "packed", "packed_int8"):
        rep = data["train"][:100]
        a = export.export_tflite(model, tmp_path / f"a_{fmt}.tflite", fmt, rep)
        b = export.export_tflite(model, tmp_path / f"b_{fmt}.tflite", fmt, rep)
        assert a.read_bytes() == b.read_bytes(), fmt


def test_unsupported_layer_is_named(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = kob.BinaryConv2D(4, 3)(inputs)
    x = keras.layers.UpSampling2D(name="grow")(x)
    model = keras.Model(inputs, x)
    with pytest.raises(export.ExportError, match="'grow' of type UpSampling2D"):
        export.export_tflite(model, tmp_path / "m.tflite", "float")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_path_fails_before_work(model, tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("conversion started")

    monkeypatch.setattr(tflite, "convert", no_work)
    with pytest.raises(export.ExportError, match="does not exist"):
        export.export_tflite(model, tmp_path / "missing" / "m.tflite", "float")
    with pytest.raises(export.ExportError, match="is a directory"):
        export.export_tflite(model, tmp_path, "float")


def test_quantized_formats_need_representative_data(model, tmp_path):
    with pytest.raises(export.ExportError, match="representative_data"):
        export.export_tflite(model, tmp_path / "m.tflite", "int8")
    with pytest.raises(export.ExportError, match="Unknown format"):
        export.export_tflite(model, tmp_path / "m.tflite", "int2")
    assert list(tmp_path.iterdir()) == []


def test_packed_dense_relu_bias_per_channel_scale_is_exact():
    # A ReLU straight after a packed product is dropped by the converter unless
    # something it cannot fold sits in between; cover it,
    # with per-channel scales, a bias and a dropout layer.
    keras.utils.set_random_seed(3)
    inputs = keras.Input((20,))
    x = kob.BinaryDense(16, scale="mean_abs", use_bias=True, activation="relu")(inputs)
    x = keras.layers.Dropout(0.3)(x)
    x = kob.BinaryDense(12)(x)
    x = keras.layers.ReLU()(x)
    model = keras.Model(inputs, kob.BinaryDense(5)(x))
    model.layers[1].bias.assign(np.linspace(-1, 1, 16).astype("float32"))
    images = np.random.default_rng(0).standard_normal((8, 20)).astype("float32")
    reference = model.predict(images, verbose=0)
    packed = tflite.convert(model, "packed")
    assert report.compare(reference, report.litert_outputs(packed, images))["max_rel_diff"] <= 1e-5
    out = micro.run(packed, images, micro.minimum_arena(packed, images[0]))
    assert report.compare(reference, out)["max_rel_diff"] <= 1e-5


def test_packed_depthwise_filter_of_signs_is_exact():
    """A DEPTHWISE_CONV_2D filter of +-alpha per channel (depth multiplier 2)
    is packed in its own (1, kh, kw, C_out) order: LiteRT and TFLite Micro
    give Keras' outputs."""
    keras.utils.set_random_seed(6)
    inputs = keras.Input((6, 7, 8))
    layer = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False)
    model = keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(6)
    alpha = rng.uniform(0.5, 2.0, (1, 1, 8, 2))
    layer.kernel.assign((np.sign(rng.standard_normal((3, 3, 8, 2))) * alpha)
                                  .astype("float32"))
    packed, count = bitpack.pack_filters(tflite.convert(model, "float"))
    assert count == 1 and bitpack.operator_counts(packed)["DEPTHWISE_CONV_2D"] == 1
    images = rng.standard_normal((3, 6, 7, 8)).astype("float32")
    want = model.predict(images, verbose=0)
    for out in (report.litert_outputs(packed, images),
                micro.run(packed, images, micro.minimum_arena(packed, images[0]))):
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_bireal_binary_activations_agree_in_every_format(data):
    """Bi-Real Net: sign(x) before each binary conv becomes GREATER_EQUAL +
    SELECT_V2; the int8 formats convolve those signs exactly (sign_int8.py), so
    every format computes Keras' outputs up to float rounding, without
    calibration data."""
    keras.utils.set_random_seed(4)
    model = kob.models.bireal_net((1, 1), classes=10, input_shape=(32, 32, 3), widths=(16, 32),
                                  classifier_activation=None)
    model = calibrate_batchnorm(model, data["train"][:500])
    images = data["test"][:50]
    reference = model.predict(images, verbose=0)
    files = {fmt: tflite.convert(model, fmt) for fmt in ("float", "packed", "int8", "packed_int8")}
    for fmt, converted_bytes in files.items():
        result = report.compare(reference, report.litert_outputs(converted_bytes, images))
        assert result["max_rel_diff"] <= 1e-4 and result["argmax_agreement"] == 1.0, fmt
    assert bitpack.operator_counts(files["int8"])["DEQUANTIZE"] == 2  # one per binary conv
    compressed = micro.compress(files["int8"])
    tflm = micro.run(compressed, images[:3], micro.minimum_arena(compressed, images[0]))
    np.testing.assert_allclose(tflm, reference[:3], rtol=1e-4, atol=1e-4)
    # no float filter left behind as a tensor TFLite Micro would give arena memory to (that
    # cost their 64 kB here): about the float file's arena (+1 kB of int8 conv tensors)
    assert micro.minimum_arena(files["int8"], images[0]) <= 1.1 * micro.minimum_arena(
        files["float"], images[0])


def test_unknown_input_quantizer_is_named(tmp_path):
    class Halve(kob.quantizers.Quantizer):
        def __call__(self, x):
            return x / 2

    inputs = keras.Input((8, 8, 3))
    layer = kob.BinaryConv2D(4, 3, input_quantizer=Halve(), name="odd")
    model = keras.Model(inputs, layer(inputs))
    with pytest.raises(export.ExportError, match="'odd' of type BinaryConv2D: its input quantizer"):
        export.export_tflite(model, tmp_path / "m.tflite", "float")
    assert list(tmp_path.iterdir()) == []


def test_packed_files_claim_no_minimum_runtime(converted):
    """The converter's min_runtime_version fits the float / int8 graph, not the
    call-once and variable operators packing adds: packed files drop it, keep
    the rest of the metadata and add their expansion record."""
    s = flatbuffer.schema()

    def metadata(fmt):
        model = s.ModelT.InitFromPackedBuf(bytearray(converted(fmt)), 0)
        return {m.name: bytes(model.buffers[m.buffer].data) for m in model.metadata or []}

    for fmt, base in bitpack.BASE.items():
        kept = metadata(base)
        assert b"min_runtime_version" in kept
        del kept[b"min_runtime_version"]
        packed = metadata(fmt)
        assert packed.pop(b"onebit_expand")[:4] == b"OBXP"
        assert packed == kept


def test_operator_counts_of_float_and_packed_files(converted, model):
    kernels = [layer.sign_bits() for layer in model.layers if is_binary(layer)]
    float_ops = bitpack.operator_counts(converted("float"))
    assert float_ops["CONV_2D"] == len(kernels) and "CALL_ONCE" not in float_ops
    packed_ops = bitpack.operator_counts(converted("packed"))
    lowered = big_convs(converted("float"))
    assert packed_ops.get("BATCH_MATMUL", 0) == lowered and packed_ops["CALL_ONCE"] == 1
    assert packed_ops["CONV_2D"] == len(kernels) - lowered
    assert packed_ops["ASSIGN_VARIABLE"] == sum(k.size >= bitpack.MIN_WEIGHTS for k in kernels)


@pytest.mark.parametrize("conv", [
    dict(kernel_size=3, padding="same", use_bias=True, activation="relu"),
    dict(kernel_size=3, strides=2, padding="same"),
    dict(kernel_size=(5, 3), padding="valid", dilation_rate=2, use_bias=True),
    dict(kernel_size=1, use_bias=True, activation="relu6"),
    dict(kernel_size=1, strides=2, padding="same"),
    dict(kernel_size=(2, 3), strides=(2, 1), padding="same", use_bias=True),
])
def test_conv_as_im2col_product_computes_the_conv(conv):
    """packed's float convs as BATCH_MATMUL (lowered whatever their size here):
    LiteRT and TFLite Micro give the float file's outputs up to float rounding."""
    base = _check_conv_as_product(conv, (9, 10, 12), 8)
    # the default size rule keeps this small conv a CONV_2D reading its variable
    assert bitpack.operator_counts(bitpack.pack_filters(base)[0])["CONV_2D"] == 1


@pytest.mark.parametrize("conv", [
    dict(kernel_size=3, padding="same", use_bias=True, activation="relu"),
    dict(kernel_size=3, strides=2, padding="same", scale="mean_abs"),  # alpha per channel
    dict(kernel_size=1, use_bias=True),
])
def test_conv_as_product_with_the_filter_first(conv):
    """No more output pixels than channels: the (C_out, K) filter matrix is the
    left operand (adj_y) and a TRANSPOSE restores (pixels, channels)."""
    counts = bitpack.operator_counts(_check_conv_as_product(conv, (3, 4, 12), 16, packed=True))
    assert counts["TRANSPOSE"] == 2


def _check_conv_as_product(conv, shape, filters, packed=False):
    """Returns the float file (or the packed one)."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input(shape)  # a 1x1 filter of 96 >= MIN_WEIGHTS weights
    layer = kob.BinaryConv2D(filters, **conv)
    model = keras.Model(inputs, layer(inputs))
    if layer.use_bias:
        layer.bias.assign(np.linspace(-1, 1, filters).astype("float32"))
    base = tflite.convert(model, "float")
    packed_bytes, count = bitpack.pack_filters(base, min_macs=0)
    counts = bitpack.operator_counts(packed_bytes)
    assert count == 1 and counts.get("CONV_2D", 0) == 0 and counts["BATCH_MATMUL"] == 1
    # filter first: the start-up graph transposes the filter matrix, the main graph the product
    filter_first = np.prod(model.output.shape[1:3]) <= filters
    assert counts.get("TRANSPOSE", 0) == (2 if filter_first else 0)
    images = np.random.default_rng(1).standard_normal((3, *shape)).astype("float32")
    want = model.predict(images, verbose=0)
    for out in (report.litert_outputs(packed_bytes, images), _litert_batch(packed_bytes, images),
                micro.run(packed_bytes, images, micro.minimum_arena(packed_bytes, images[0]))):
        assert out.shape == want.shape
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    return packed_bytes if packed else base


def _litert_batch(model_bytes, images):
    """The outputs of one invoke on all `images`: the file's batch of 1
    resized (resize_tensor_input) to their number."""
    it = report.litert_interpreter(model_bytes)
    index = it.get_input_details()[0]["index"]
    it.resize_tensor_input(index, images.shape)
    it.allocate_tensors()
    it.set_tensor(index, images)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])
