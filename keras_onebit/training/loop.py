"""A training run: the papers' recipe around `model.fit`, with per-epoch
checkpoints, resume, a CSV log, a training-curve PNG and a final evaluation.

Files in `out_dir`: checkpoint.keras (model + optimizer, every epoch),
state.json (epochs done), log.csv, curves.png, final.keras, metrics.json.

`dtype_policy="mixed_bfloat16"` trains with bfloat16 activations (float32
latent weights and BN statistics); the final model is rebuilt in float32,
so final.keras, the metrics and a hub entry are of the model as shipped.
"""

import contextlib
import dataclasses
import json
import pathlib
import zipfile

import keras
import numpy as np

from keras_onebit import data as datasets
from keras_onebit import fileio, model_files, models
from keras_onebit.errors import ConfigError
from keras_onebit.fileio import regular_file
from keras_onebit.lazy import tensorflow as tf
from keras_onebit.training import distribute
from keras_onebit.training.distill import (
    DistillationLoss,
    LabelAccuracy,
    check_probabilities,
    with_teacher,
)
from keras_onebit.training.iterative import ORDERS, IterativeBinarization
from keras_onebit.training.pipeline import eval_dataset, train_dataset
from keras_onebit.training.plots import plot_curves
from keras_onebit.training.schedules import (
    WarmRestartCosine,
    ZeroMomentumAtRestart,
    restart_epochs,
)

CHECKPOINT, STATE, LOG, CURVES = "checkpoint.keras", "state.json", "log.csv", "curves.png"
MAX_STATE_BYTES = 1 << 16


@dataclasses.dataclass
class RunConfig:
    model: str = "wrn_20_1"
    dataset: str = "cifar10"
    epochs: int = 30
    binary: bool = True
    batch_size: int = 125
    max_lr: float = 0.1
    min_lr: float = 1e-5
    first_cycle: int = 2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augmentation: str = "flip_crop"
    zero_momentum_at_restart: bool = True
    recompute_bn_batches: int = 0
    seed: int = 0
    data_dir: str | None = None
    download: bool = False
    train_limit: int = 0
    test_limit: int = 0  # evaluate (each epoch and at the end) on the first N test images
    out_dir: str = "runs/wrn_20_1-cifar10-1bit"
    strategy: str = "default"
    devices: tuple = ()
    iterative_epochs: int = 0
    iterative_order: str = "forward"
    verbose: int = 1
    dtype_policy: str = "float32"
    batch_norm: bool = True
    input_storage: str = "none"  # or "stochastic_1bit" (keras_onebit.activation_storage)
    storage_scale: str = "max"  # "max", "p<percentile>" (e.g. "p99") or a float
    teacher: str | None = None  # .npy of teacher probabilities, one row per training image
    distill_temperature: float = 4.0
    distill_weight: float = 0.9
    distill_from_epoch: int = 0  # 0 or the end of a warm-restart cycle (2, 6, 14, 30, ...)

    @property
    def model_id(self):
        return f"{self.model}-{self.dataset}-{'1bit' if self.binary else 'float'}"

    def factory_kwargs(self):
        """Factory arguments beyond binary / classes that this run needs."""
        kwargs = {}
        if not self.batch_norm:
            kwargs["batch_norm"] = False  # the no-BN shifted-ReLU WRN (ACIRS 2019)
        if self.input_storage != "none":
            kwargs["input_storage"] = self.storage()
        if not self.iterative_epochs:
            return kwargs
        if not self.binary:
            raise ConfigError("Iterative binarization (iterative_epochs > 0) needs a one-bit run.")
        return {**kwargs, "switchable": True}

    def storage(self):
        """The factory's `input_storage`: "stochastic_1bit" for the default scale,
        else a StochasticBinaryStorage config (JSON, for the hub entry)."""
        from keras_onebit.activation_storage import StochasticBinaryStorage

        if self.input_storage != "stochastic_1bit":
            raise ConfigError(f"input_storage must be 'none' or 'stochastic_1bit', "
                              f"got {self.input_storage!r}.")
        scale = self.storage_scale
        if scale == "max":
            return "stochastic_1bit"
        try:
            storage = (StochasticBinaryStorage("percentile", float(scale[1:]))
                       if scale.startswith("p") else StochasticBinaryStorage(float(scale)))
        except ValueError as e:
            raise ConfigError(f"storage_scale must be 'max', 'p<percentile>' (e.g. p99) or a "
                              f"positive float, got {scale!r}.") from e
        return keras.saving.serialize_keras_object(storage)

    def check_distillation(self):
        """Raises ConfigError unless the distillation settings can be run."""
        if not self.teacher:
            return
        switches = [0] + [e for e in restart_epochs(self.first_cycle, count=12)
                          if e < self.epochs]
        if self.distill_from_epoch not in switches:
            raise ConfigError(
                f"distill_from_epoch must be 0 or the end of a warm-restart cycle before epoch "
                f"{self.epochs} ({', '.join(map(str, switches))}), got {self.distill_from_epoch}:"
                " the switch starts a fresh optimizer, which only a restart makes harmless.")
        DistillationLoss(self.distill_temperature, self.distill_weight)  # checks both

    def iterative_callbacks(self):
        if not self.iterative_epochs:
            return []
        order = self.iterative_order
        if order not in ORDERS:
            order = [name.strip() for name in order.split(",") if name.strip()]
        return [IterativeBinarization(order, self.iterative_epochs, seed=self.seed)]


def write_json(path, value):
    """Atomic write (temp file in the same folder, then rename)."""
    fileio.write_json(path, value, error=ConfigError)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves model + optimizer and the epoch count after every epoch."""

    def __init__(self, out_dir, is_chief=True):
        super().__init__()
        self.out_dir = pathlib.Path(out_dir)
        self.is_chief = is_chief

    def on_epoch_end(self, epoch, logs=None):
        target = self.out_dir if self.is_chief else self.out_dir / f"worker_{distribute.task_id()}"
        target.mkdir(parents=True, exist_ok=True)
        model_files.save_model(self.model, target / CHECKPOINT)
        write_json(target / STATE, {"epochs_done": epoch + 1,
                                    "step": int(self.model.optimizer.iterations.numpy())})


class TrainingDiverged(ConfigError):
    """The loss became inf or NaN, or rose far above where it started: the run
    stopped (its last checkpoint is kept)."""


# A loss (Keras' running mean of the epoch) above RISE_FACTOR times the first
# loss of the `fit` call, or RISE_FACTOR if that was below 1, has diverged:
# a cross-entropy of 100 gives the label a probability of e^-100.
RISE_FACTOR = 100.0


class StopOnDivergence(keras.callbacks.Callback):
    """Stops a run whose loss is inf or NaN, or has risen past RISE_FACTOR times
    its first value (a real-valued Bi-Real net at too high a learning rate went
    from 4.2 to 5.8e11 in one epoch, still finite), with one line naming the
    epoch, the step and the learning rate (Keras' TerminateOnNaN only stops,
    silently, and only on inf or NaN)."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.limit = None

    def on_train_begin(self, logs=None):
        self.limit = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if self.limit is None and np.isfinite(loss):
            self.limit = RISE_FACTOR * max(loss, 1.0)
            return
        if not np.isfinite(loss):
            what = f"the loss became {loss}"
        elif loss > self.limit:
            what = (f"the loss rose to {loss:.3g}, past {self.limit:.3g} ({RISE_FACTOR:g}x its "
                    f"first value in this run, {RISE_FACTOR:g} at least)")
        else:
            return
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        raise TrainingDiverged(
            f"{what} in epoch {self.epoch + 1} (step {batch + 1}, "
            f"learning rate {rate:.3g}): the run diverged and stopped; the checkpoint of "
            "the last finished epoch is kept. Lower --max_lr or check the data.")


class LogLearningRate(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def make_model(config):
    """The run's model, uncompiled, in the current dtype policy."""
    return models.get(config.model, binary=config.binary,
                      classes=datasets.CLASSES[config.dataset],
                      input_shape=datasets.INPUT_SHAPES[config.dataset],
                      weight_decay=config.weight_decay, **config.factory_kwargs())


def build(config, steps_per_epoch):
    model = make_model(config)
    distil = bool(config.teacher) and config.distill_from_epoch == 0
    return compile_model(model, config, steps_per_epoch, distil)


def compile_model(model, config, steps_per_epoch, distil, first_step=0):
    """Compiles `model` with the run's SGD and warm-restart schedule, and the
    cross-entropy or (`distil`) the distillation loss; a fresh optimizer whose
    step count starts at `first_step` (so the schedule goes on from there)."""
    schedule = WarmRestartCosine(steps_per_epoch, config.max_lr, config.min_lr,
                                 config.first_cycle)
    if distil:
        loss = DistillationLoss(config.distill_temperature, config.distill_weight)
        metrics = [LabelAccuracy()]
    else:
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=config.momentum),
                  loss=loss, metrics=metrics)
    if first_step:
        model.optimizer.build(model.trainable_variables)
        model.optimizer.iterations.assign(first_step)
    return model


def load_teacher(path, images, classes):
    """The teacher probabilities in `path` (.npy, read without pickle and
    memory-mapped, so its shape is checked before anything is read); `images`
    the row counts accepted (all training images, or the --train_limit first).

    Raises:
        ConfigError: an unreadable file, another shape, or rows that are not
            probability distributions.
    """
    regular_file(path, "a .npy file of teacher probabilities", ConfigError)
    if zipfile.is_zipfile(path):
        raise ConfigError(f"{path}: a .npz (zip) file, not a .npy file; the teacher "
                          "probabilities are one .npy array (python -m keras_onebit teacher "
                          "--out FILE.npy).")
    try:
        probs = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read teacher probabilities ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:200]}).") from e
    rows = probs.shape[0] if probs.ndim else None
    return check_probabilities(probs, rows if rows in images else images[0], classes, path)


def phases(config, start):
    """[(first epoch, end epoch, distil)] of the epochs still to run: plain
    cross-entropy before `distill_from_epoch`, distillation from there on."""
    switch = config.distill_from_epoch if config.teacher else config.epochs
    out = []
    if start < min(switch, config.epochs):
        out.append((start, min(switch, config.epochs), False))
    if config.teacher and max(start, switch) < config.epochs:
        out.append((max(start, switch), config.epochs, True))
    return out


def _start_over(out_dir):
    return (f"remove {CHECKPOINT} and {STATE} from {out_dir} to start the run over, "
            "or run without --resume")


def epochs_done(out_dir):
    """Epochs recorded in `out_dir`/state.json (0 without the file).

    Raises:
        ConfigError: a state.json that is not `{"epochs_done": <int >= 0>, ...}`.
    """
    state = pathlib.Path(out_dir) / STATE
    if not state.exists():
        return 0
    regular_file(state, "the run's state.json", ConfigError, MAX_STATE_BYTES)
    try:
        done = json.loads(state.read_text()).get("epochs_done")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, AttributeError) as e:
        raise ConfigError(f"{state}: cannot resume, the file is unreadable or corrupt "
                          f"({type(e).__name__}); {_start_over(out_dir)}.") from e
    if type(done) is not int or done < 0:
        raise ConfigError(f"{state}: cannot resume, 'epochs_done' is {done!r}, not an "
                          f"integer >= 0; {_start_over(out_dir)}.")
    return done


def load_checkpoint(out_dir):
    """The model + optimizer saved in `out_dir`/checkpoint.keras, for --resume.

    Raises:
        ConfigError: a missing, truncated or corrupt checkpoint (one line, naming
            the file and what to remove to start over).
    """
    path = pathlib.Path(out_dir) / CHECKPOINT
    if path.exists():
        regular_file(path, "the run's checkpoint.keras", ConfigError)
    if not path.is_file():
        raise ConfigError(f"{path}: cannot resume, the checkpoint is missing although "
                          f"{STATE} records finished epochs; {_start_over(out_dir)}.")
    return model_files.load_model(path, f"{path}: cannot resume", ConfigError,
                                  f"; {_start_over(out_dir)}")


def in_run_policy(model, config, steps_per_epoch):
    """`model`, a restored checkpoint, in the run's dtype policy (the global one
    while the run trains): itself when its layers already compute so, else the
    run's model rebuilt in that policy with the checkpoint's weights, loss and
    optimizer state (step count, momentum). A run so moves between machines:
    bfloat16 pays on CPUs with bfloat16 instructions (AMX, AVX512_BF16) and
    costs several times float32's step time without them (docs/TRAINING.md)."""
    fresh = make_model(config)
    saved, wanted = layer_policies(model), layer_policies(fresh)
    if saved == wanted:
        return model
    compile_model(fresh, config, steps_per_epoch, isinstance(model.loss, DistillationLoss))
    fresh.set_weights(model.get_weights())
    copy_optimizer_state(model.optimizer, fresh.optimizer, fresh.trainable_variables)
    was = next((a for a, b in zip(saved, wanted, strict=False) if a != b), "another policy")
    print(f"{config.out_dir}: the checkpoint computes in {was}; resumed in "
          f"{config.dtype_policy} with its weights and optimizer state")
    return fresh


def layer_policies(model):
    return [layer.dtype_policy.name for layer in model.layers]


def copy_optimizer_state(source, target, variables):
    """Builds `target` for `variables` and gives it `source`'s state; the loss
    scaling of mixed_float16 (a LossScaleOptimizer around the SGD) is left out."""
    source = getattr(source, "inner_optimizer", source)
    target = getattr(target, "inner_optimizer", target)
    target.build(variables)
    shapes = [tuple(v.shape) for v in source.variables]
    if shapes != [tuple(v.shape) for v in target.variables]:
        raise ConfigError(f"the checkpoint's optimizer state ({len(shapes)} variables) does not "
                          "fit the run's model; resume with the checkpoint's --dtype_policy.")
    for old, new in zip(source.variables, target.variables, strict=True):
        new.assign(old)


def first_test_images(data, count):
    """The data set with only its first `count` test images (`--test_limit`)."""
    return {key: value[:count] if key in ("x_test", "y_test", "test_exact_mask") else value
            for key, value in data.items()}


def prepare(config, resume):
    """Loads the data and builds (or restores) the model inside the strategy."""
    data = datasets.load_dataset(config.dataset, config.data_dir, config.download)
    images = len(data["x_train"])
    if config.train_limit:
        data["x_train"] = data["x_train"][: config.train_limit]
        data["y_train"] = data["y_train"][: config.train_limit]
    if config.test_limit:
        data = first_test_images(data, config.test_limit)
    if config.teacher:
        data["teacher"] = load_teacher(config.teacher, (images, len(data["x_train"])),
                                       datasets.CLASSES[config.dataset])[:len(data["x_train"])]
    steps = len(data["x_train"]) // config.batch_size
    if steps == 0:
        raise ConfigError(f"batch_size {config.batch_size} is larger than the "
                          f"{len(data['x_train'])} training images: an epoch would have no "
                          "step; lower --batch_size or use more images.")
    start = epochs_done(config.out_dir) if resume else 0
    strategy = distribute.make_strategy(config.strategy, config.devices)
    with strategy.scope():
        if start:
            model = in_run_policy(load_checkpoint(config.out_dir), config, steps)
        else:
            model = build(config, steps)
    distribute.patch_for_multi_worker(model, strategy, data["x_train"], data["y_train"])
    return data, model, steps, start, strategy


@contextlib.contextmanager
def dtype_policy(name):
    """Keras' global dtype policy set to `name` inside the block only.

        with training.dtype_policy("mixed_float16"):
            model = models.wrn_20_10()

    Args:
        name: a Keras dtype policy name, e.g. "float32" or "mixed_float16".

    Returns:
        A context manager; the previous policy is restored on exit, also
        after an error.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def float32_copy(model, config):
    """The trained model rebuilt in float32 with the same weights (the model
    a mixed-precision run ships); `model` itself when it is float32 already
    (judged by its layers)."""
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    with dtype_policy("float32"):
        copy = make_model(config)
    copy.set_weights(model.get_weights())
    return copy


def evaluate(model, data):
    """Top-1 accuracy on the full test set and, if marked, the exact images."""
    result = {"test_images": len(data["x_test"])}
    probs = model.predict(eval_dataset(data["x_test"], data["y_test"]), verbose=0)
    correct = np.argmax(probs, axis=-1) == data["y_test"]
    result["test_accuracy"] = float(correct.mean())
    if "test_exact_mask" in data:
        mask = data["test_exact_mask"]
        result["exact_test_images"] = int(mask.sum())
        result["exact_test_accuracy"] = float(correct[mask].mean())
    return result


def validation_split(data):
    """Per-epoch validation: the exact test images where marked, else all."""
    mask = data.get("test_exact_mask", np.ones(len(data["y_test"]), bool))
    return eval_dataset(data["x_test"][mask], data["y_test"][mask])


def fit(config, resume):
    """Builds or restores the model and fits it; returns (data, model)."""
    out = pathlib.Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data, model, steps, start, strategy = prepare(config, resume)
    if start >= config.epochs:
        print(f"{out}: all {config.epochs} epochs already done")
    chief = distribute.is_chief()
    if chief:
        write_json(out / "config.json", dataclasses.asdict(config))
    ds = None
    for begin, end, distil in phases(config, start):
        if distil and not isinstance(model.loss, DistillationLoss):
            print(f"epoch {begin + 1}: distillation from {config.teacher} starts")
            with strategy.scope():
                compile_model(model, config, steps, True, first_step=begin * steps)
        labels = with_teacher(data["y_train"], data["teacher"]) if distil else data["y_train"]
        ds = train_dataset(data["x_train"], labels, config.batch_size, config.seed,
                           config.augmentation, start_step=begin * steps)
        model.fit(ds, epochs=end, initial_epoch=begin, steps_per_epoch=steps,
                  validation_data=validation_split(data),
                  callbacks=fit_callbacks(config, out, begin), verbose=config.verbose,
                  shuffle=False)
    if config.recompute_bn_batches:
        from keras_onebit.training.batchnorm import recompute_bn_statistics

        if ds is None:  # no epoch ran in this call (all were done before)
            ds = train_dataset(data["x_train"], data["y_train"], config.batch_size, config.seed,
                               config.augmentation, start_step=start * steps)

        recompute_bn_statistics(model, ds, config.recompute_bn_batches)
    return data, model


def fit_callbacks(config, out, begin):
    """The callbacks of a `fit` call that starts at epoch `begin`."""
    chief = distribute.is_chief()
    callbacks = [StopOnDivergence(), *config.iterative_callbacks(), LogLearningRate(),
                 EpochCheckpoint(out, chief)]
    if chief:  # a later start (resumed, or after the switch to distillation) appends
        callbacks.append(keras.callbacks.CSVLogger(str(out / LOG), append=begin > 0))
    if config.zero_momentum_at_restart:
        callbacks.append(ZeroMomentumAtRestart(config.first_cycle))
    return callbacks


def train(config, resume=False):
    """Runs (or resumes) a training run; returns (float32 model, final metrics)."""
    out = pathlib.Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with dtype_policy(config.dtype_policy):
        data, model = fit(config, resume)
    model = float32_copy(model, config)
    metrics = {**evaluate(model, data), "epochs": config.epochs,
               "train_images": len(data["x_train"])}
    if distribute.is_chief():
        model_files.save_model(model, out / "final.keras")
        write_json(out / "metrics.json", metrics)
        plot_curves(out / LOG, out / CURVES, title=config.model_id,
                    marks=curve_marks(config))
    return model, metrics


def curve_marks(config):
    """Where the training curves change meaning: the switch to distillation."""
    if config.teacher and 0 < config.distill_from_epoch < config.epochs:
        switch = config.distill_from_epoch
        return [(switch, f"distillation from epoch {switch + 1}")]
    return []


def set_threads(threads):
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
