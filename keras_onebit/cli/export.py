"""`python -m keras_onebit export`: a model in every deployment format.

    python -m keras_onebit export --model default --out export/
    python -m keras_onebit export --model wrn_16_4 --weights run.keras \\
        --formats float,int8,packed_int8 --out export/

Writes export/<model>/: <model>.onebit (packed archive), <model>_<format>.tflite,
model_data.cc/.h (micro), report.json and report.md. `--model default` is the
hub's default pretrained model; when it cannot be loaded (a failed checksum, a
missing file), the command stops with one line and writes nothing. A factory
name needs `--weights`, or `--seeded` to export a randomly initialised model
on purpose (its files and report are named <factory>-seeded).
"""

import pathlib
import sys
import zipfile

from absl import flags

from keras_onebit import data, models
from keras_onebit.cli import common
from keras_onebit.errors import ConfigError, Error, one_line
from keras_onebit.fileio import regular_file

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "default", "Model: 'default' (hub default), a hub id, or a "
                    "registered factory name (keras_onebit.models.list_models()).")
flags.DEFINE_string("weights", None, "Weights: a .onebit archive, a .keras model or a "
                    ".weights.h5 file (with a factory name as --model).")
flags.DEFINE_bool("seeded", False, "With a factory name and no --weights: export a randomly "
                  "initialised model (set_random_seed(--seed), BN statistics from real images), "
                  "named <factory>-seeded, to try the pipeline.")
flags.DEFINE_string("formats", "float,int8,int4,packed,packed_int8,micro",
                    "Comma-separated formats.")
flags.DEFINE_string("out", "export", "Output root: files go to <out>/<model>/.")
flags.DEFINE_enum("dataset", "cifar10", list(data.CLASSES),
                  "Data set for calibration and parity images.")
flags.DEFINE_string("data_dir", None, "Data directory (default: ../shared/data and others).")
flags.DEFINE_integer("images", 500, "Real test images compared with Keras (exact ones first).",
                     lower_bound=1)
flags.DEFINE_integer("representative", 200, "Training images for int8/int4 calibration.",
                     lower_bound=1)
flags.DEFINE_integer("micro_images", 20, "Images run in the TFLite Micro interpreter.",
                     lower_bound=1)
flags.DEFINE_integer("threads", 2, "LiteRT threads for the latency measurement.", lower_bound=1)
flags.DEFINE_integer("latency_runs", 30, "LiteRT runs per latency median.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of a stand-in model without weights.", lower_bound=0)
flags.DEFINE_bool("expansion_record", True, "Packed files carry the record that expands them "
                  "into the int8 / float file byte for byte at load time (examples/"
                  "onebit_expand.c); --noexpansion_record saves its few kB where the file "
                  "only runs as stored (TFLite Micro).")

WEIGHT_FORMATS = (".onebit", ".keras", ".weights.h5")
WEIGHT_KINDS = "a .onebit archive, a .keras model or a .weights.h5 file"


def log(text, flush=True):
    """Prints one progress line."""
    print(text, flush=flush)


def check_model_flags(name, weights, seeded=False):
    """Refuses, before any data is loaded or model built, a --weights file that is
    missing or of an unknown kind, a --model the exporter cannot resolve, and a
    factory name with neither --weights nor --seeded (random weights on purpose only)."""
    if weights:
        common.existing_file(weights, "--weights", WEIGHT_KINDS)
        if not str(weights).endswith(WEIGHT_FORMATS):
            raise ConfigError(f"--weights {weights}: unknown kind of file; give {WEIGHT_KINDS}.")
        if seeded:
            raise ConfigError("--seeded exports random weights; it cannot be combined with "
                              f"--weights {weights}: drop one of the two.")
        if str(weights).endswith((".onebit", ".keras")):
            return  # the file holds the architecture; --model only names the export
    factories = models.list_models()
    if weights and name not in factories and name != "default":
        raise ConfigError(f"--weights {weights} (weights only) needs a registered factory name "
                          f"as --model ({', '.join(factories)}), got {name!r}.")
    if seeded and name not in factories:
        raise ConfigError(f"--seeded needs a registered factory name as --model "
                          f"({', '.join(factories)}), got {name!r}: a hub model has its weights.")
    if name in factories and not weights and not seeded:
        raise ConfigError(f"--model {name} is a factory name without weights: give --weights "
                          "FILE, a hub id (python -m keras_onebit hub list), or --seeded to "
                          "export a randomly initialised model on purpose.")
    hub_ids = common.hub_ids()
    if name != "default" and name not in factories and name not in hub_ids:
        raise common.unknown_model("--model", name, factories, hub_ids)


def load_weights_file(name, path):
    """The model in a .onebit / .keras file, or factory `name` with .weights.h5 weights;
    a file Keras cannot read, or weights that do not fit, is a ConfigError."""
    from keras_onebit.export import load_packed

    if path.suffix == ".onebit":
        return load_packed(path)  # raises ExportError itself
    if path.suffix == ".keras":
        return common.load_keras_file(path, "--weights")
    regular_file(path, WEIGHT_KINDS, ConfigError)
    try:
        model = models.get("wrn_20_1" if name == "default" else name)
        model.load_weights(path)
        return model
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as e:
        if isinstance(e, Error):  # already says what is wrong
            raise
        raise ConfigError(f"--weights {path}: Keras cannot load it into {name!r} ({e}); "
                          "check the file and --model.") from e


def seeded_model(name, images, seed=0, **kwargs):
    """A stand-in: `models.get(name)` after `keras.utils.set_random_seed(seed)`,
    with BN statistics calibrated on the real `images`."""
    import keras

    from keras_onebit.export.fallback import calibrate_batchnorm

    keras.utils.set_random_seed(seed)
    return calibrate_batchnorm(models.get(name, **kwargs), images)


def resolve_model(name, weights, calibration, seed=0):
    """(model, export name, description of where it came from). A hub model that
    cannot be loaded is a HubError: never replaced by random weights."""
    if weights:
        path = pathlib.Path(weights)
        model = load_weights_file(name, path)
        return model, (model.name if name == "default" else name), f"weights {path}"
    if name in models.list_models():  # check_model_flags let it through: --seeded
        model = seeded_model(name, calibration, seed=seed)
        return model, f"{name}-seeded", (
            f"seeded {name} (random weights on request, --seeded: set_random_seed({seed}), BN "
            f"statistics from {len(calibration)} real training images)")
    return load_hub_model(name)


def load_hub_model(name):
    """(model, hub id, description) of hub id `name` or of the hub default."""
    from keras_onebit import hub

    model_id = hub.default_model_id() if name == "default" else name
    what = f"the default hub model {model_id}" if name == "default" else f"hub model {model_id}"
    try:
        model = hub.load(model_id)
    except (Error, OSError, ValueError, KeyError) as e:
        reason = one_line(e, 10**6).rstrip(".") or type(e).__name__
        raise hub.HubError(f"{what} cannot be loaded ({reason}); nothing was exported. Restore "
                           "its files (git checkout pretrained/, or reinstall keras_onebit) and "
                           "check them with python -m keras_onebit hub verify.") from e
    return model, model_id, f"hub model {model_id}"


def main(argv):
    """Checks the flags and the output folder, then exports (see the module docstring)."""
    common.no_positional(argv, "export")
    from absl import logging

    logging.set_verbosity(logging.ERROR)  # the converter's INFO / deprecation lines
    from keras_onebit.data import load_dataset
    from keras_onebit.export import ExportError
    from keras_onebit.export.bundle import export_bundle, parse_formats, prepare_dir
    from keras_onebit.export.report import write

    formats = parse_formats(FLAGS.formats)
    check_model_flags(FLAGS.model, FLAGS.weights, FLAGS.seeded)
    common.creatable_folder(FLAGS.out, "--out")  # fail early, but create nothing yet
    log(f"loading {FLAGS.dataset}")
    data = load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir)
    x_test = data["x_test"]
    mask = data.get("test_exact_mask")
    if mask is not None:  # exact images first (the rest of this copy went through JPEG)
        x_test = x_test[list(mask.nonzero()[0]) + list((~mask).nonzero()[0])]
    images = x_test[:FLAGS.images].astype("float32")
    representative = data["x_train"][:FLAGS.representative].astype("float32")
    log(f"resolving model {FLAGS.model!r}")
    model, name, source = resolve_model(FLAGS.model, FLAGS.weights,
                                        data["x_train"][:1000], FLAGS.seed)
    log(f"model: {source}")
    common.check_input_shape(model, images, "--model", FLAGS.dataset)
    common.writable_folder(FLAGS.out, "--out")  # only once the model is known: a failed
    prepare_dir(pathlib.Path(FLAGS.out))        # load leaves nothing behind
    out_dir = pathlib.Path(FLAGS.out) / name
    command = "python -m keras_onebit export " + " ".join(sys.argv[2:] if len(
        sys.argv) > 2 and sys.argv[1] == "export" else sys.argv[1:])
    exact = min(int(mask.sum()), len(images)) if mask is not None else None
    description = f"{len(images)} {FLAGS.dataset} test images" + (
        f" ({exact} exact, {len(images) - exact} JPEG copies)" if exact is not None else "")
    try:
        with common.native_stderr_silenced():
            result = export_bundle(model, out_dir, images, representative, formats=formats,
                                   name=name, source=source, micro_images=FLAGS.micro_images,
                                   threads=FLAGS.threads, latency_runs=FLAGS.latency_runs,
                                   command=command.strip(), progress=print,
                                   expansion_record=FLAGS.expansion_record)
        result["images"]["description"] = description
        write(out_dir, result)
    except OSError as e:  # a full disk, a folder removed or made read-only meanwhile
        where = f" ({e.filename})" if e.filename else ""
        raise ExportError(f"exporting into {out_dir} failed: {e.strerror or e}{where}; free "
                          "disk space or choose another --out.") from e
    log(f"wrote {out_dir}/ in {result['seconds']:.0f} s:")
    rows = result["formats"]
    fmt_width = max(map(len, rows))
    file_width = max(len(row["file"]) for row in rows.values())
    for fmt, row in rows.items():
        log(f"  {fmt:{fmt_width}s} {row['file']:{file_width}s} {row['bytes']:>12,} bytes  "
            f"{row['ratio_to_limit']:.2f}x limit")
    return 0
