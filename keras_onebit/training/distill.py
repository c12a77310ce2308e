"""Knowledge distillation from precomputed teacher outputs (Hinton et al.,
arXiv 1503.02531), as small binary networks are often trained.

The teacher runs once, before training: `teacher_probabilities` gives its
class probabilities for every training image (the mean over the image and its
mirror image, since the student sees both). Training then needs no teacher:
the labels become `with_teacher(labels, probabilities)`, rows of
[label, p_1 .. p_C], and `DistillationLoss` mixes the cross-entropy on the
label with the KL divergence to the teacher at temperature T:

    loss = (1 - w) * CE(label, p) + w * T^2 * KL(softmax(log q / T) || softmax(log p / T))

p: the student's probabilities (the model's softmax output), q: the
teacher's. Defaults T = 4, w = 0.9 (the common CIFAR setting, e.g. Tian et
al., ICLR 2020). With labels only (validation), the loss is the cross-entropy.
`LabelAccuracy` is top-1 accuracy on the label column, or on plain labels.
"""

import keras
import numpy as np
from keras import ops

from keras_onebit.errors import ConfigError

EPSILON = 1e-7


def teacher_probabilities(predict, images, batch_size=250, flip=True, verbose=1):
    """The teacher's class probabilities for `images`, batch by batch.

    Args:
        predict: a callable mapping a float32 batch of raw-pixel images
            (n, H, W, C) to probabilities (n, classes), e.g.
            `model.predict_on_batch` of a model ending in softmax.
        images: (N, H, W, C) raw pixels, uint8 or float.
        batch_size: images per call of `predict`.
        flip: also run each image mirrored left-right and average the two.
        verbose: 1 shows a Keras progress bar.

    Returns:
        float32 (N, classes), each row a probability distribution.

    Raises:
        ConfigError: `predict` returns something that is not one
            probability distribution per image.
    """
    images = np.asarray(images)
    bar = keras.utils.Progbar(len(images), unit_name="image") if verbose else None
    rows = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].astype(np.float32)
        probs = _checked(predict(batch), len(batch))
        if flip:
            probs = (probs + _checked(predict(batch[:, :, ::-1]), len(batch))) / 2
        rows.append(probs)
        if bar is not None:
            bar.add(len(batch))
    return np.concatenate(rows).astype(np.float32)


def _are_distributions(probs):
    """True when every row of the 2D float array is finite, >= 0 and sums to 1."""
    return (probs.ndim == 2 and np.issubdtype(probs.dtype, np.floating)
            and bool(np.all(np.isfinite(probs))) and not np.any(probs < 0)
            and np.allclose(probs.sum(1), 1, atol=1e-3))


def _checked(probs, n):
    probs = np.asarray(ops.convert_to_numpy(probs), np.float64)
    if len(probs) != n or not _are_distributions(probs):
        raise ConfigError(f"The teacher must give one probability distribution per image "
                          f"(a softmax output); got an array of shape {probs.shape}.")
    return probs


def check_probabilities(probs, images, classes, where):
    """Checks teacher probabilities against the training images they are for.

    Args:
        probs: the array (as loaded from a .npy file).
        images: how many training images there are.
        classes: the number of classes.
        where: the file, for the message.

    Returns:
        `probs` as float32.

    Raises:
        ConfigError: another shape, or rows that are not distributions.
    """
    probs = np.asarray(probs)
    if not isinstance(probs, np.ndarray) or probs.dtype.kind != "f":
        raise ConfigError(f"{where}: teacher probabilities must be a float array (float32 or "
                          f"float64), got {getattr(probs, 'dtype', type(probs).__name__)}: "
                          "write them with python -m keras_onebit teacher.")
    if probs.shape != (images, classes):
        raise ConfigError(f"{where}: teacher probabilities of shape {probs.shape}, expected "
                          f"({images}, {classes}): one row per training image, in order.")
    if not _are_distributions(probs):
        raise ConfigError(f"{where}: every row must be a probability distribution "
                          "(finite, >= 0, summing to 1).")
    return probs.astype(np.float32)


def with_teacher(labels, probs):
    """Rows [label, p_1 .. p_C] (float32): the targets `DistillationLoss` takes.

    Args:
        labels: (N,) integer labels.
        probs: (N, C) teacher probabilities.

    Returns:
        float32 (N, 1 + C).
    """
    labels = np.asarray(labels, np.float32).reshape(-1, 1)
    return np.concatenate([labels, np.asarray(probs, np.float32)], axis=1)


def _split(y_true):
    """(labels, teacher probabilities or None) of distillation targets or plain labels."""
    if len(y_true.shape) == 2 and y_true.shape[-1] is not None and y_true.shape[-1] > 1:
        return ops.cast(y_true[:, 0], "int32"), y_true[:, 1:]
    return ops.cast(ops.reshape(y_true, (-1,)), "int32"), None


@keras.saving.register_keras_serializable(package="keras_onebit")
class DistillationLoss(keras.losses.Loss):
    """Cross-entropy on the label mixed with the KL divergence to the teacher.

    Args:
        temperature: T, applied to both distributions (softened as
            softmax(log p / T)); the KL term is scaled by T^2.
        weight: w in [0, 1], the share of the KL term.
        name: the loss name.

    Raises:
        ConfigError: T <= 0 or w outside [0, 1].
    """

    def __init__(self, temperature=4.0, weight=0.9, name="distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        if not temperature > 0:
            raise ConfigError(f"The distillation temperature must be > 0, got {temperature!r}.")
        if not 0 <= weight <= 1:
            raise ConfigError(f"The distillation weight must be in [0, 1], got {weight!r}.")
        self.temperature, self.weight = float(temperature), float(weight)

    def call(self, y_true, y_pred):
        labels, teacher = _split(y_true)
        y_pred = ops.cast(y_pred, "float32")
        cross_entropy = keras.losses.sparse_categorical_crossentropy(labels, y_pred)
        if teacher is None:
            return cross_entropy
        t = self.temperature
        student = ops.log_softmax(ops.log(ops.clip(y_pred, EPSILON, 1.0)) / t, axis=-1)
        target = ops.log_softmax(ops.log(ops.clip(ops.cast(teacher, "float32"), EPSILON,
                                                  1.0)) / t, axis=-1)
        kl = ops.sum(ops.exp(target) * (target - student), axis=-1)
        return (1 - self.weight) * cross_entropy + self.weight * t * t * kl

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "weight": self.weight}


def _label_accuracy(y_true, y_pred):
    labels, _ = _split(y_true)
    return ops.cast(ops.equal(labels, ops.cast(ops.argmax(y_pred, axis=-1), "int32")),
                    "float32")


@keras.saving.register_keras_serializable(package="keras_onebit")
class LabelAccuracy(keras.metrics.MeanMetricWrapper):
    """Top-1 accuracy on the label of distillation targets (or plain labels).

    Args:
        name: the metric name (default "accuracy", as Keras' own).
        dtype: the metric's dtype.
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(_label_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
