"""Run under KERAS_BACKEND=jax by tests/test_storage.py: stochastic one-bit
storage and the bit-mask ReLUs on another Keras backend.

    python tests/storage_backend_probe.py OUT_DIR MNIST_NPZ

Writes OUT_DIR/storage_probe.npz: the conv input gradient (exact and with
stochastic storage), the mean and one draw of the weight gradient, the
values and gradients of BitMaskReLU / ShiftedReLU on hand-made inputs, and
the losses of a few fit epochs of one-bit WRN-8-1 (with and without batch
norm) trained with stochastic storage inside the backend's compiled step.
"""

import sys

import jax
import keras
import numpy as np

import keras_onebit as kob
from keras_onebit.activation_storage import BitMaskReLU, StochasticBinaryStorage
from keras_onebit.layers import ShiftedReLU

X = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0], np.float32)  # ties at 0 and -1
DY = np.arange(1, 8, dtype=np.float32)
DRAWS = 200


def relu_grads(results):
    for name, layer in (("bit_mask_relu", BitMaskReLU()), ("shifted_relu", ShiftedReLU())):
        y, vjp = jax.vjp(lambda v, layer=layer: layer(v, training=True), jax.numpy.asarray(X))
        results[f"{name}/value"], results[f"{name}/grad"] = np.asarray(y), np.asarray(vjp(DY)[0])


def conv_grads(results):
    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=(4, 6, 6, 3)), 0).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 3, 5)).astype(np.float32)
    dy = rng.normal(size=(4, 6, 6, 5)).astype(np.float32)

    def op(v, k):
        return keras.ops.conv(v, k, padding="same")

    exact = jax.vjp(op, x, kernel)[1](dy)
    storage, seed = StochasticBinaryStorage("max"), keras.random.SeedGenerator(0)
    draws = [jax.vjp(lambda v, k: storage.apply(op, v, k, seed=seed), x, kernel)[1](dy)
             for _ in range(DRAWS)]
    results["conv/dx_exact"], results["conv/dw_exact"] = (np.asarray(g) for g in exact)
    results["conv/dx_stochastic"] = np.stack([np.asarray(d[0]) for d in draws])
    results["conv/dw_one"] = np.asarray(draws[0][1])
    results["conv/dw_mean"] = np.mean([np.asarray(d[1]) for d in draws], axis=0)
    results["conv/y"] = np.asarray(storage.apply(op, x, kernel, seed=seed))
    results["conv/y_exact"] = np.asarray(op(x, kernel))


def fit(results, data_path):
    with np.load(data_path, allow_pickle=False) as d:
        x, y = d["x_train"][:512, ..., None].astype("float32"), d["y_train"][:512]
    for batch_norm in (True, False):
        keras.utils.set_random_seed(0)
        model = kob.models.wrn(8, 1, input_shape=(28, 28, 1), batch_norm=batch_norm,
                               input_storage="stochastic_1bit")
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
        conv = model.get_layer("stem_conv")
        state = keras.ops.convert_to_numpy(conv.storage_seed.state).copy()
        history = model.fit(x, y, batch_size=64, epochs=3, verbose=0).history["loss"]
        key = "bn" if batch_norm else "no_bn"
        results[f"fit/{key}/losses"] = np.array(history, np.float32)
        results[f"fit/{key}/seed_moved"] = np.array(
            not np.array_equal(state, keras.ops.convert_to_numpy(conv.storage_seed.state)))


def main(out_dir, data_path):
    assert keras.backend.backend() == "jax", keras.backend.backend()
    results = {}
    relu_grads(results)
    conv_grads(results)
    fit(results, data_path)
    np.savez(f"{out_dir}/storage_probe.npz", **results)


if __name__ == "__main__":
    main(*sys.argv[1:3])
