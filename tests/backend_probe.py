"""Run under another Keras backend (KERAS_BACKEND=jax or torch) by tests/test_backends.py.

    python tests/backend_probe.py OUT_DIR DATA_NPZ

Writes OUT_DIR/probe.npz (quantizer, switchable layer and distillation loss
values and gradients on hand-made tensors, summary totals, the default hub
model's predictions, forward kernels, fit losses, predictions) and
OUT_DIR/model.keras (a one-bit WRN-8-1 trained a few steps on this backend).
DATA_NPZ is ../shared/data/mnist.npz (cifar10.npz is read beside it).
"""

import pathlib
import sys

import keras
import numpy as np

import keras_onebit as kob
from keras_onebit.activation_storage import relu_keeping_a_bit_mask
from keras_onebit.quantizers import ApproxSign, SignWeight, SteSign
from keras_onebit.training import WarmRestartCosine, ZeroMomentumAtRestart, train_dataset

W = np.array([[-1.5, -1.0, -0.3], [0.0, 0.4, 2.0]], dtype=np.float32)
G = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
X = np.linspace(-1.5, 1.5, 13, dtype=np.float32)
QUANTIZERS = {
    "he_ste": (SignWeight(), W),
    "he_clipped": (SignWeight(gradient="clipped"), W),
    "mean_abs_magnitude_aware": (SignWeight("mean_abs", "magnitude_aware"), W),
    "none_ste": (SignWeight("none"), W),
    "approx_sign": (ApproxSign(), X),
    "ste_sign": (SteSign(), X),
    # the ReLUs keeping a bit mask (ties at 0 and -1 in X): a memory saving on TensorFlow and
    # JAX, plain `where` on PyTorch; the same values and gradients everywhere
    "relu_bit_mask": (lambda v: relu_keeping_a_bit_mask(v), X),
    "shifted_relu_bit_mask": (lambda v: relu_keeping_a_bit_mask(v, floor=-1.0), X),
}


def weights_of(shape):
    """The cotangent g of an output of `shape` (G's values, repeated)."""
    return np.resize(G.reshape(-1), shape).astype(np.float32)


def value_and_grad(quantizer, x):
    """(q(x), d sum(q(x) * g) / dx) with this backend's autodiff."""
    if keras.backend.backend() == "jax":
        import jax

        y, vjp = jax.vjp(lambda v: quantizer(v), jax.numpy.asarray(x))
        return np.asarray(y), np.asarray(vjp(jax.numpy.asarray(weights_of(y.shape)))[0])
    import torch

    v = torch.tensor(x, requires_grad=True)
    y = quantizer(v)
    (y * torch.from_numpy(weights_of(tuple(y.shape)))).sum().backward()
    return y.detach().numpy(), v.grad.numpy()


# Layers and losses as functions of one input, compared with TensorFlow to float
# tolerance (their convolutions and reductions sum in another order per backend).
IMAGE = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype(np.float32)
KERNEL = np.random.default_rng(2).normal(size=(3, 3, 3, 4)).astype(np.float32)
PROBS = np.random.default_rng(3).dirichlet(np.ones(5), size=4).astype(np.float32)
TARGETS = kob.training.with_teacher(np.array([0, 3, 1, 4]),
                                    np.random.default_rng(4).dirichlet(np.ones(5), size=4))


def switchable_conv(binary_on, **options):
    """A switchable BinaryConv2D holding KERNEL, its one-bit weights on or off."""
    layer = kob.BinaryConv2D(4, 3, switchable=True, **options)
    layer.build(IMAGE.shape)
    layer.kernel.assign(KERNEL)
    layer.set_binary(binary_on)
    return layer


FUNCTIONS = {
    "switchable_float": (switchable_conv(False), IMAGE),
    "switchable_binary": (switchable_conv(True), IMAGE),
    "switchable_binary_inputs": (switchable_conv(True, input_quantizer="approx_sign"), IMAGE),
    "distillation": (lambda p: kob.training.DistillationLoss()(TARGETS, p), PROBS),
    "cross_entropy": (lambda p: kob.training.DistillationLoss()(TARGETS[:, :1], p), PROBS),
}


def summary_totals():
    """kob.summary's totals of a seeded one-bit WRN-8-1 (counts: the same everywhere)."""
    model = kob.models.wrn(8, 1, input_shape=(28, 28, 1), binary=True)
    totals = kob.summary(model, print_fn=None)
    return {k: np.float64(v) for k, v in totals.items() if isinstance(v, int | float)}


def hub_predictions(cifar10_path, count=16):
    """The default hub model's probabilities on the first `count` exact CIFAR-10 test images."""
    with np.load(cifar10_path, allow_pickle=False) as d:
        index = np.flatnonzero(d["test_exact_mask"])[:count]
        images = d["x_test"][index].astype("float32")
    return kob.hub.load(kob.hub.default_model_id()).predict(images, verbose=0)


POOL_INPUT = np.random.default_rng(0).normal(size=(2, 28, 28, 3)).astype(np.float32)


def pools():
    """WRN's two downsampling shortcut pools on POOL_INPUT: MatConvNet's (padding="symmetric")
    and Keras' AveragePooling2D(3, 2, padding="same")."""
    from keras_onebit.models.wrn import SymmetricAveragePooling2D

    same = keras.layers.AveragePooling2D(3, 2, padding="same")
    return (keras.ops.convert_to_numpy(SymmetricAveragePooling2D(3, 2)(POOL_INPUT)),
            keras.ops.convert_to_numpy(same(POOL_INPUT)))


def stochastic_storage_outcome(images):
    """"trained" when a layer with stochastic one-bit input storage runs in training mode
    here, else the error line it gives (TensorFlow and JAX only: PyTorch is refused)."""
    try:
        layer = kob.BinaryConv2D(4, 3, input_storage="stochastic_1bit")
        layer(images, training=True)
    except kob.Error as e:
        return f"{type(e).__name__}: {e}"
    return "trained"


def main(out_dir, data_path):
    assert keras.backend.backend() != "tensorflow", keras.backend.backend()
    results = {}
    for name, (quantizer, x) in {**QUANTIZERS, **FUNCTIONS}.items():
        results[f"{name}/value"], results[f"{name}/grad"] = value_and_grad(quantizer, x)
    results.update({f"summary/{k}": v for k, v in summary_totals().items()})
    results["hub/predictions"] = hub_predictions(pathlib.Path(data_path).with_name("cifar10.npz"))
    with np.load(data_path, allow_pickle=False) as d:
        x, y = d["x_train"][:750, ..., None].astype("float32"), d["y_train"][:750]
        x_test = d["x_test"][:64, ..., None].astype("float32")
    keras.utils.set_random_seed(0)
    model = kob.models.wrn(8, 1, input_shape=(28, 28, 1), binary=True)
    steps = len(x) // 50
    model.compile(keras.optimizers.SGD(WarmRestartCosine(steps, 0.05), momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    history = model.fit(train_dataset(x, y, 50, augmentation="none"), epochs=3,
                        steps_per_epoch=steps, callbacks=[ZeroMomentumAtRestart()], verbose=0)
    results["losses"] = np.array(history.history["loss"], np.float32)
    for layer in model.layers:
        if isinstance(layer, kob.BinaryConv2D):
            results[f"kernel/{layer.name}"] = keras.ops.convert_to_numpy(layer.forward_kernel())
    results["predictions"] = model.predict(x_test, verbose=0)
    results["storage"] = np.array(stochastic_storage_outcome(x_test[:2]))
    results["pool/symmetric"], results["pool/same"] = pools()
    model.save(f"{out_dir}/model.keras")
    np.savez(f"{out_dir}/probe.npz", **results)


if __name__ == "__main__":
    main(*sys.argv[1:3])
