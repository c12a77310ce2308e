"""`python -m keras_onebit eval`: top-1 error of a model on a test set.

    python -m keras_onebit eval --model wrn_20_10-cifar10-1bit --dataset cifar10 \\
        --data-dir ../shared/data
    python -m keras_onebit eval --model wrn_20_10 --weights cifar10
    python -m keras_onebit eval --model path/to/entry_or.onebit_or.mat --exact_only

`--model`: a hub id, a hub entry folder, a packed weights file, one of the
authors' .mat files, a `.keras` file, or a registered factory name (then
`--weights` is passed to the factory). Prints the top-1 error on the full
test set and, where the data set marks them (this project's CIFAR-10: the
first 1000 test images are exact, the rest come from a JPEG copy, SPEC
section 7), on the exact test images alone. `--agree_with` adds the fraction
of images on which a second model predicts the same class.
"""

import pathlib
import shlex
import sys
import time

from absl import flags

from keras_onebit.cli import common
from keras_onebit.errors import ConfigError

FLAGS = flags.FLAGS
common.define_model_flags("the model")
flags.DEFINE_integer("batch_size", 100, "Images per inference batch.", lower_bound=1)
flags.DEFINE_integer("limit", 0, "Evaluate only the first N test images (0: all).",
                     lower_bound=0)
flags.DEFINE_bool("exact_only", False, "Evaluate only the exact test images (test_exact_mask).")
flags.DEFINE_string("agree_with", None, "A second model (same forms as --model): also report "
                    "how often both predict the same class.")
flags.DEFINE_integer("threads", 0, "TensorFlow intra/inter-op threads (0: default).",
                     lower_bound=0)
flags.DEFINE_string("json", None, "Also write the results to this JSON file.")


def predict_classes(model, images, batch_size=100, verbose=True, label="images"):
    """Top-1 class of every image (float32 raw pixels), with a Keras progress bar."""
    import keras
    import numpy as np

    bar = keras.utils.Progbar(len(images), unit_name=label, verbose=1 if verbose else 0)
    out = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], np.float32)
        scores = keras.ops.convert_to_numpy(model(batch, training=False))
        out.append(np.argmax(scores, axis=-1))
        bar.add(len(batch))
    return np.concatenate(out) if out else np.zeros((0,), np.int64)


def error_report(pred, labels, exact=None):
    """{"test_images", "test_error", ["exact_images", "exact_error"]} in percent."""

    wrong = pred != labels
    report = {"test_images": int(len(labels)), "test_error": float(100.0 * wrong.mean())}
    if exact is not None and exact.any():
        report.update(exact_images=int(exact.sum()),
                      exact_error=float(100.0 * wrong[exact].mean()))
    return report


def evaluate(model, dataset="cifar10", data_dir=None, batch_size=100, limit=0, exact_only=False,
             verbose=True, other=None):
    """Evaluates `model` (and optionally the agreement with `other`); returns a dict."""
    import numpy as np

    from keras_onebit.data import CLASSES, load_dataset

    d = load_dataset(dataset, data_dir=data_dir)
    x, y = d["x_test"], d["y_test"]
    common.check_input_shape(model, x, "--model", dataset)
    if other is not None:
        common.check_input_shape(other, x, "--agree_with", dataset)
    exact = d.get("test_exact_mask")
    exact = None if exact is None else np.asarray(exact, bool)
    index = np.arange(len(y))
    if exact_only:
        if exact is None:
            raise ConfigError(f"{dataset} marks no exact test images; drop --exact_only.")
        index = index[exact]
    if limit:
        index = index[:limit]
    start = time.perf_counter()
    pred = predict_classes(model, x[index], batch_size, verbose)
    seconds = time.perf_counter() - start
    result = {"dataset": dataset, **error_report(pred, y[index],
                                                None if exact is None else exact[index]),
              "images_per_second": float(len(index) / max(seconds, 1e-9))}
    classes = model.output_shape[-1]
    if classes != CLASSES.get(dataset, classes):
        result["note"] = (f"the model has {classes} classes, {dataset} {CLASSES[dataset]}: its "
                          "error here is meaningless (use --agree_with to compare two models)")
    if other is not None:
        pred2 = predict_classes(other, x[index], batch_size, verbose)
        result["agreement"] = float(100.0 * (pred == pred2).mean())
        if exact is not None and exact[index].any():
            result["agreement_exact"] = float(100.0 * (pred == pred2)[exact[index]].mean())
    return result


def format_report(result):
    """The printed summary of `evaluate`'s result."""
    lines = []
    n = result["test_images"]
    subset = f" ({result['exact_images']} exact)" if "exact_images" in result else ""
    lines.append(f"top-1 error, all {n} evaluated test images{subset}: "
                 f"{result['test_error']:.2f}% (accuracy {100 - result['test_error']:.2f}%)")
    if "exact_images" in result:
        lines.append(f"top-1 error, {result['exact_images']} exact test images: "
                     f"{result['exact_error']:.2f}% (accuracy {100 - result['exact_error']:.2f}%)")
    if "agreement" in result:
        lines.append(f"same top-1 class as --agree_with: {result['agreement']:.2f}% of {n} images"
                     + (f", {result['agreement_exact']:.2f}% of the exact ones"
                        if "agreement_exact" in result else ""))
    if "note" in result:
        lines.append(f"note: {result['note']}")
    lines.append(f"{result['images_per_second']:.1f} images/s")
    return "\n".join(lines)


def main(argv):
    """Checks the flags, then evaluates (see the module docstring)."""
    common.no_positional(argv, "eval")
    if not FLAGS.model:
        raise ConfigError("--model is required: a hub id, a file or a registered factory name "
                          "(python -m keras_onebit hub list).")
    common.check_model("--model", FLAGS.model, FLAGS.weights)
    if FLAGS.agree_with:
        common.check_model("--agree_with", FLAGS.agree_with)
    if FLAGS.json:
        common.writable_folder(pathlib.Path(FLAGS.json).parent, "--json")
    if FLAGS.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    model = common.build_model(FLAGS.model, FLAGS.weights, FLAGS.dataset)
    other = (common.build_model(FLAGS.agree_with, None, FLAGS.dataset) if FLAGS.agree_with
             else None)
    result = evaluate(model, FLAGS.dataset, FLAGS.data_dir, FLAGS.batch_size, FLAGS.limit,
                      FLAGS.exact_only, other=other)
    result.update(model=FLAGS.model, weights=FLAGS.weights, agree_with=FLAGS.agree_with,
                  command="python -m keras_onebit eval " + shlex.join(sys.argv[2:]))
    print(f"{FLAGS.model} on {FLAGS.dataset}:")
    print(format_report(result))
    if FLAGS.json:
        from keras_onebit.hub.folders import write_json_atomic

        write_json_atomic(FLAGS.json, result)
    return 0
