"""Iterative layer binarization (Lan, arXiv 2111.07046; SPEC §4).

Training starts with float weights; the layers then turn one-bit one at a
time in a chosen order, one every `epochs_per_layer` (E) epochs: before
epoch e (0-based) the first min(L, e // E + 1) layers of the order are
binary. Once binary always binary; training goes on after all L are binary.

The model must be built with switchable binary layers (`switchable=True` on
`BinaryConv2D` / `BinaryDense`, or on the WRN factory): each holds a
non-trainable boolean weight, so the switch happens inside the compiled
training step, keeps the optimizer state and is saved in checkpoints.

Orders: "forward" (input to output, the paper's best fixed order),
"reverse", "random" (a seeded permutation), or an explicit list of layer
names, e.g. the sensitivity-guided order of `sensitivity_order`.
"""

import keras
import numpy as np

from keras_onebit import layer_walk
from keras_onebit.errors import ConfigError
from keras_onebit.layers import BINARY_LAYERS

ORDERS = ("forward", "reverse", "random")


def switchable_layers(model):
    """The switchable binary layers of `model`, input to output."""
    return [layer for layer in layer_walk.iter_layers(model)
            if isinstance(layer, BINARY_LAYERS) and layer.switchable]


def binarization_order(model, order="forward", seed=0):
    """The switchable layers of `model` in the order they turn one-bit.

    Args:
        model: a model built with switchable binary layers
            (`switchable=True`).
        order: "forward" (input to output), "reverse", "random" (a seeded
            permutation), or a list of the switchable layers' names, each
            once (e.g. from `sensitivity_order`).
        seed: the seed of the "random" order.

    Returns:
        A list of the switchable `BinaryConv2D` / `BinaryDense` layers.

    Raises:
        ConfigError: the model has no switchable binary layers; an unknown
            order name; a list that names other layers or misses or repeats
            one.
    """
    layers = switchable_layers(model)
    if not layers:
        raise ConfigError(f"Model {model.name!r} has no switchable binary layers: build it with "
                         "switchable=True (e.g. models.wrn_20_1(switchable=True)).")
    if isinstance(order, str):
        if order == "forward":
            return layers
        if order == "reverse":
            return layers[::-1]
        if order == "random":
            return [layers[i] for i in np.random.default_rng(seed).permutation(len(layers))]
        raise ConfigError(f"Unknown order {order!r}: expected one of {ORDERS} or a list of "
                         "layer names.")
    return _named_order(layers, list(order))


def _named_order(layers, names):
    by_name = {layer.name: layer for layer in layers}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ConfigError(f"Order names layers that are not switchable binary layers: {unknown}; "
                         f"the switchable layers are {sorted(by_name)}.")
    missing = sorted(set(by_name) - set(names))
    repeated = sorted({name for name in names if names.count(name) > 1})
    if missing or repeated:
        raise ConfigError(f"Order must list every switchable layer once: missing {missing}, "
                         f"repeated {repeated}.")
    return [by_name[name] for name in names]


def binary_layer_count(epoch, layers, epochs_per_layer):
    """How many layers of the order are binary during 0-based `epoch`."""
    if epochs_per_layer < 1:
        raise ConfigError(f"epochs_per_layer must be >= 1, got {epochs_per_layer}.")
    return min(layers, epoch // epochs_per_layer + 1)


class IterativeBinarization(keras.callbacks.Callback):
    """Turns the switchable layers one-bit, one every `epochs_per_layer` epochs.

    Args:
        order: "forward", "reverse", "random" or a list of layer names.
        epochs_per_layer: E, epochs between two switches.
        seed: seed of the "random" order.
        verbose: print a line when layers switch.

    Works with `initial_epoch` (a resumed run): the layers due by then switch
    at its first epoch.
    """

    def __init__(self, order="forward", epochs_per_layer=1, seed=0, verbose=1):
        super().__init__()
        binary_layer_count(0, 1, epochs_per_layer)  # validates
        self.order = order
        self.epochs_per_layer = int(epochs_per_layer)
        self.seed = seed
        self.verbose = verbose
        self.layers = None

    def on_train_begin(self, logs=None):
        self.layers = binarization_order(self.model, self.order, self.seed)

    def on_epoch_begin(self, epoch, logs=None):
        count = binary_layer_count(epoch, len(self.layers), self.epochs_per_layer)
        switched = [layer for layer in self.layers[:count] if not layer.binary_is_on()]
        for layer in switched:
            layer.set_binary(True)
        if switched and self.verbose:
            names = ", ".join(layer.name for layer in switched)
            print(
                f"Epoch {epoch + 1}: one-bit weights now in {names} "
                f"({count}/{len(self.layers)} layers binary)")


def sensitivity_order(scores):
    """The sensitivity-guided order from {layer name: validation accuracy
    with only that layer binary}: the least sensitive layer (highest
    accuracy) first; ties by name.

    Lan (arXiv 2111.07046) guides the order by a "sensitivity pre-training":
    each layer binarized alone, its validation accuracy recorded (SPEC §4).
    The material available here (the abstract and SPEC) does not state the
    direction of the sort; binarizing the layers that cost least first
    follows the paper's idea of starting where quantization noise hurts
    least, and is our choice, not a quotation. Reverse the list for the
    other direction.

    Args:
        scores: {layer name: validation accuracy with only it binary}, as
            `measure_sensitivity` returns.

    Returns:
        The layer names in binarization order.
    """
    return sorted(scores, key=lambda name: (-scores[name], name))


def measure_sensitivity(build_model, train_and_score, layer_names=None):
    """{layer name: score} with one layer binary at a time (Lan's
    sensitivity measurement): for each switchable layer, a fresh model from
    `build_model()` with only that layer switched on is passed to
    `train_and_score(model)`, which trains it and returns its validation
    accuracy.

    Args:
        build_model: a function of no arguments returning a fresh model with
            switchable binary layers (all switched off).
        train_and_score: a function of the model returning a number (higher
            is better, e.g. validation accuracy).
        layer_names: the layers to measure; default every switchable layer
            of `build_model()`.

    Returns:
        A dict {layer name: float score}, in the order measured; pass it to
        `sensitivity_order`.

    Raises:
        ConfigError: a name in `layer_names` that is not a switchable binary
            layer of the model.
    """
    names = layer_names or [layer.name for layer in switchable_layers(build_model())]
    scores = {}
    for name in names:
        model = build_model()
        _named_layer(model, name).set_binary(True)
        scores[name] = float(train_and_score(model))
    return scores


def _named_layer(model, name):
    for layer in switchable_layers(model):
        if layer.name == name:
            return layer
    raise ConfigError(f"Model {model.name!r} has no switchable binary layer named {name!r}.")
