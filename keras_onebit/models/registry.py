"""One registry of model names to factories (timm style).

    keras_onebit.models.list_models()          # ['bireal_18', ..., 'wrn_16_4', ...]
    keras_onebit.models.get("wrn_20_10", binary=False)

Registering a name twice warns (as timm does) and the later factory wins.
"""

import warnings

from keras_onebit.errors import ConfigError

_FACTORIES = {}


def register_model(factory):
    """Decorator: registers `factory` under its function name.

    Args:
        factory: a callable that builds a Keras model; its `__name__` is
            the registered name.

    Returns:
        `factory`, unchanged.

    Raises:
        ConfigError: `factory` is not callable or has no usable name.

    Warns:
        UserWarning: the name was registered before by another factory,
            which this one replaces.
    """
    name = getattr(factory, "__name__", None)
    if not callable(factory) or not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"register_model needs a named function, got {factory!r:.80}.")
    previous = _FACTORIES.get(name)
    if previous is not None and previous is not factory:
        warnings.warn(
            f"Model {name!r} is registered already (by {_where(previous)}); "
            f"{_where(factory)} replaces it. Rename one of them if this is not intended.",
            UserWarning, stacklevel=2)
    _FACTORIES[name] = factory
    return factory


def _where(factory):
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', '?')}"


def list_models():
    """Names of the registered model factories.

    Returns:
        The sorted list of names.
    """
    return sorted(_FACTORIES)


def get_factory(name):
    """The factory registered as `name`.

    Args:
        name: a registered model name, e.g. "wrn_20_10".

    Returns:
        The factory function.

    Raises:
        ConfigError: an unknown name (lists the known ones).
    """
    if name not in _FACTORIES:
        raise ConfigError(
            f"Unknown model {name!r}. Known models: {', '.join(list_models())}."
        )
    return _FACTORIES[name]


def get(name, **kwargs):
    """Builds the registered model `name`.

    Args:
        name: a registered model name.
        **kwargs: the factory's keyword arguments.

    Returns:
        The Keras model.

    Raises:
        ConfigError: an unknown name, or a bad argument.
    """
    return get_factory(name)(**kwargs)
