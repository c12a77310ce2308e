"""`python -m keras_onebit train`: train a model with the papers' recipe.

    python -m keras_onebit train --model wrn_20_1 --dataset cifar10 --epochs 30 \
        --out runs/wrn_20_1-cifar10-1bit [--float] [--resume] [--hub pretrained]
"""

import pathlib
import shlex
import shutil
import sys

from absl import flags

from keras_onebit.training import distribute
from keras_onebit.training.loop import RunConfig, set_threads, train

flags.DEFINE_string("model", "wrn_20_1", "Registered model name.")
flags.DEFINE_string("dataset", "cifar10", "mnist, cifar10, cifar100 or svhn.")
flags.DEFINE_integer("epochs", 30, "Epochs; SGDR cycles end at 2, 6, 14, 30, 62, 126, 254.")
flags.DEFINE_bool("float", False, "Train the full-precision twin with the same recipe.")
flags.DEFINE_integer("batch_size", 125, "Global batch size.")
flags.DEFINE_float("max_lr", 0.1, "Learning rate at each (re)start.")
flags.DEFINE_float("min_lr", 1e-5, "Learning rate at the end of each cycle.")
flags.DEFINE_integer("first_cycle", 2, "Epochs in the first cosine cycle (each next doubles).")
flags.DEFINE_float("weight_decay", 5e-4, "Decay on latent conv weights (Keras L2 gets half).")
flags.DEFINE_enum("augmentation", "flip_crop", ["none", "flip_crop", "flip_crop_cutout"],
                  "Training augmentation (MNIST: none).")
flags.DEFINE_bool("zero_momentum_at_restart", True, "Zero SGD momentum at each warm restart.")
flags.DEFINE_integer("recompute_bn_batches", 0,
                     "If > 0, recompute BN statistics from this many augmented batches at the end.")
flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and augmentation.")
flags.DEFINE_string("data_dir", None,
                    "Data directory (default $KERAS_ONEBIT_DATA or ../shared/data).")
flags.DEFINE_alias("data-dir", "data_dir")
flags.DEFINE_bool("download", False,
                  "With no local copy, fetch MNIST / CIFAR through keras.datasets (needs network).")
flags.DEFINE_integer("train_limit", 0, "Use only the first N training images (0: all).")
flags.DEFINE_string("out", None, "Run folder (default runs/<model id>).")
flags.DEFINE_bool("resume", False, "Continue from the run folder's last checkpoint.")
flags.DEFINE_enum("strategy", "default", list(distribute.STRATEGIES), "tf.distribute strategy.")
flags.DEFINE_list("devices", [], "Devices for --strategy mirrored (default: all GPUs or CPU).")
flags.DEFINE_string("hub", None, "Also write a hub entry <hub>/<model id>/ (e.g. pretrained).")
flags.DEFINE_bool("hub_default", False, "Make the hub entry the manifest default.")
flags.DEFINE_string("hub_notes", "", "Free text for the hub entry's model card.")
flags.DEFINE_integer("threads", 0, "TensorFlow intra/inter-op threads (0: default).")
flags.DEFINE_integer("iterative_epochs", 0,
                     "Iterative layer binarization (Lan): start float and make one more conv "
                     "one-bit every N epochs (0: all one-bit from the start).")
flags.DEFINE_string("iterative_order", "forward",
                    "Order of iterative binarization: forward, reverse, random, or a "
                    "comma-separated list of layer names.")
flags.DEFINE_enum("dtype_policy", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Keras dtype policy while training (mixed_bfloat16: ~1.4x faster on CPUs "
                  "with AMX); the shipped model is float32 either way.")
flags.DEFINE_integer("verbose", 1, "Keras fit verbosity: 1 progress bar, 2 a line per epoch.")
FLAGS = flags.FLAGS


def config_from_flags():
    config = RunConfig(
        model=FLAGS.model, dataset=FLAGS.dataset, epochs=FLAGS.epochs, binary=not FLAGS.float,
        batch_size=FLAGS.batch_size, max_lr=FLAGS.max_lr, min_lr=FLAGS.min_lr,
        first_cycle=FLAGS.first_cycle, weight_decay=FLAGS.weight_decay,
        augmentation=FLAGS.augmentation, zero_momentum_at_restart=FLAGS.zero_momentum_at_restart,
        recompute_bn_batches=FLAGS.recompute_bn_batches, seed=FLAGS.seed,
        data_dir=FLAGS.data_dir, download=FLAGS.download, train_limit=FLAGS.train_limit,
        strategy=FLAGS.strategy,
        devices=tuple(FLAGS.devices), iterative_epochs=FLAGS.iterative_epochs,
        iterative_order=FLAGS.iterative_order, verbose=FLAGS.verbose,
        dtype_policy=FLAGS.dtype_policy)
    config.out_dir = FLAGS.out or f"runs/{config.model_id}"
    return config


def main(argv):
    del argv
    import keras

    set_threads(FLAGS.threads)
    keras.utils.set_random_seed(FLAGS.seed)
    config = config_from_flags()
    model, metrics = train(config, resume=FLAGS.resume)
    print("final:", ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in metrics.items()))
    if FLAGS.hub and distribute.is_chief():
        from keras_onebit import hub

        command = "python -m keras_onebit " + shlex.join(sys.argv[1:])
        metrics = {**metrics, "command": f"python -m keras_onebit eval --model "
                                         f"{config.model_id} --dataset {config.dataset}"}
        path = hub.save_entry(model, f"{FLAGS.hub}/{config.model_id}", config.model_id,
                              factory=config.model,
                              factory_kwargs={"binary": config.binary,
                                              "classes": model.output_shape[-1],
                                              **config.factory_kwargs()},
                              dataset=config.dataset, metrics=metrics,
                              training_command=command, default=FLAGS.hub_default or None,
                              notes=FLAGS.hub_notes)
        for name in ("log.csv", "curves.png"):
            shutil.copyfile(pathlib.Path(config.out_dir) / name, pathlib.Path(path) / name)
        print("hub entry:", path)
