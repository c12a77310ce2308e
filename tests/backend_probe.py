"""Run under another Keras backend (KERAS_BACKEND=jax or torch) by tests/test_backends.py.

    python tests/backend_probe.py OUT_DIR DATA_NPZ

Writes OUT_DIR/probe.npz (quantizer values and gradients on hand-made
tensors, forward kernels, fit losses, predictions) and OUT_DIR/model.keras
(a one-bit WRN-8-1 trained a few steps on this backend).
"""

import sys

import keras
import numpy as np

import keras_onebit as kob
from keras_onebit.quantizers import ApproxSign, SignWeight, SteSign
from keras_onebit.storage import relu_keeping_a_bit_mask
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


def value_and_grad(quantizer, x):
    """(q(x), d sum(q(x) * g) / dx) with this backend's autodiff."""
    g = np.resize(G.reshape(-1), x.shape).astype(np.float32)
    if keras.backend.backend() == "jax":
        import jax

        y, vjp = jax.vjp(lambda v: quantizer(v), jax.numpy.asarray(x))
        return np.asarray(y), np.asarray(vjp(jax.numpy.asarray(g))[0])
    import torch

    v = torch.tensor(x, requires_grad=True)
    y = quantizer(v)
    (y * torch.from_numpy(g)).sum().backward()
    return y.detach().numpy(), v.grad.numpy()


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
    for name, (quantizer, x) in QUANTIZERS.items():
        results[f"{name}/value"], results[f"{name}/grad"] = value_and_grad(quantizer, x)
    with np.load(data_path, allow_pickle=False) as d:
        x, y = d["x_train"][:2000, ..., None].astype("float32"), d["y_train"][:2000]
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
