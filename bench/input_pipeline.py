"""Input pipeline throughput vs what training consumes, side by side.

    python bench/input_pipeline.py [--model wrn_20_1] [--rounds 5]

Target (issue 5): the augmented CIFAR-10 pipeline (flip, random-fill crop,
cutout) delivers >= 5x the images/s that one-bit training of the model
consumes on this machine.
"""

import os
import sys

os.environ.setdefault("KERAS_ONEBIT_QUIET", "1")  # no TensorFlow start-up lines (_startup.py)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_onebit  # noqa: E402, F401  first: it loads TensorFlow and Keras quietly

# isort: split

import keras  # noqa: E402
from absl import app, flags  # noqa: E402
from common import alternate, median, save  # noqa: E402

import keras_onebit as kob  # noqa: E402
from keras_onebit.training import train_dataset  # noqa: E402

flags.DEFINE_string("model", "wrn_20_1", "Registered model name.")
flags.DEFINE_integer("batch", 125, "Batch size (the paper's).")
flags.DEFINE_integer("batches", 100, "Pipeline batches per timing (>> the prefetch buffer).")
flags.DEFINE_integer("steps", 5, "Training steps per timing.")
flags.DEFINE_integer("rounds", 5, "Alternated timing rounds.")
FLAGS = flags.FLAGS


def main(_):
    data = kob.data.load_dataset("cifar10")
    ds = train_dataset(data["x_train"], data["y_train"], FLAGS.batch,
                       augmentation="flip_crop_cutout")
    batches = iter(ds)
    model = kob.models.get(FLAGS.model)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    x, y = next(batches)
    model.train_on_batch(x, y)

    def pipeline():
        for _ in range(FLAGS.batches):
            next(batches)

    def training():
        for _ in range(FLAGS.steps):
            model.train_on_batch(x, y)

    times = alternate({"pipeline": pipeline, "training": training}, FLAGS.rounds)
    pipe = FLAGS.batches * FLAGS.batch / median(times["pipeline"])
    train = FLAGS.steps * FLAGS.batch / median(times["training"])
    result = {"model": FLAGS.model, "batch": FLAGS.batch, "pipeline_images_per_s": pipe,
              "training_images_per_s": train, "ratio": pipe / train}
    print(f"pipeline {pipe:.0f} images/s, {FLAGS.model} one-bit training {train:.0f} images/s: "
          f"ratio {pipe / train:.1f} (target >= 5)")
    print("saved", save("input_pipeline", result))


if __name__ == "__main__":
    app.run(main)
