"""Batch-norm statistics measured on real images, for a model that has none
(a seeded stand-in, so that its outputs are not degenerate). The exporter
never builds a model: whoever needs a stand-in (the CLI, the benchmarks)
builds it and calls this.
"""

import keras
import numpy as np

from keras_onebit.layer_walk import iter_layers


def calibrate_batchnorm(model, images, batch_size=250):
    """Sets every BN's moving mean and variance to the average of its batch
    statistics over `images` (momentum 1 - 1/i at batch i).

    Args:
        model: a Keras model; only its BN moving statistics change.
        images: real input images, as the model takes them.
        batch_size: images per batch.

    Returns:
        `model`.
    """
    layers = [layer for layer in iter_layers(model)
              if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in layers]
    images = np.asarray(images, np.float32)
    try:
        for i, start in enumerate(range(0, len(images), batch_size), start=1):
            for layer in layers:
                layer.momentum = 1.0 - 1.0 / i
            model(images[start:start + batch_size], training=True)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
    return model
