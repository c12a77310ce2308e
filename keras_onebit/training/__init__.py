"""Training recipes of the papers, each usable alone with `model.fit`."""

from keras_onebit.training.augment import augment, cutout, flip, pad_crop
from keras_onebit.training.batchnorm import recompute_bn_statistics
from keras_onebit.training.bireal import (
    binarize_latent_weights,
    copy_matching_weights,
    freeze_all_but_batchnorm,
    retrain_batchnorm,
)
from keras_onebit.training.distill import (
    DistillationLoss,
    LabelAccuracy,
    teacher_probabilities,
    with_teacher,
)
from keras_onebit.training.iterative import (
    IterativeBinarization,
    binarization_order,
    measure_sensitivity,
    sensitivity_order,
)
from keras_onebit.training.loop import dtype_policy
from keras_onebit.training.pipeline import eval_dataset, train_dataset
from keras_onebit.training.schedules import (
    WarmRestartCosine,
    ZeroMomentumAtRestart,
    restart_epochs,
)

__all__ = [
    "DistillationLoss", "LabelAccuracy", "teacher_probabilities", "with_teacher",
    "IterativeBinarization", "binarization_order", "measure_sensitivity", "sensitivity_order",
    "WarmRestartCosine", "ZeroMomentumAtRestart", "augment", "cutout", "dtype_policy",
    "binarize_latent_weights", "copy_matching_weights", "eval_dataset", "flip",
    "freeze_all_but_batchnorm", "retrain_batchnorm",
    "pad_crop", "recompute_bn_statistics", "restart_epochs", "train_dataset",
]
