"""The larq side of `bench/peers.py`: runs in the peers' own environment
(bench/peers_env/.venv: larq 0.14.0, larq-compute-engine 0.16.0, tensorflow-cpu
2.15.1, Keras 2), never in the project's .venv, and imports nothing of
keras_onebit.

It builds WRN-16-4 exactly as keras_onebit.models.wrn_16_4 does (same layer
names, so weights copy by name), in larq: `QuantConv2D` with a constant-scale
sign kernel quantizer, alpha * sign(W), alpha = sqrt(2 / fan_in), identity
(straight-through) gradient; the fully binary variant adds larq's `ste_sign`
input quantizer to every block conv and drops the ReLU before it. And
bireal_20_2 as keras_onebit.models.bireal_20_2 does: `QuantConv2D` with
`ste_sign` on inputs and kernel; the driver sends the +-1 kernels and folds
each conv's per-channel scale (mean |W|) into the BN after it, which LCE's
converter fuses into its LceBconv2d.

The driver talks to it in JSON lines: one command per line on stdin, one
answer per line on stdout (TensorFlow's own output goes to stderr).
"""

import importlib.metadata
import json
import logging
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import larq as lq  # noqa: E402
import larq_compute_engine as lce  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from larq_compute_engine.tflite.python.interpreter import Interpreter  # noqa: E402

BN_EPSILON = 1e-5
WEIGHT_DECAY = 5e-4
# larq warns that a binary kernel without a kernel_constraint may starve; the
# paper trains without one (weight decay only), as keras_onebit does.
logging.getLogger("larq").setLevel(logging.ERROR)
tf.get_logger().setLevel(logging.ERROR)


class ConstantScaleSign(lq.quantizers.Quantizer):
    """alpha * sign(W), alpha = sqrt(2 / fan_in) (McDonnell, ICLR 2018), with
    larq's ste_sign and no gradient clipping (the identity gradient)."""

    precision = 1

    def call(self, inputs):
        fan_in = math.prod(inputs.shape[:-1])
        return math.sqrt(2.0 / fan_in) * lq.quantizers.ste_sign(inputs, clip_value=None)


def conv(filters, kernel_size, stride, name, binary_input=False):
    return lq.layers.QuantConv2D(
        filters, kernel_size, strides=stride, padding="same", use_bias=False,
        kernel_quantizer=ConstantScaleSign(),
        input_quantizer="ste_sign" if binary_input else None,
        kernel_initializer="he_normal", name=name,
        kernel_regularizer=tf.keras.regularizers.L2(WEIGHT_DECAY / 2))  # as keras_onebit's


def bn(name, learn=False):
    return tf.keras.layers.BatchNormalization(epsilon=BN_EPSILON, center=learn, scale=learn,
                                              name=name)


def bn_act(x, prefix, relu=True):
    x = bn(f"{prefix}_bn")(x)
    return tf.keras.layers.ReLU(name=f"{prefix}_relu")(x) if relu else x


def zero_channels(filters, name):
    def pad(x):
        return tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, filters - x.shape[-1]]])

    return tf.keras.layers.Lambda(pad, name=name)


def block(x, filters, down, prefix, binary):
    y = bn_act(x, f"{prefix}_1", relu=not binary)
    y = conv(filters, 3, 2 if down else 1, f"{prefix}_conv1", binary)(y)
    y = bn_act(y, f"{prefix}_2", relu=not binary)
    y = conv(filters, 3, 1, f"{prefix}_conv2", binary)(y)
    if down:
        x = tf.keras.layers.AveragePooling2D(3, 2, padding="same", name=f"{prefix}_pool")(x)
        x = zero_channels(filters, f"{prefix}_zeros")(x)
    return tf.keras.layers.Add(name=f"{prefix}_add")([x, y])


def wrn_16_4(binary=False, classes=10):
    """WRN-16-4 (2 blocks per stage, widths 64/128/256), logits out."""
    pixels = tf.keras.Input((32, 32, 3), name="pixels")
    x = bn("stem_bn", learn=True)(pixels)
    x = conv(64, 3, 1, "stem_conv")(x)
    for stage in range(3):
        for index in range(2):
            x = block(x, 64 * 2**stage, stage > 0 and index == 0,
                      f"stage{stage + 1}_block{index + 1}", binary)
    x = bn_act(x, "head")
    x = conv(classes, 1, 1, "head_conv")(x)
    x = bn("head_bn_out")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return tf.keras.Model(pixels, x, name="wrn_16_4")


def bireal_20_2(classes=10):
    """Bi-Real-20 at widths 32/64/128 with the "repeat" shortcut, logits out."""
    pixels = tf.keras.Input((32, 32, 3), name="pixels")
    x = bn("input_bn", learn=True)(pixels)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = bn("stem_bn", learn=True)(x)
    for stage, width in enumerate((32, 64, 128)):
        for index in range(6):
            prefix = f"stage{stage + 1}_block{index + 1}"
            down = index == 0 and x.shape[-1] != width
            y = lq.layers.QuantConv2D(
                width, 3, strides=2 if down else 1, padding="same", use_bias=False,
                input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint=None,
                name=f"{prefix}_conv")(x)
            y = bn(f"{prefix}_bn", learn=True)(y)
            if down:
                x = tf.keras.layers.AveragePooling2D(2, 2, name=f"{prefix}_pool")(x)
                x = tf.keras.layers.Concatenate(name=f"{prefix}_repeat")(
                    [x] * (width // x.shape[-1]))
            x = tf.keras.layers.Add(name=f"{prefix}_add")([x, y])
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = tf.keras.layers.Dense(classes, name="fc")(x)
    return tf.keras.Model(pixels, x, name="bireal_20_2")


BUILDERS = {"weights": lambda: wrn_16_4(binary=False), "binary": lambda: wrn_16_4(binary=True),
            "bireal_20_2": bireal_20_2}


class Worker:
    def __init__(self):
        self.model = self.train_data = None
        self.interpreters = {}

    def build(self, variant, weights):
        tf.keras.utils.set_random_seed(0)
        self.model = BUILDERS[variant]()
        stored = np.load(weights, allow_pickle=False)
        if len(stored.files) != len(self.model.weights):
            raise ValueError(f"{len(stored.files)} stored arrays for the larq model's "
                             f"{len(self.model.weights)} weights")
        for layer in self.model.layers:
            layer.set_weights([stored[f"{layer.name}/{i}"] for i in range(len(layer.weights))])
        return {"params": int(self.model.count_params())}

    def predict(self, images, out):
        logits = self.model.predict(np.load(images, allow_pickle=False), batch_size=50, verbose=0)
        np.save(out, logits.astype(np.float32), allow_pickle=False)
        return {}

    def train_setup(self, batch):
        self.model.compile(optimizer=tf.keras.optimizers.SGD(0.1, momentum=0.9),
                           loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x = tf.constant(rng.integers(0, 256, (batch, 32, 32, 3)).astype(np.float32))
        y = tf.constant(rng.integers(0, 10, (batch,)))
        self.train_data = (x, y)
        self.model.train_on_batch(x, y)  # trace and warm up
        self.model.train_on_batch(x, y)
        return {}

    def train(self, steps):
        start = time.perf_counter()
        for _ in range(steps):
            self.model.train_on_batch(*self.train_data)
        return {"seconds": (time.perf_counter() - start) / steps}

    def convert(self, out):
        data = lce.convert_keras_model(self.model)
        with open(out + ".tmp", "wb") as f:
            f.write(data)
        os.replace(out + ".tmp", out)
        return {"bytes": len(data)}

    def load(self, key, path, threads, **settings):
        """LCE's interpreter on a file with `settings` (use_xnnpack,
        use_indirect_bgemm, use_reference_bconv), kept under `key`, after one
        warm-up run."""
        with open(path, "rb") as f:
            interpreter = Interpreter(f.read(), num_threads=threads, **settings)
        interpreter.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0)
        self.interpreters[key] = interpreter
        return {}

    def lce_predict(self, key, images, out):
        logits = self.interpreters[key].predict(np.load(images, allow_pickle=False), verbose=0)
        np.save(out, np.asarray(logits, np.float32), allow_pickle=False)
        return {}

    def infer(self, key, repeats, image):
        """Seconds per inference of one image (batch 1), over `repeats` runs."""
        interpreter, x = self.interpreters[key], np.load(image, allow_pickle=False)[None]
        start = time.perf_counter()
        for _ in range(repeats):
            interpreter.predict(x, verbose=0)
        return {"seconds": (time.perf_counter() - start) / repeats}

    def versions(self):
        packages = ("tensorflow-cpu", "larq", "larq-compute-engine", "numpy")
        return {"python": sys.version.split()[0],
                **{name: importlib.metadata.version(name) for name in packages}}


def main():
    answers = sys.stdout
    sys.stdout = sys.stderr  # whatever else prints must not break the protocol
    worker = Worker()
    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("cmd")
        try:
            answer = {"ok": True, **getattr(worker, name)(**command)}
        except Exception as error:  # the driver reports it, with the command
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
