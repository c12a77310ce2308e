"""A stand-in model when no pretrained one is available: seeded weights and
batch-norm statistics measured on real images (so outputs are not degenerate).
"""

import keras
import numpy as np

from keras_onebit import models


def calibrate_batchnorm(model, images, batch_size=250):
    """Sets every BN's moving mean and variance to the average of its batch
    statistics over `images` (momentum 1 - 1/i at batch i). Only BN moving
    statistics change."""
    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
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


def seeded_model(name, images, seed=0, **kwargs):
    """`models.get(name)` with `keras.utils.set_random_seed(seed)` and BN
    statistics calibrated on `images`."""
    keras.utils.set_random_seed(seed)
    return calibrate_batchnorm(models.get(name, **kwargs), images)
