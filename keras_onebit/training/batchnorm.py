"""Recomputing batch-norm statistics after training (as the authors'
MATLAB code does) instead of keeping the running averages."""

import keras
import numpy as np


def batch_norm_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def recompute_bn_statistics(model, batches, steps):
    """Sets every BN's moving mean and variance to the average of its batch
    statistics over `steps` batches of `batches` (augmented training data).

    Runs the model in training mode with momentum 1 - 1/i at batch i, which
    makes each moving statistic the running mean of the batch statistics.
    No trainable weight changes. Only the model's top-level BN layers
    (`model.layers`) are updated.

    Args:
        model: a Keras model with BatchNormalization layers.
        batches: a `tf.data.Dataset` of (images, labels) batches.
        steps: how many batches to average over.

    Returns:
        A dict {BN layer name: its new moving mean as a NumPy array}.
    """
    layers = batch_norm_layers(model)
    saved = [layer.momentum for layer in layers]
    try:
        for i, (images, _) in enumerate(batches.take(steps), start=1):
            for layer in layers:
                layer.momentum = 1.0 - 1.0 / i
            model(images, training=True)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
    return {layer.name: np.asarray(layer.moving_mean) for layer in layers}
