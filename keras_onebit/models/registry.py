"""One registry of model names to factories (timm style).

    keras_onebit.models.list_models()          # ['wrn_16_4', 'wrn_20_1', ...]
    keras_onebit.models.get("wrn_20_10", binary=False)
"""

from keras_onebit.errors import ConfigError

_FACTORIES = {}


def register_model(factory):
    """Decorator: registers `factory` under its function name."""
    _FACTORIES[factory.__name__] = factory
    return factory


def list_models():
    """Sorted names of every registered model factory."""
    return sorted(_FACTORIES)


def get_factory(name):
    if name not in _FACTORIES:
        raise ConfigError(
            f"Unknown model {name!r}. Known models: {', '.join(list_models())}."
        )
    return _FACTORIES[name]


def get(name, **kwargs):
    """Builds the registered model `name` with the factory's keyword args."""
    return get_factory(name)(**kwargs)
