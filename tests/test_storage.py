"""Stochastic one-bit storage of layer inputs for the backward pass (SPEC §5)."""

import pathlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_onebit import BinaryConv2D, BinaryDense, models
from keras_onebit.activation_storage import StochasticBinaryStorage, pack_bits, unpack_bits
from tests.conftest import run_on_jax


def relu_input(shape, seed=0):
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=shape), 0).astype(np.float32)


def test_bits_pack_eight_per_byte_and_round_trip():
    bits = np.random.default_rng(0).integers(0, 2, size=(3, 5, 7)).astype(np.float32)
    packed = pack_bits(bits)
    assert packed.dtype == tf.uint8 and packed.shape == (math_ceil_div(bits.size, 8),)
    np.testing.assert_array_equal(unpack_bits(packed, bits.shape).numpy(), bits)
    assert pack_bits(np.array([1, 0, 1, 1, 0, 0, 0, 0, 1], np.float32)).numpy().tolist() == [13, 1]


def math_ceil_div(a, b):
    return -(-a // b)


def test_stored_copy_has_two_values_and_is_unbiased():
    x = relu_input((64, 50))
    storage = StochasticBinaryStorage("max")
    tf.random.set_seed(0)
    draws = np.stack([storage(x).numpy() for _ in range(400)])
    s = x.max()
    assert np.unique(draws).tolist() == pytest.approx([0.0, s])
    # E[b] = x: the mean of 400 draws is within 5 standard errors everywhere.
    se = np.sqrt(np.clip(x * (s - x), 0, None) / 400) + 1e-6
    assert np.all(np.abs(draws.mean(0) - x) <= 5 * se + 1e-5)
    assert np.all(draws[:, x == 0] == 0)  # zeros (post-ReLU) are stored exactly


def test_signed_input_uses_its_minimum_and_stays_unbiased():
    x = np.random.default_rng(1).normal(size=(32, 32)).astype(np.float32)
    storage = StochasticBinaryStorage("max")
    lo, s = (v.numpy() for v in storage.value_range(x))
    assert lo == pytest.approx(x.min()) and lo + s == pytest.approx(x.max())
    tf.random.set_seed(1)
    mean = np.mean([storage(x).numpy() for _ in range(400)], axis=0)
    se = np.sqrt(np.clip((x - lo) * (lo + s - x), 0, None) / 400) + 1e-6
    assert np.all(np.abs(mean - x) <= 5 * se + 1e-5)
    assert abs((mean - x).mean()) < 5 * se.mean() / np.sqrt(x.size)  # no overall offset


def test_scale_options():
    x = relu_input((100, 100))
    lo, s = StochasticBinaryStorage("percentile", percentile=90).value_range(x)
    assert float(s) == pytest.approx(np.percentile(x, 90), rel=0.02)
    assert float(StochasticBinaryStorage(2.5).value_range(x)[1]) == 2.5
    for bad in ("median", -1.0):
        with pytest.raises(ValueError, match="scale"):
            StochasticBinaryStorage(bad)


def conv_grads(layer, x, dy):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    return [g.numpy() for g in tape.gradient(y, [x, layer.kernel], output_gradients=dy)]


def test_conv_input_gradient_exact_weight_gradient_unbiased():
    x = relu_input((4, 6, 6, 3))
    exact = BinaryConv2D(5, 3, padding="same")
    stochastic = BinaryConv2D(5, 3, padding="same", input_storage="stochastic_1bit")
    stochastic.build(x.shape)
    exact.build(x.shape)
    stochastic.kernel.assign(exact.kernel)
    dy = np.random.default_rng(2).normal(size=(4, 6, 6, 5)).astype(np.float32)
    dx, dw = conv_grads(exact, x, dy)
    tf.random.set_seed(2)
    samples = [conv_grads(stochastic, x, dy) for _ in range(200)]
    for sdx, _ in samples:
        np.testing.assert_allclose(sdx, dx, rtol=1e-5, atol=1e-6)
    one = np.abs(samples[0][1] - dw).mean() / np.abs(dw).mean()
    mean = np.abs(np.mean([s[1] for s in samples], axis=0) - dw).mean() / np.abs(dw).mean()
    assert one > 0.05  # a single draw is noisy...
    assert mean < one / 5  # ...and the mean of 200 draws converges (1/sqrt(200) ~ 1/14)
    np.testing.assert_allclose(stochastic(x).numpy(), exact(x).numpy(), rtol=1e-6)


def test_dense_and_config_round_trip():
    layer = BinaryDense(3, input_storage=StochasticBinaryStorage("percentile", 95.0))
    clone = BinaryDense.from_config(layer.get_config())
    assert (clone.input_storage.scale, clone.input_storage.percentile) == ("percentile", 95.0)
    x = relu_input((8, 4))
    clone.build(x.shape)
    with tf.GradientTape() as tape:
        y = clone(x, training=True)
    assert tape.gradient(y, clone.kernel).shape == (4, 3)
    with pytest.raises(ValueError, match="Unknown input storage"):
        BinaryDense(3, input_storage="two_bits")


def test_wrn_trains_with_stochastic_storage(mnist):
    x = mnist["x_train"][:256, ..., None].astype("float32")
    y = mnist["y_train"][:256]
    keras.utils.set_random_seed(0)
    model = models.wrn(8, 1, input_shape=(28, 28, 1), input_storage="stochastic_1bit")
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0).history["loss"]
    assert history[-1] < history[0]


def test_bit_mask_relu_gradient_is_exact_and_deploys_as_relu():
    from keras_onebit.activation_storage import BitMaskReLU
    from keras_onebit.export import deploy

    x = tf.constant(np.random.default_rng(3).normal(size=(4, 5, 5, 3)).astype(np.float32))
    x = tf.tensor_scatter_nd_update(x, [[0, 0, 0, 0]], [0.0])  # relu'(0) = 0 as in TF
    dy = tf.constant(np.random.default_rng(4).normal(size=x.shape).astype(np.float32))
    layer = BitMaskReLU()
    grads = []
    for fn in (lambda t: layer(t, training=True), tf.nn.relu):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        grads.append(tape.gradient(y, x, output_gradients=dy).numpy())
        np.testing.assert_array_equal(y.numpy(), tf.nn.relu(x).numpy())
    np.testing.assert_array_equal(grads[0], grads[1])
    model = models.wrn(8, 1, input_storage="stochastic_1bit")
    clone = deploy.deploy_clone(model)
    assert not any(type(layer).__name__ == "BitMaskReLU" for layer in clone.layers)
    pixels = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(clone.predict(pixels, verbose=0), model.predict(pixels, verbose=0),
                               rtol=1e-5, atol=1e-6)


# ----------------------------------------------------- what the backward pass keeps


def saved_for_backward(model, x, y):
    """(tensors the backward pass keeps, the input tensor of every forward conv)
    in a TensorFlow graph of one training step. The ops made by tape.gradient
    are the backward pass; the outputs of earlier (forward) ops that they
    take as inputs are what autodiff captured, i.e. what stays alive from
    the forward pass until the backward pass has used it."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    made = {}

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        made["forward"] = len(tf.compat.v1.get_default_graph().get_operations())
        return tape.gradient(loss, model.trainable_variables)

    ops = step.get_concrete_function(tf.constant(x), tf.constant(y)).graph.get_operations()
    forward, backward = set(ops[: made["forward"]]), ops[made["forward"]:]
    kept = {t.ref(): t for op in backward for t in op.inputs if t.op in forward}
    conv_inputs = [op.inputs[0] for op in ops[: made["forward"]] if op.type == "Conv2D"]
    assert len(conv_inputs) == 8  # WRN-8-1
    return list(kept.values()), conv_inputs


def small_wrn(batch_norm, storage):
    keras.utils.set_random_seed(0)
    model = models.wrn(8, 1, input_shape=(8, 8, 3), batch_norm=batch_norm, input_storage=storage)
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    return saved_for_backward(model, x, np.arange(4, dtype=np.int32))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_exact_storage_keeps_every_conv_input(batch_norm):
    # The check below can fail: without stochastic storage every conv's float input is kept.
    kept, conv_inputs = small_wrn(batch_norm, None)
    refs = {t.ref() for t in kept}
    assert all(t.ref() in refs for t in conv_inputs)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_stochastic_storage_keeps_no_float_copy_of_a_conv_input(batch_norm):
    kept, conv_inputs = small_wrn(batch_norm, "stochastic_1bit")
    refs = {t.ref() for t in kept}
    assert not any(t.ref() in refs for t in conv_inputs)
    bits = [t for t in kept if t.dtype == tf.uint8]
    assert len(bits) >= len(conv_inputs)  # one packed copy per conv (+ ReLU masks)
    activation_shapes = {tuple(t.shape) for t in conv_inputs}
    floats = [t for t in kept if t.dtype.is_floating and t.op.type != "Placeholder"
              and tuple(t.shape) in activation_shapes]
    if not batch_norm:
        # Without BN nothing float of an activation's size is kept at all: the
        # shifted ReLUs keep one-bit masks too (only the raw images, for the input BN).
        assert floats == []
    else:
        # With BN, each BN keeps its float input (Keras' unfused BN needs x - mean):
        # the conv outputs and residual sums, never a ReLU output / conv input.
        assert floats and all(t.op.type in ("IdentityN", "AddV2") for t in floats)


def test_shifted_relu_keeps_a_mask_and_has_tensorflows_gradient():
    from keras_onebit.layers import ShiftedReLU

    x = tf.constant([-2.0, -1.0, -0.5, 0.0, 0.5, 3.0])
    dy = tf.constant([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    grads = []
    for fn in (lambda t: ShiftedReLU()(t, training=True), lambda t: tf.maximum(t, -1.0)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        np.testing.assert_array_equal(y.numpy(), [-1.0, -1.0, -0.5, 0.0, 0.5, 3.0])
        grads.append(tape.gradient(y, x, output_gradients=dy).numpy())
    np.testing.assert_array_equal(grads[0], grads[1])  # the tie at -1 goes to x: [0, 2, 3, ...]


def test_layer_owns_a_seed_generator_that_is_not_a_weight():
    layer = BinaryConv2D(4, 3, input_storage="stochastic_1bit")
    layer.build((None, 6, 6, 3))
    assert layer.storage_seed is not None
    assert len(layer.weights) == 1 and layer.storage_seed.state in layer.non_trainable_variables
    assert BinaryConv2D(4, 3).storage_seed is None


# ---------------------------------------------------------------- on JAX

PROBE = pathlib.Path(__file__).with_name("storage_backend_probe.py")


@pytest.fixture(scope="module")
def jax_probe(tmp_path_factory, shared):
    pytest.importorskip("jax")
    out = tmp_path_factory.mktemp("storage_jax")
    return run_on_jax(PROBE, out, shared / "data/mnist.npz", "storage_probe.npz")


def test_jax_bit_mask_relus_equal_tensorflow(jax_probe):
    from keras_onebit.activation_storage import BitMaskReLU
    from keras_onebit.layers import ShiftedReLU

    sys.path.insert(0, str(PROBE.parent))
    import storage_backend_probe as probe

    for name, layer in (("bit_mask_relu", BitMaskReLU()), ("shifted_relu", ShiftedReLU())):
        x = tf.constant(probe.X)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        np.testing.assert_array_equal(jax_probe[f"{name}/value"], y.numpy())
        np.testing.assert_array_equal(jax_probe[f"{name}/grad"],
                                      tape.gradient(y, x, output_gradients=probe.DY).numpy())


def test_jax_stochastic_conv_gradient(jax_probe):
    np.testing.assert_allclose(jax_probe["conv/y"], jax_probe["conv/y_exact"], rtol=1e-6)
    for dx in jax_probe["conv/dx_stochastic"]:  # the input gradient is exact
        np.testing.assert_allclose(dx, jax_probe["conv/dx_exact"], rtol=1e-5, atol=1e-6)
    dw = jax_probe["conv/dw_exact"]
    one = np.abs(jax_probe["conv/dw_one"] - dw).mean() / np.abs(dw).mean()
    mean = np.abs(jax_probe["conv/dw_mean"] - dw).mean() / np.abs(dw).mean()
    assert one > 0.05 and mean < one / 5  # measured: 1.29 and 0.08 (200 draws)


@pytest.mark.parametrize("variant", ["bn", "no_bn"])
def test_jax_fit_with_stochastic_storage(jax_probe, variant):
    losses = jax_probe[f"fit/{variant}/losses"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert jax_probe[f"fit/{variant}/seed_moved"]  # fresh bits every step inside jit


def test_train_run_builds_the_no_bn_wrn_with_stochastic_storage():
    import json

    from keras_onebit import activation_storage as storage
    from keras_onebit.training.loop import RunConfig

    kwargs = RunConfig(batch_norm=False, input_storage="stochastic_1bit",
                       storage_scale="p99").factory_kwargs()
    json.dumps(kwargs)  # goes into a hub entry's config.json
    assert kwargs["batch_norm"] is False
    chosen = storage.get(kwargs["input_storage"])
    assert (chosen.scale, chosen.percentile) == ("percentile", 99.0)
    assert RunConfig(input_storage="stochastic_1bit").factory_kwargs() == {
        "input_storage": "stochastic_1bit"}
    assert storage.get(RunConfig(input_storage="stochastic_1bit", storage_scale="2")
                       .factory_kwargs()["input_storage"]).scale == 2.0
    assert RunConfig().factory_kwargs() == {}
    for bad in ("median", "p0", "-1"):
        with pytest.raises(ValueError, match="scale|percentile"):
            RunConfig(input_storage="stochastic_1bit", storage_scale=bad).factory_kwargs()
