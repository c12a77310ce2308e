import collections
import math

import keras
import numpy as np
import pytest

import keras_onebit as kob
from keras_onebit.layers import is_binary


def conv_weights(model):
    return sum(math.prod(layer.kernel.shape) for layer in model.layers if is_binary(layer))


def census(model):
    return collections.Counter(type(layer).__name__ for layer in model.layers)


@pytest.mark.parametrize(
    "name, classes, expected",
    [("wrn_20_10", 10, 26_737_120), ("wrn_20_10", 100, 26_794_720),
     ("wrn_20_4", 100, 4_303_552), ("wrn_20_20", 100, 107_042_240)],
)
def test_conv_weight_counts_of_spec(name, classes, expected):
    model = kob.models.get(name, classes=classes)
    assert conv_weights(model) == expected


def test_wrn_20_10_keras_parameter_counts_and_census():
    model = kob.models.wrn_20_10(binary=True)
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    frozen = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    assert (trainable, frozen) == (26_737_126, 13_786)
    kinds = census(model)
    assert kinds["BinaryConv2D"] == 20 and kinds["BatchNormalization"] == 21
    assert kinds["Dense"] == 0 and kinds["BinaryDense"] == 0
    assert all(layer.center is False and layer.scale is False
               for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
               and layer.name != "stem_bn")
    assert model.get_layer("stem_bn").center and model.get_layer("stem_bn").scale


def test_alphas_per_layer_in_wrn_20_10():
    model = kob.models.wrn_20_10()
    for name, alpha in [("stem_conv", 0.27217), ("stage1_block2_conv1", 0.037268),
                        ("head_conv", 0.055902)]:
        kernel = model.get_layer(name).forward_kernel().numpy()
        assert np.unique(np.abs(kernel)) == pytest.approx([alpha], abs=5e-6), name
        assert len(np.unique(kernel)) == 2


def test_down_block_shortcut_is_pool_then_zero_channels():
    model = kob.models.wrn_20_1()
    pool = model.get_layer("stage2_block1_pool")
    assert (pool.pool_size, pool.strides, pool.padding) == ((3, 3), (2, 2), "same")
    assert model.get_layer("stage2_block1_zeros").output.shape[-1] == 32
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    y = kob.ZeroChannels(5)(x).numpy()
    np.testing.assert_array_equal(y[..., :3], x)
    assert not y[..., 3:].any()


def test_registry():
    assert {"wrn_20_10", "wrn_20_4", "wrn_26_10", "wrn_20_20", "wrn_16_4",
            "wrn_20_2", "wrn_20_1"} <= set(kob.models.list_models())
    with pytest.raises(ValueError, match="Unknown model 'wrn_99'.*wrn_20_10"):
        kob.models.get("wrn_99")
    with pytest.raises(ValueError, match="6n \\+ 2 or 6n \\+ 4.*got 21"):
        kob.models.wrn(21, 1)
    assert conv_weights(kob.models.wrn_16_4()) == 2_732_224  # n = 2: 14 convs


def test_float_twin_has_same_shapes():
    one_bit, twin = kob.models.wrn_16_4(), kob.models.wrn_16_4(binary=False)
    assert [w.shape for w in one_bit.weights] == [w.shape for w in twin.weights]
    assert not any(is_binary(layer) for layer in twin.layers)


def test_keras_file_round_trip_and_training_continues(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(16, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=(16,))
    model = kob.models.wrn_20_1()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert loaded.optimizer.iterations.numpy() == 2
    before = loaded.get_layer("stem_conv").kernel.numpy().copy()
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert loaded.optimizer.iterations.numpy() == 4
    assert not np.array_equal(before, loaded.get_layer("stem_conv").kernel.numpy())


def test_fit_on_mnist_slice_lowers_loss(mnist):
    keras.utils.set_random_seed(0)
    x = mnist["x_train"][:1024, :, :, None].astype(np.float32)
    y = mnist["y_train"][:1024]
    model = kob.models.wrn(8, 1, input_shape=(28, 28, 1))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    after = model.evaluate(x, y, verbose=0)[0]
    assert after < 0.7 * before


def test_summary_reports_one_bit_megabytes():
    lines = []
    result = kob.summary(kob.models.wrn_20_10(), print_fn=lines.append)
    assert result["binary_weights"] == 26_737_120
    assert result["binary_weight_bytes"] == 3_342_140
    assert "3.34 MB at one bit (float32: 106.9 MB)" in lines[0]
    conv = next(r for r in result["layers"] if r["name"] == "stem_conv")
    assert conv == {"name": "stem_conv", "type": "BinaryConv2D", "binary_weights": 4320,
                    "float_parameters": 1, "bytes": 540 + 4}
    bn = next(r for r in result["layers"] if r["name"] == "stem_bn")
    assert bn["float_parameters"] == 12 and bn["binary_weights"] == 0


def test_variant_without_batch_norm():
    model = kob.models.wrn_20_1(batch_norm=False, temperature=40.0)
    kinds = census(model)
    assert kinds["BatchNormalization"] == 1 and kinds["ShiftedReLU"] == 19
    assert kinds["BinaryConv2D"] == 20 and kinds["ReLU"] == 0
    assert kob.layers.ShiftedReLU()(np.array([-3.0, -0.5, 2.0])).numpy().tolist() == [-1, -0.5, 2]
    logits = keras.Model(model.input, model.get_layer("head_conv").output)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    pooled = keras.Model(model.input, model.get_layer("pool").output)(x).numpy()
    np.testing.assert_allclose(pooled, logits(x).numpy().mean(axis=(1, 2)) / 40, rtol=1e-5)


def test_bireal_18_and_34_census_and_binary_weight_counts():
    from keras_onebit.quantizers import ApproxSign

    model = kob.models.bireal_18()
    convs = [layer for layer in model.layers if isinstance(layer, kob.BinaryConv2D)]
    assert len(convs) == 16 and model.name == "bireal_18"
    assert kob.summary(model, print_fn=lambda *a: None)["binary_weights"] == 10_985_472
    assert all(isinstance(c.input_quantizer, ApproxSign) and c.kernel_quantizer.per_channel
               and c.gradient == "magnitude_aware" for c in convs)
    assert sum(isinstance(layer, kob.BinaryConv2D) for layer in kob.models.bireal_34().layers) == 32
    # the real-valued shortcuts: one 1x1 projection per downsampling stage
    assert [layer.name for layer in model.layers if layer.name.endswith("_proj")] == [
        "stage2_block1_proj", "stage3_block1_proj", "stage4_block1_proj"]


def test_bireal_runs_on_raw_pixels_and_its_float_twin_has_relu():
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    model = kob.models.bireal_18(classes=10, input_shape=(64, 64, 3))
    probs = model.predict(x, verbose=0)
    assert probs.shape == (2, 10) and np.allclose(probs.sum(-1), 1, atol=1e-5)
    twin = kob.models.bireal_18(classes=10, input_shape=(64, 64, 3), binary=False)
    assert sum(isinstance(layer, keras.layers.ReLU) for layer in twin.layers) == 16
    assert not any(kob.layers.is_binary(layer) for layer in twin.layers)


def test_fully_binary_wrn_binarizes_every_block_conv_input(tmp_path):
    model = kob.models.wrn(8, 1, input_quantizer="ste_sign")
    quantized = [layer.name for layer in model.layers
                 if getattr(layer, "input_quantizer", None) is not None]
    assert len(quantized) == 6 and "stem_conv" not in quantized and "head_conv" not in quantized
    assert [layer.name for layer in model.layers if type(layer).__name__ == "ReLU"] == ["head_relu"]
    conv = model.get_layer("stage2_block1_conv2")
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    conv_input = keras.Model(model.input, conv.input)(x)
    signs = np.where(keras.ops.convert_to_numpy(conv_input) >= 0, 1.0, -1.0).astype(np.float32)
    kernel = keras.ops.convert_to_numpy(conv.kernel)
    alpha = np.float32(np.sqrt(2 / kernel[..., 0].size))
    expected = keras.ops.conv(signs, alpha * np.where(kernel >= 0, 1, -1).astype(np.float32),
                              padding="same")
    np.testing.assert_allclose(conv(conv_input), expected, atol=1e-5)
    path = tmp_path / "binary.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.get_layer(quantized[0]).input_quantizer).__name__ == "SteSign"
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_bireal_20_2_cifar_census_and_parameter_free_shortcuts():
    model = kob.models.bireal_20_2()
    convs = [layer for layer in model.layers if isinstance(layer, kob.BinaryConv2D)]
    assert len(convs) == 18 and model.name == "bireal_20_2"
    # 32*32*9*6 + (32*64 + 5*64*64)*9 + (64*128 + 5*128*128)*9
    assert kob.summary(model, print_fn=lambda *a: None)["binary_weights"] == 1_069_056
    assert [c.filters for c in convs] == [32] * 6 + [64] * 6 + [128] * 6
    stem = model.get_layer("stem_conv")
    assert stem.kernel_size == (3, 3) and stem.strides == (1, 1)
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
    assert not [layer for layer in model.layers if layer.name.endswith("_proj")]
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    pooled = keras.Model(model.input, model.get_layer("stage2_block1_pool").output)(x)
    repeated = model.get_layer("stage2_block1_repeat")
    out = keras.Model(model.input, repeated.output)(x).numpy()
    np.testing.assert_array_equal(out, np.concatenate([pooled, pooled], axis=-1))
    assert model.output_shape == (None, 10)


def test_bireal_repeat_shortcut_needs_multiple_widths():
    with pytest.raises(kob.ConfigError, match="multiple of the one before"):
        kob.models.bireal_net((1, 1), widths=(16, 24), stem="cifar", shortcut="repeat",
                              input_shape=(32, 32, 3))
    with pytest.raises(kob.ConfigError, match="stem must be one of"):
        kob.models.bireal_net((1, 1), widths=(16, 32), stem="tiny", input_shape=(32, 32, 3))
