"""Iterative layer binarization: switchable layers and the callback (SPEC §4)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_onebit import BinaryConv2D, BinaryDense, models
from keras_onebit.export import deploy, load_packed, save_packed
from keras_onebit.layers import is_binary
from keras_onebit.training import (
    IterativeBinarization,
    binarization_order,
    measure_sensitivity,
    sensitivity_order,
)
from keras_onebit.training.iterative import binary_layer_count
from tests.conftest import slow


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    x = BinaryDense(8, switchable=True, name="d0")(inputs)
    x = keras.layers.ReLU()(x)
    x = BinaryDense(8, switchable=True, name="d1")(x)
    x = keras.layers.ReLU()(x)
    outputs = BinaryDense(3, switchable=True, name="d2")(x)
    return keras.Model(inputs, outputs)


def states(model):
    return [layer.binary_is_on() for layer in model.layers if isinstance(layer, BinaryDense)]


class RecordStates(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.states, self.train_functions = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.states.append(states(self.model))
        self.train_functions.append(self.model.train_function)


def fit(model, epochs, order="forward", initial_epoch=0, per_layer=1):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    if not model.compiled:
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    record = RecordStates()
    model.fit(x, y, batch_size=8, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
              callbacks=[IterativeBinarization(order, per_layer, verbose=0), record])
    return record


def test_switchable_layer_is_float_until_switched():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype(np.float32)
    layer = BinaryConv2D(5, 3, padding="same", switchable=True)
    y_float = layer(x).numpy()
    latent = layer.kernel.numpy()
    np.testing.assert_allclose(y_float, tf.nn.conv2d(x, latent, 1, "SAME").numpy(),
                               rtol=1e-5, atol=1e-5)
    assert not is_binary(layer)
    layer.set_binary(True)
    alpha = np.sqrt(2 / (3 * 3 * 4))
    signed = np.where(latent >= 0, alpha, -alpha).astype(np.float32)
    np.testing.assert_allclose(layer(x).numpy(), tf.nn.conv2d(x, signed, 1, "SAME").numpy(),
                               rtol=1e-5, atol=1e-5)
    assert is_binary(layer)
    assert np.unique(layer.forward_kernel().numpy()).size == 2


def test_switch_flips_the_gradient_inside_one_traced_function():
    layer = BinaryDense(2, gradient="clipped", switchable=True)
    layer.build((None, 3))
    layer.kernel.assign([[0.5, 2.0], [-3.0, 0.1], [0.2, -0.4]])
    x = tf.constant([[1.0, -2.0, 3.0]])
    traces = []

    @tf.function
    def grad():
        traces.append(1)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, layer.kernel)

    full = np.repeat(x.numpy().T, 2, axis=1)
    np.testing.assert_array_equal(grad().numpy(), full)  # float: plain gradient
    layer.set_binary(True)
    clipped = full * (np.abs(layer.kernel.numpy()) <= 1)  # binary: clipped STE
    np.testing.assert_array_equal(grad().numpy(), clipped)
    assert len(traces) == 1


def test_binary_layer_count_follows_the_formula():
    assert [binary_layer_count(e, 3, 2) for e in range(8)] == [1, 1, 2, 2, 3, 3, 3, 3]
    with pytest.raises(ValueError, match="epochs_per_layer"):
        binary_layer_count(0, 3, 0)


def test_callback_switches_forward_in_the_compiled_step_keeping_optimizer_state():
    model = mlp()
    record = fit(model, 4)
    assert record.states == [[True, False, False], [True, True, False],
                             [True, True, True], [True, True, True]]
    assert len({id(f) for f in record.train_functions}) == 1  # never recompiled
    assert int(model.optimizer.iterations.numpy()) == 4 * 4
    momentum = [v for v in model.optimizer.variables if "momentum" in v.path]
    assert momentum and all(np.any(v.numpy() != 0) for v in momentum)


def test_reverse_order_and_resume_switch_what_is_due():
    assert fit(mlp(), 2, order="reverse").states == [[False, False, True], [False, True, True]]
    resumed = fit(mlp(), 3, initial_epoch=2)
    assert resumed.states == [[True, True, True]]


def test_orders_and_their_errors():
    model = mlp()

    def names(order):
        return [layer.name for layer in binarization_order(model, order, seed=3)]

    assert names("forward") == ["d0", "d1", "d2"]
    assert sorted(names("random")) == ["d0", "d1", "d2"]
    assert names("random") == names("random")
    assert names(["d1", "d2", "d0"]) == ["d1", "d2", "d0"]
    with pytest.raises(ValueError, match="not switchable binary layers: \\['d9'\\]"):
        binarization_order(model, ["d0", "d1", "d9"])
    with pytest.raises(ValueError, match="missing \\['d2'\\], repeated \\['d1'\\]"):
        binarization_order(model, ["d0", "d1", "d1"])
    with pytest.raises(ValueError, match="Unknown order 'sideways'"):
        binarization_order(model, "sideways")
    plain = keras.Sequential([keras.Input((6,)), BinaryDense(3)])
    with pytest.raises(ValueError, match="no switchable binary layers"):
        binarization_order(plain)
    with pytest.raises(ValueError, match="needs binary=True"):
        BinaryDense(3, binary=False, switchable=True)


def test_switch_state_survives_keras_and_packed_round_trips(tmp_path):
    model = mlp()
    model.get_layer("d1").set_binary(True)
    x = np.random.default_rng(2).normal(size=(5, 6)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert states(loaded) == [False, True, False]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    unpacked = load_packed(save_packed(model, tmp_path / "m.onebit"))
    assert states(unpacked) == [False, True, False]
    np.testing.assert_allclose(unpacked.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
    clone = deploy.deploy_clone(model)
    np.testing.assert_allclose(clone.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)


def test_sensitivity_order_from_measured_scores():
    def score(model):  # a stand-in for training: accuracy depends on which layer is binary
        return {"d0": 0.7, "d1": 0.9, "d2": 0.8}[
            next(layer.name for layer in model.layers
                 if isinstance(layer, BinaryDense) and layer.binary_is_on())]

    scores = measure_sensitivity(mlp, score)
    assert scores == {"d0": 0.7, "d1": 0.9, "d2": 0.8}
    assert sensitivity_order(scores) == ["d1", "d2", "d0"]


def test_switchable_wrn_starts_float():
    model = models.wrn_20_1(switchable=True)
    order = binarization_order(model)
    assert len(order) == 20
    assert not any(is_binary(layer) for layer in model.layers)
    assert [layer.name for layer in order] == [
        layer.name for layer in model.layers if isinstance(layer, BinaryConv2D)]


@slow  # 31 s; the callback tests above cover the switching
def test_training_run_switches_layers_and_resumes(tmp_path):
    from keras_onebit.training.loop import RunConfig, train

    config = RunConfig(model="wrn_20_1", dataset="cifar10", epochs=2, batch_size=50,
                       train_limit=100, out_dir=str(tmp_path / "run"), verbose=0,
                       iterative_epochs=1)
    model, _ = train(config)
    convs = [layer for layer in model.layers if isinstance(layer, BinaryConv2D)]
    assert [layer.binary_is_on() for layer in convs] == [True] * 2 + [False] * 18
    config.epochs = 3
    resumed, _ = train(config, resume=True)
    convs = [layer for layer in resumed.layers if isinstance(layer, BinaryConv2D)]
    assert [layer.binary_is_on() for layer in convs] == [True] * 3 + [False] * 17
    with pytest.raises(ValueError, match="needs a one-bit run"):
        RunConfig(binary=False, iterative_epochs=1).factory_kwargs()
