"""Bi-Real Net's training stages (Liu et al., ECCV 2018; SPEC §3).

The paper trains the real-valued network first, with ReLU, then with
leaky-clip, then with clip(-1, x, 1), each stage starting from the weights
of the one before; the binary network starts from the last real one; at the
end the weights are set to +-1 (times their scale) and only batch norm is
retrained for one epoch. Each step is a function here, around plain
`model.fit`:

    real = models.bireal_18(binary=False, activation="relu")      # fit it
    clip = models.bireal_18(binary=False, activation="leaky_clip")
    copy_matching_weights(real, clip)                             # fit it ...
    binary = models.bireal_18()
    copy_matching_weights(clip, binary)                           # fit it
    retrain_batchnorm(binary, train_data, epochs=1)
"""

import keras
import numpy as np

from keras_onebit import layer_walk
from keras_onebit.errors import ConfigError
from keras_onebit.latent_kernels import restore_kernel
from keras_onebit.layers import BINARY_LAYERS, is_binary


def _weighted_layers(model):
    return {layer.name: layer for layer in layer_walk.iter_layers(model) if layer.weights}


def copy_matching_weights(source, target):
    """Copies the weights of every layer of `source` into the layer of the
    same name in `target` (one stage's network into the next: the real
    net's float kernels become the binary net's latent kernels).

    Args:
        source: the trained model of the previous stage.
        target: the model of the next stage, built with the same layer names.

    Returns:
        `target`.

    Raises:
        ConfigError: a layer with weights in one model but not the other, or
            weights of other shapes (names the layer and both shapes).
    """
    sources, targets = _weighted_layers(source), _weighted_layers(target)
    missing = sorted(set(sources) ^ set(targets))
    if missing:
        raise ConfigError(f"{source.name} -> {target.name}: layers with weights in only one "
                          f"of the two models: {missing}.")
    for name, layer in targets.items():
        values = sources[name].get_weights()
        want = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(v.shape) for v in values]
        if got != want:
            raise ConfigError(f"{source.name} -> {target.name}: layer {name!r} has weight "
                              f"shapes {got} in the source and {want} in the target.")
        layer.set_weights(values)
    return target


def binarize_latent_weights(model):
    """Sets every one-bit layer's latent kernel to its forward kernel,
    +-alpha: the paper's "set the weights to +-1" before the BN-only retrain.
    The forward kernel is unchanged, exactly (`latent.restore_kernel` finds
    magnitudes whose per-channel mean |W| is the scale to the last bit), so
    calling it twice changes nothing.

    Args:
        model: a model with one-bit layers.

    Returns:
        The number of kernels set.
    """
    count = 0
    for layer in layer_walk.iter_layers(model):
        if isinstance(layer, BINARY_LAYERS) and is_binary(layer):
            signs = np.where(layer.sign_bits(), np.float32(1), np.float32(-1))
            layer.kernel.assign(restore_kernel(layer, signs, layer.kernel_alpha()))
            count += 1
    return count


def freeze_all_but_batchnorm(model):
    """Makes only the batch-norm layers trainable (recompile afterwards).

    Args:
        model: a Keras model; every leaf layer (`layer_walk.iter_layers`, nested
            models' layers too) is set.

    Returns:
        The names of the trainable layers.
    """
    names = []
    for layer in layer_walk.iter_layers(model):
        layer.trainable = isinstance(layer, keras.layers.BatchNormalization)
        if layer.trainable:
            names.append(layer.name)
    return names


def retrain_batchnorm(model, data, epochs=1, optimizer=None, loss=None, **fit_kwargs):
    """The paper's last step: weights set to +-alpha, then only batch norm
    trained (its scale, offset and statistics) for `epochs`.

    Args:
        model: the trained binary model (changed in place).
        data: what `model.fit` takes as `x` (a dataset of (images, labels)).
        epochs: 1 in the paper.
        optimizer: default SGD(1e-3, momentum 0.9).
        loss: default sparse categorical cross-entropy (on the model's
            softmax output).
        **fit_kwargs: passed to `model.fit` (e.g. `y`, `batch_size`,
            `steps_per_epoch`).

    Returns:
        The `keras.callbacks.History` of the fit.

    Raises:
        ConfigError: the model has no one-bit layer.
    """
    if not binarize_latent_weights(model):
        raise ConfigError(f"Model {model.name!r} has no one-bit layer to set to +-alpha.")
    freeze_all_but_batchnorm(model)
    model.compile(optimizer=optimizer or keras.optimizers.SGD(1e-3, momentum=0.9),
                  loss=loss or "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.fit(data, epochs=epochs, **fit_kwargs)

