"""`python -m keras_onebit train`: train a model with the papers' recipe.

    python -m keras_onebit train --model wrn_20_1 --dataset cifar10 --epochs 30 \\
        --out runs/wrn_20_1-cifar10-1bit [--float] [--resume] [--hub pretrained]

Writes the run folder (--out, default runs/<model>-<dataset>-<1bit|float>):
checkpoint.keras every epoch, log.csv, curves.png, final.keras, metrics.json.
"""

import pathlib
import shlex
import sys

from absl import flags

from keras_onebit import data, models
from keras_onebit.cli import common
from keras_onebit.cli.common import no_positional, writable_folder
from keras_onebit.errors import ConfigError
from keras_onebit.training import distribute

flags.DEFINE_enum("model", "wrn_20_1", models.list_models(), "Registered model name.")
flags.DEFINE_enum("dataset", "cifar10", list(data.CLASSES), "Data set.")
flags.DEFINE_integer("epochs", 30, "Epochs; SGDR cycles end at 2, 6, 14, 30, 62, 126, 254.",
                     lower_bound=1)
flags.DEFINE_bool("float", False, "Train the full-precision twin with the same recipe.")
flags.DEFINE_integer("batch_size", 125, "Global batch size.", lower_bound=1)
flags.DEFINE_float("max_lr", 0.1, "Learning rate at each (re)start.", lower_bound=0.0)
flags.DEFINE_float("min_lr", 1e-5, "Learning rate at the end of each cycle.", lower_bound=0.0)
flags.DEFINE_integer("first_cycle", 2, "Epochs in the first cosine cycle (each next doubles).",
                     lower_bound=1)
flags.DEFINE_float("weight_decay", 5e-4, "Decay on latent conv weights (Keras L2 gets half).",
                   lower_bound=0.0)
flags.DEFINE_enum("augmentation", "flip_crop", ["none", "flip_crop", "flip_crop_cutout"],
                  "Training augmentation (MNIST: none).")
flags.DEFINE_bool("zero_momentum_at_restart", True, "Zero SGD momentum at each warm restart.")
flags.DEFINE_integer("recompute_bn_batches", 0,
                     "If > 0, recompute BN statistics from this many augmented batches at the end.",
                     lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and augmentation.", lower_bound=0)
flags.DEFINE_string("data_dir", None,
                    "Data directory (default $KERAS_ONEBIT_DATA or ../shared/data).")
flags.DEFINE_bool("download", False,
                  "With no local copy, download MNIST / CIFAR (the files keras.datasets uses, "
                  "sha256-checked; needs network).")
flags.DEFINE_integer("train_limit", 0, "Use only the first N training images (0: all).",
                     lower_bound=0)
flags.DEFINE_integer("test_limit", 0, "Evaluate (each epoch and at the end) on only the first N "
                     "test images (0: all; CIFAR-10's first 1000 are its exact ones): for "
                     "smoke runs.", lower_bound=0)
flags.DEFINE_string("out", None, "Run folder (default runs/<model id>).")
flags.DEFINE_bool("resume", False, "Continue from the run folder's last checkpoint.")
flags.DEFINE_bool("overwrite", False, "Start over in a run folder that holds a run (its "
                  "checkpoint, log and final model are replaced).")
flags.DEFINE_enum("strategy", "default", list(distribute.STRATEGIES),
                  "tf.distribute strategy (TensorFlow), or data_parallel (JAX: "
                  "keras.distribution.DataParallel).")
flags.DEFINE_list("devices", [], "Devices for --strategy mirrored (default: all GPUs or CPU) "
                  "or data_parallel (default: all; e.g. cpu:0,cpu:1).")
flags.DEFINE_string("hub", None, "Also write a hub entry <hub>/<model id>/ (e.g. pretrained).")
flags.DEFINE_bool("hub_default", False, "Make the hub entry the manifest default.")
flags.DEFINE_string("hub_notes", "", "Free text for the hub entry's model card.")
flags.DEFINE_integer("threads", 0, "TensorFlow intra/inter-op threads (0: default).",
                     lower_bound=0)
flags.DEFINE_integer("iterative_epochs", 0,
                     "Iterative layer binarization (Lan): start float and make one more conv "
                     "one-bit every N epochs (0: all one-bit from the start).", lower_bound=0)
flags.DEFINE_string("iterative_order", "forward",
                    "Order of iterative binarization: forward, reverse, random, or a "
                    "comma-separated list of layer names.")
flags.DEFINE_enum("dtype_policy", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Keras dtype policy while training (mixed_bfloat16: ~1.4x faster on CPUs "
                  "with AMX, ~7x slower on CPUs without bfloat16 instructions); the shipped "
                  "model is float32 either way. With --resume, another policy than the "
                  "checkpoint's rebuilds the model in it (same weights and optimizer state).")
flags.DEFINE_bool("batch_norm", True, "False: the WRN variant without batch norm (shifted "
                  "ReLU max(x, -1); McDonnell et al., ACIRS 2019).")
flags.DEFINE_enum("input_storage", "none", ["none", "stochastic_1bit"],
                  "What each conv keeps of its input for the backward pass: all of it, or one "
                  "random bit per element (McDonnell et al., NICE 2017; "
                  "keras_onebit.activation_storage).")
flags.DEFINE_string("storage_scale", "max", "Scale s of --input_storage stochastic_1bit: max, "
                    "p<percentile> (e.g. p99) or a positive float.")
flags.DEFINE_string("teacher", None, "Knowledge distillation: a .npy of teacher probabilities, "
                    "one row per training image (python -m keras_onebit teacher).")
flags.DEFINE_float("distill_temperature", 4.0, "Distillation temperature T.", lower_bound=0.0)
flags.DEFINE_float("distill_weight", 0.9, "Share w of the distillation term (the label's "
                   "cross-entropy gets 1 - w).", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_integer("distill_from_epoch", 0, "Distil from this epoch on: 0 or the end of a "
                     "warm-restart cycle (2, 6, 14, 30, ...); plain cross-entropy before.",
                     lower_bound=0)
flags.DEFINE_integer("verbose", 1, "Keras fit verbosity: 0 silent, 1 progress bar, 2 a line "
                     "per epoch.", lower_bound=0, upper_bound=2)
flags.register_multi_flags_validator(
    ["min_lr", "max_lr"], lambda f: f["min_lr"] <= f["max_lr"],
    message="--min_lr must not exceed --max_lr.")
flags.register_multi_flags_validator(
    ["train_limit", "batch_size"],
    lambda f: not f["train_limit"] or f["train_limit"] >= f["batch_size"],
    message="--train_limit must be 0 (all images) or at least --batch_size.")
FLAGS = flags.FLAGS
# Flags that do nothing unless another one is set: {flag: (needs, test on FLAGS)}.
NEEDS = {
    "distill_from_epoch": ("--teacher", lambda f: f.teacher),
    "distill_temperature": ("--teacher", lambda f: f.teacher),
    "distill_weight": ("--teacher", lambda f: f.teacher),
    "storage_scale": ("--input_storage stochastic_1bit", lambda f: f.input_storage != "none"),
    "iterative_order": ("--iterative_epochs > 0", lambda f: f.iterative_epochs),
    "hub_default": ("--hub", lambda f: f.hub),
    "hub_notes": ("--hub", lambda f: f.hub),
    "devices": ("--strategy mirrored or data_parallel",
                lambda f: f.strategy in ("mirrored", "data_parallel")),
}


def check_flag_combinations():
    """Refuses a flag given on the command line that has no effect without another."""
    for name, (needs, active) in NEEDS.items():
        if FLAGS[name].present and not active(FLAGS):
            raise ConfigError(f"--{name} has no effect without {needs}; drop it or add "
                              f"{needs.split()[0]}.")
    if FLAGS.resume and FLAGS.overwrite:
        raise ConfigError("--resume continues the run and --overwrite starts it over: give "
                          "one of the two.")


def config_from_flags():
    """The RunConfig the flags describe."""
    from keras_onebit.training.loop import RunConfig

    config = RunConfig(
        model=FLAGS.model, dataset=FLAGS.dataset, epochs=FLAGS.epochs, binary=not FLAGS.float,
        batch_size=FLAGS.batch_size, max_lr=FLAGS.max_lr, min_lr=FLAGS.min_lr,
        first_cycle=FLAGS.first_cycle, weight_decay=FLAGS.weight_decay,
        augmentation=FLAGS.augmentation, zero_momentum_at_restart=FLAGS.zero_momentum_at_restart,
        recompute_bn_batches=FLAGS.recompute_bn_batches, seed=FLAGS.seed,
        data_dir=FLAGS.data_dir, download=FLAGS.download, train_limit=FLAGS.train_limit,
        test_limit=FLAGS.test_limit, strategy=FLAGS.strategy,
        devices=tuple(FLAGS.devices), iterative_epochs=FLAGS.iterative_epochs,
        iterative_order=FLAGS.iterative_order, verbose=FLAGS.verbose,
        dtype_policy=FLAGS.dtype_policy, batch_norm=FLAGS.batch_norm,
        input_storage=FLAGS.input_storage, storage_scale=FLAGS.storage_scale,
        teacher=FLAGS.teacher, distill_temperature=FLAGS.distill_temperature,
        distill_weight=FLAGS.distill_weight, distill_from_epoch=FLAGS.distill_from_epoch)
    config.out_dir = FLAGS.out or f"runs/{config.model_id}"
    return config


def check_run_folder(out_dir, resume, overwrite):
    """A folder that holds a run is continued (--resume) or replaced (--overwrite),
    never replaced without being asked."""
    from keras_onebit.training.loop import CHECKPOINT, STATE

    folder = pathlib.Path(out_dir)
    held = [name for name in (STATE, CHECKPOINT, "final.keras") if (folder / name).exists()]
    if held and not (resume or overwrite):
        raise ConfigError(f"--out {out_dir} holds a run ({', '.join(held)}): continue it with "
                          "--resume, replace it with --overwrite, or choose another --out.")


def main(argv):
    """Checks the flags and the run folder, then trains (see the module docstring)."""
    no_positional(argv, "train")
    check_flag_combinations()
    config = config_from_flags()
    config.factory_kwargs()  # --iterative_epochs with --float fails here, before any work
    config.check_distillation()
    if config.teacher:
        common.existing_file(config.teacher, "--teacher", "a .npy file of teacher "
                             "probabilities (python -m keras_onebit teacher)")
    writable_folder(config.out_dir, "--out")
    check_run_folder(config.out_dir, FLAGS.resume, FLAGS.overwrite)
    if FLAGS.hub:
        writable_folder(FLAGS.hub, "--hub")
    import keras

    from keras_onebit.training import loop
    from keras_onebit.training.loop import set_threads, train

    set_threads(FLAGS.threads)
    keras.utils.set_random_seed(FLAGS.seed)
    model, metrics = train(config, resume=FLAGS.resume)
    print("final:", ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in metrics.items()))
    if FLAGS.hub and distribute.is_chief():
        from keras_onebit import hub

        command = "python -m keras_onebit " + shlex.join(sys.argv[1:])
        evaluate = f"eval --limit {config.test_limit} " if config.test_limit else "eval "
        check = (f"python -m keras_onebit {evaluate}--model {config.model_id} "
                 f"--dataset {config.dataset}")
        metrics = {**metrics, "command": check}
        path = hub.save_entry(model, f"{FLAGS.hub}/{config.model_id}", config.model_id,
                              factory=config.model,
                              factory_kwargs={"binary": config.binary,
                                              "classes": model.output_shape[-1],
                                              **config.factory_kwargs()},
                              dataset=config.dataset, metrics=metrics,
                              training_command=command, default=FLAGS.hub_default or None,
                              notes=FLAGS.hub_notes,
                              extra_files=[pathlib.Path(config.out_dir) / name
                                           for name in (loop.LOG, loop.CURVES)])
        print("hub entry:", path)
