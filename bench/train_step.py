"""One-bit vs float training step time of the same WRN, alternated in one run.

    python bench/train_step.py [--models wrn_20_1,wrn_16_4] [--rounds 12]
        [--policies float32,mixed_bfloat16]

Target (issue 2): one-bit / float step-time ratio <= 1.05, for each Keras
dtype policy. With several policies, all variants of a model are alternated
in one run, so the speed-up of mixed precision is measured side by side too.
"""

import os
import sys

os.environ.setdefault("KERAS_ONEBIT_QUIET", "1")  # no TensorFlow start-up lines (_startup.py)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_onebit  # noqa: E402, F401  first: it loads TensorFlow and Keras quietly

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from common import alternate, median, save  # noqa: E402

import keras_onebit as kob  # noqa: E402
from keras_onebit.training import dtype_policy  # noqa: E402

flags.DEFINE_list("models", ["wrn_20_1", "wrn_16_4"], "Registered model names.")
flags.DEFINE_integer("batch", 64, "Batch size.")
flags.DEFINE_integer("rounds", 12, "Alternated timing rounds.")
flags.DEFINE_integer("steps", 3, "Training steps per timing.")
flags.DEFINE_list("policies", ["float32"], "Keras dtype policies (e.g. float32,mixed_bfloat16).")
FLAGS = flags.FLAGS


def step_fn(name, binary, policy, x, y):
    keras.utils.set_random_seed(0)
    with dtype_policy(policy):
        model = kob.models.get(name, binary=binary)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)  # trace and warm up
    model.train_on_batch(x, y)
    return lambda: model.train_on_batch(x, y)


def bench_model(name):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, (FLAGS.batch, 32, 32, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, (FLAGS.batch,)))
    fns = {(policy, kind): step_fn(name, kind == "one_bit", policy, x, y)
           for policy in FLAGS.policies for kind in ("one_bit", "float")}
    times = alternate(fns, FLAGS.rounds, FLAGS.steps)
    rows = [policy_row(name, policy, times) for policy in FLAGS.policies]
    base = rows[0]
    for row in rows[1:]:
        speedup = base["one_bit_s"] / row["one_bit_s"]
        row[f"one_bit_speedup_vs_{base['policy']}"] = speedup
        print(f"  {row['policy']} one-bit steps: {speedup:.2f}x {base['policy']}")
    return rows


def policy_row(name, policy, times):
    one_bit, float_ = median(times[policy, "one_bit"]), median(times[policy, "float"])
    row = {"model": name, "policy": policy, "batch": FLAGS.batch, "one_bit_s": one_bit,
           "float_s": float_, "ratio": one_bit / float_,
           "images_per_s_one_bit": FLAGS.batch / one_bit,
           "images_per_s_float": FLAGS.batch / float_}
    print(f"{name} ({policy}): one-bit {one_bit * 1e3:.1f} ms/step, float {float_ * 1e3:.1f} "
          f"ms/step, ratio {row['ratio']:.3f} ({row['images_per_s_one_bit']:.0f} images/s one-bit)")
    return row


def main(_):
    rows = [row for name in FLAGS.models for row in bench_model(name)]
    print("saved", save("train_step", {"threads": os.cpu_count(), "rows": rows}))


if __name__ == "__main__":
    app.run(main)
