"""`python -m keras_onebit teacher`: a teacher's probabilities for every
training image, once, for `train --teacher` (knowledge distillation).

    python -m keras_onebit teacher --model wrn_20_10-cifar10-1bit --dataset cifar10 \\
        --out runs/teacher-wrn_20_10-cifar10.npy [--format int8] [--limit N]

`--model` takes what `eval --model` takes (hub id, entry folder, .onebit /
.mat / .keras file, or factory name with `--weights`). Each row is the mean of
the teacher's softmax on the image and on its mirror image
(`keras_onebit.training.distill.teacher_probabilities`), in the order of the
training set. `--format int8` runs the teacher's int8 TFLite export in LiteRT
(several times faster on a CPU; the int8 model's top-1 agreement with the
Keras model on the first test images is printed) instead of Keras. The file is
written atomically (.npy, float32, no pickle).
"""

import pathlib

from absl import flags

from keras_onebit import data
from keras_onebit.cli import common
from keras_onebit.errors import ConfigError

FLAGS = flags.FLAGS
common.define_model_flags("the teacher")
flags.DEFINE_string("out", None, "The .npy file to write (required).")
flags.DEFINE_enum("format", "keras", ["keras", "int8"], "Run the teacher in Keras, or its int8 "
                  "TFLite export in LiteRT.")
flags.DEFINE_integer("limit", 0, "Only the first N training images (0: all); train --teacher "
                     "needs all of them.", lower_bound=0)
flags.DEFINE_integer("batch_size", 250, "Images per Keras batch.", lower_bound=1)
flags.DEFINE_integer("threads", 0, "Threads (0: default).", lower_bound=0)
flags.DEFINE_bool("flip", True, "Average over each image and its mirror image.")
AGREEMENT_IMAGES = 500


def litert_predict(model, calibration, threads, check_images):
    """A batch predictor running `model`'s int8 export in LiteRT, image by image."""
    import numpy as np

    from keras_onebit.export import report, tflite

    with common.native_stderr_silenced():
        model_bytes = tflite.convert(model, "int8", calibration)
        interpreter = report.litert_interpreter(model_bytes, threads or 2)

    def predict(batch):
        rows = report.interpreter_outputs(interpreter, batch).astype(np.float64)
        return rows / rows.sum(axis=1, keepdims=True)  # int8 steps of the softmax

    keras_top = model.predict(check_images, verbose=0).argmax(1)
    agreement = float((predict(check_images).argmax(1) == keras_top).mean())
    print(f"int8 teacher: same top-1 class as Keras on {agreement:.1%} of "
          f"{len(check_images)} test images")
    return predict


def main(argv):
    """Writes the teacher probabilities (see the module docstring)."""
    common.no_positional(argv, "teacher")
    if not FLAGS.model or not FLAGS.out:
        raise ConfigError("teacher needs --model (the teacher) and --out (a .npy file).")
    if not FLAGS.out.endswith(".npy"):
        raise ConfigError(f"--out {FLAGS.out}: give a .npy file name.")
    common.check_model("--model", FLAGS.model, FLAGS.weights)
    out = pathlib.Path(FLAGS.out)
    common.writable_folder(out.parent, "--out")
    import numpy as np

    from keras_onebit.export.files import atomic_write
    from keras_onebit.training.distill import teacher_probabilities
    from keras_onebit.training.loop import set_threads

    set_threads(FLAGS.threads)
    dataset = data.load_dataset(FLAGS.dataset, FLAGS.data_dir)
    images = dataset["x_train"][:FLAGS.limit or None]
    model = common.build_model(FLAGS.model, FLAGS.weights, FLAGS.dataset)
    common.check_input_shape(model, images, "--model", FLAGS.dataset)
    predict = model.predict_on_batch
    if FLAGS.format == "int8":
        predict = litert_predict(model, dataset["x_train"][:100].astype("float32"), FLAGS.threads,
                                 dataset["x_test"][:AGREEMENT_IMAGES].astype("float32"))
    probs = teacher_probabilities(predict, images, FLAGS.batch_size, flip=FLAGS.flip)
    accuracy = float((probs.argmax(1) == dataset["y_train"][:len(probs)]).mean())
    with atomic_write(out) as f:
        np.save(f, probs, allow_pickle=False)
    print(f"wrote {out}: {probs.shape[0]} x {probs.shape[1]} probabilities; the teacher's top-1 "
          f"accuracy on these training images {accuracy:.2%}")
