"""What every model factory shares, following `keras.applications`
(keras/src/applications/resnet.py): argument checks, the input (a new
`keras.Input` or the caller's `input_tensor`), the optional global pooling of
a headless backbone, the classifier activation, the Keras model, and
pretrained weights when asked for.

Weights reach the hub through `keras_onebit.pretrained_weights`, a small
resolver below both: models never import the hub (the layering is
quantizers < layers < models < export / hub < cli).
"""

import os

import keras
from keras import layers

from keras_onebit import pretrained_weights
from keras_onebit.errors import ConfigError

POOLINGS = (None, "avg", "max")


def check_arguments(include_top, weights, input_shape, pooling, classes,
                    classifier_activation="softmax"):
    """Checks the `keras.applications` arguments a factory was given.

    Args:
        include_top: must be a bool.
        weights: None, a string (data set name, hub id or path) or a path.
        input_shape: None or (height, width, channels), each a positive int
            (or None for a variable size).
        pooling: None, "avg" or "max" (ignored when `include_top` is True,
            as Keras does).
        classes: a positive int.
        classifier_activation: with pretrained weights and the top, None or
            "softmax" (the weights were trained for it), as Keras checks.

    Raises:
        ConfigError: naming the argument and the value given.
    """
    if not isinstance(include_top, bool):
        raise ConfigError(f"include_top must be True or False, got {include_top!r}.")
    if pooling not in POOLINGS:
        raise ConfigError(f'pooling must be None, "avg" or "max", got {pooling!r}.')
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ConfigError(f"classes must be a positive integer, got {classes!r}.")
    if weights is not None and not isinstance(weights, str | os.PathLike):
        raise ConfigError(
            "weights must be None, a data set name (e.g. 'cifar10'), a hub model id or a "
            f"path, got {type(weights).__name__} {weights!r:.80}.")
    if weights is not None and include_top and classifier_activation not in (None, "softmax"):
        raise ConfigError(
            "with pretrained weights and include_top=True, classifier_activation must be None or "
            f"'softmax' (what the weights were trained for), got {classifier_activation!r}.")
    if isinstance(weights, str) and not weights.strip():
        raise ConfigError("weights must be None, a data set name, a hub model id or a path, "
                          "got an empty string.")
    if input_shape is not None:
        shape = _as_shape(input_shape)
        if shape is None:
            raise ConfigError(
                "input_shape must be (height, width, channels) of positive integers (None "
                f"for a variable size), got {input_shape!r}.")


def _as_shape(shape):
    try:
        shape = tuple(shape)
    except TypeError:
        return None
    if len(shape) != 3 or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
            for d in shape):
        return None
    return shape


def model_input(input_tensor, input_shape, default_shape):
    """The tensor the network starts from, as `keras.applications` builds it.

    Args:
        input_tensor: None (a new `keras.Input` named "pixels") or a Keras
            tensor (`keras.Input(...)` or a layer's output), used as it is.
        input_shape: None (the tensor's shape, else `default_shape`) or
            (height, width, channels); must agree with `input_tensor`.
        default_shape: the network's usual input shape.

    Returns:
        The input tensor of the network's first layer.

    Raises:
        ConfigError: `input_tensor` is not a Keras tensor of a batch of
            images, or `input_shape` disagrees with its shape.
    """
    if input_tensor is None:
        return keras.Input(shape=tuple(input_shape or default_shape), name="pixels")
    if not keras.backend.is_keras_tensor(input_tensor):
        raise ConfigError(
            "input_tensor must be a Keras tensor (keras.Input(...) or a layer's output), got "
            f"{type(input_tensor).__name__}.")
    given = tuple(input_tensor.shape)[1:]
    if len(given) != 3:
        raise ConfigError("input_tensor must be a batch of images (batch, height, width, "
                          f"channels), got shape {tuple(input_tensor.shape)}.")
    if input_shape is not None and any(a is not None and b is not None and a != b
                                       for a, b in zip(given, input_shape, strict=True)):
        raise ConfigError(f"input_shape {tuple(input_shape)} does not match the shape "
                          f"{given} of input_tensor.")
    return input_tensor


def pool_features(x, pooling):
    """Global pooling of a headless backbone's 4D output.

    Args:
        x: the backbone's output.
        pooling: None (x as it is), "avg" or "max" (named "avg_pool" /
            "max_pool" as in `keras.applications`).

    Returns:
        The features.
    """
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def finish_model(img_input, input_tensor, outputs, name, *, include_top=True,
                 classifier_activation="softmax", weights=None, factory=None, classes=None):
    """What every factory ends with: the classifier activation (with the
    top), the Keras model, and `weights` loaded.

    Args:
        img_input: the network's input (from `model_input`).
        input_tensor: the caller's `input_tensor` or None; the model's inputs
            are its source inputs (`keras.utils.get_source_inputs`), so layers
            before it are part of the model, as in `keras.applications`.
        outputs: the logits (with the top) or the backbone's features.
        name: model name.
        include_top: whether `outputs` are the logits.
        classifier_activation: applied to the logits (a float32 "predictions"
            layer, float32 under mixed precision too), or None; ignored
            without the top.
        weights: None, a data set name, a hub model id or a path.
        factory: the registered factory name the weights are looked up by
            (e.g. "wrn_20_2"), whatever the model's `name`.
        classes: the classes the top was built for.

    Returns:
        The Keras model, with the weights loaded.

    Raises:
        HubError: the weights cannot be found or do not fit the model (see
            `keras_onebit.pretrained_weights.load_into`).
    """
    x = outputs
    if include_top and classifier_activation is not None:
        x = layers.Activation(classifier_activation, name="predictions",
                              dtype="float32")(x)  # float32 under mixed precision too
    inputs = img_input if input_tensor is None else keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        # Layers before `input_tensor` are the caller's, not the factory's: the
        # weights go into the factory's own graph (same variables as `model`).
        own = model if model.inputs[0] is img_input else keras.Model(img_input, x, name=name)
        pretrained_weights.load_into(own, weights, factory=factory,
                                     include_top=include_top, classes=classes)
    return model
