"""Bi-Real Net's training stages end to end on a small CIFAR-10-sized Bi-Real
net (no ImageNet here): ReLU -> leaky-clip -> clip real nets, the binary net
initialised from the last, then weights set to +-alpha and only BN retrained."""

import keras
import numpy as np
import pytest

import keras_onebit as kob
from keras_onebit import activations, training
from keras_onebit.constraints import WeightClip


def small(**kwargs):
    return kob.models.bireal_net((1, 1), classes=10, widths=(8, 16), input_shape=(32, 32, 3),
                                 **kwargs)


def non_bn_values(model):
    return {w.path: np.array(w.numpy()) for layer in kob.walk.iter_layers(model)
            if not isinstance(layer, keras.layers.BatchNormalization) for w in layer.weights}


@pytest.fixture(scope="module")
def data(cifar10):
    return cifar10["x_train"][:512].astype("float32"), cifar10["y_train"][:512]


def fit(model, data, lr=1e-3):
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    return model.fit(*data, batch_size=64, epochs=2, verbose=0).history["loss"]


def test_stage_activations():
    x = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0], np.float32)
    np.testing.assert_array_equal(activations.clip(x), np.clip(x, -1, 1))
    np.testing.assert_allclose(activations.leaky_clip(x), [-1.2, -1, -0.5, 0, 0.5, 1, 1.2],
                               rtol=1e-6)
    model = small(binary=False, activation="leaky_clip")
    names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Activation)]
    assert names == ["stage1_block1_leaky_clip", "stage2_block1_leaky_clip", "predictions"]
    with pytest.raises(kob.ConfigError, match="'tanh'"):
        small(binary=False, activation="tanh")
    with pytest.raises(kob.ConfigError, match="binary=False"):
        small(activation="clip")


def test_binary_convs_clip_latent_weights_under_the_magnitude_aware_gradient():
    conv = small().get_layer("stage1_block1_conv")
    assert isinstance(conv.kernel_constraint, WeightClip) and conv.kernel_constraint.limit == 1
    assert small(gradient="ste").get_layer("stage1_block1_conv").kernel_constraint is None


def test_stages_end_to_end(data, tmp_path):
    keras.utils.set_random_seed(0)
    previous = None
    for stage in ("relu", "leaky_clip", "clip"):
        model = small(binary=False, activation=stage)
        if previous is not None:
            training.copy_matching_weights(previous, model)
            np.testing.assert_array_equal(model.get_layer("fc").kernel.numpy(),
                                          previous.get_layer("fc").kernel.numpy())
        losses = fit(model, data)
        assert np.all(np.isfinite(losses))
        previous = model
    binary = training.copy_matching_weights(previous, small())
    real_kernel = previous.get_layer("stage1_block1_conv").kernel.numpy()
    np.testing.assert_array_equal(binary.get_layer("stage1_block1_conv").kernel.numpy(),
                                  real_kernel)
    assert np.all(np.isfinite(fit(binary, data)))
    assert np.abs(binary.get_layer("stage1_block1_conv").kernel.numpy()).max() <= 1.0
    before = binary.predict(data[0][:32], verbose=0)
    assert training.binarize_latent_weights(binary) == 2
    np.testing.assert_array_equal(binary.predict(data[0][:32], verbose=0), before)
    for name in ("stage1_block1_conv", "stage2_block1_conv"):
        layer = binary.get_layer(name)
        alpha = layer.kernel_alpha()
        latent = np.abs(layer.kernel.numpy()).reshape(-1, alpha.size)
        np.testing.assert_allclose(latent, np.broadcast_to(alpha, latent.shape), rtol=1e-4)
        forward = np.abs(layer.forward_kernel().numpy()).reshape(-1, alpha.size)
        np.testing.assert_array_equal(forward, np.broadcast_to(alpha, forward.shape))
    frozen = non_bn_values(binary)
    bn = binary.get_layer("stage1_block1_bn").moving_mean.numpy().copy()
    training.retrain_batchnorm(binary, data[0], y=data[1], batch_size=64, epochs=1, verbose=0)
    after = non_bn_values(binary)
    assert frozen.keys() == after.keys()
    for path, value in frozen.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    assert not np.array_equal(binary.get_layer("stage1_block1_bn").moving_mean.numpy(), bn)
    binary.save(tmp_path / "b.keras")
    keras.models.load_model(tmp_path / "b.keras")


def test_copy_between_different_architectures_names_the_layer():
    shapes = r"stage2_block1_\w+.*\(1, 1, 8, 16\).*\(1, 1, 8, 32\)"
    with pytest.raises(kob.ConfigError, match=shapes):
        training.copy_matching_weights(small(binary=False), kob.models.bireal_net(
            (1, 1), classes=10, widths=(8, 32), input_shape=(32, 32, 3)))
