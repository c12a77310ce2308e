"""The one way from a factory's `weights=` argument to pretrained weights.

The package is layered quantizers < layers < models < export / hub < cli, and a
lower part never imports a higher one. The model factories sit below the hub
yet take `weights="cifar10"`, so they call `load_into` here, and the hub
registers the function that does the work when it is imported
(`import keras_onebit` imports `keras_onebit.hub`, so it is always there):

    # keras_onebit/hub/__init__.py
    pretrained_weights.register_loader(load_weights_into)

    # keras_onebit/models/common.py
    pretrained_weights.load_into(model, "cifar10", factory="wrn_20_2")

This module imports nothing of the package but its errors.
"""

from keras_onebit.errors import ConfigError

_loader = None


def register_loader(loader):
    """Sets the function that loads pretrained weights into a model.

    Args:
        loader: callable `loader(model, weights, *, factory, include_top,
            classes)` returning the model (see `load_into`); it replaces any
            loader registered before.

    Returns:
        `loader`, so this can be used as a decorator.

    Raises:
        ConfigError: `loader` is not callable.
    """
    global _loader
    if not callable(loader):
        raise ConfigError(f"register_loader needs a callable, got {type(loader).__name__}.")
    _loader = loader
    return loader


def registered_loader():
    """The registered loader, or None.

    Returns:
        The callable given to `register_loader`, or None before the hub is imported.
    """
    return _loader


def load_into(model, weights, *, factory, include_top=True, classes=None):
    """Loads pretrained `weights` into a model a factory has just built.

    Args:
        model: the Keras model.
        weights: a data set name ("cifar10": the weights of `factory`
            trained on it, one-bit or float as the model is), a hub model id,
            or a path (hub entry folder, packed `.onebit` file, the authors'
            `.mat` file).
        factory: the registered factory name that built the model (e.g.
            "wrn_20_2"); data set weights are looked up by it, never by the
            model's name.
        include_top: False for a backbone: the weights of its layers are
            loaded, the weights' classifier is dropped (also when the
            classes differ).
        classes: the classes of the model's top (with `include_top`).

    Returns:
        `model`, with the weights loaded.

    Raises:
        ConfigError: no loader is registered (keras_onebit.hub not imported).
        HubError: from the loader: weights not found, or for another
            architecture or number of classes.
    """
    if _loader is None:
        raise ConfigError(
            f"weights={weights!r} needs the hub: import keras_onebit (or keras_onebit.hub) "
            "before building the model.")
    return _loader(model, weights, factory=factory, include_top=include_top, classes=classes)


__all__ = ["load_into", "register_loader", "registered_loader"]
