"""A walk over every layer of a model, nested models and layers included.

Keras' own recursive walk (`Layer._flatten_layers`) is private. This one uses
only public attributes: a `keras.Model` (Functional, Sequential or
subclassed) lists its children in `model.layers`; any other layer's children
are the layers held in its attributes, directly or in a list, tuple or dict
(the sub-layers Keras tracks, in the order they were assigned).

    from keras_onebit.layer_walk import iter_layers
    binary = [layer for layer in iter_layers(model) if is_binary(layer)]
"""

import keras


def sublayers(layer):
    """The direct sub-layers of `layer`, each once, in a stable order.

    Args:
        layer: a `keras.layers.Layer` (a `keras.Model` included).

    Returns:
        A list of layers: `layer.layers` for a `keras.Model`; for any other
        layer, the layers found in its instance attributes (directly or as
        items of a list, tuple or dict attribute), in attribute order.
    """
    if isinstance(layer, keras.Model):
        children = list(layer.layers)
    else:
        children = []
        for value in vars(layer).values():
            if isinstance(value, dict):
                value = list(value.values())
            items = value if isinstance(value, (list, tuple)) else [value]
            children += [v for v in items if isinstance(v, keras.layers.Layer)]
    unique, seen = [], {id(layer)}
    for child in children:
        if id(child) not in seen:
            seen.add(id(child))
            unique.append(child)
    return unique


def iter_layers(model, containers=False):
    """Yields every layer inside `model`, recursing into nested models and layers.

    Each layer is yielded once (a layer shared by several parents, or
    reachable twice, comes at its first place), depth first, parents before
    their children, children in the order of `sublayers`. `model` itself is
    not yielded.

    Args:
        model: a `keras.Model` or any `keras.layers.Layer`.
        containers: also yield the layers that hold sub-layers (nested
            models, blocks), each before its children. With the default
            False only leaf layers (no sub-layers) are yielded; with True the
            layers are those of Keras' private
            `_flatten_layers(include_self=False, recursive=True)` but a
            Sequential's implicit InputLayer, in `model.layers` order.

    Returns:
        A generator of `keras.layers.Layer`.
    """
    for _, layer in named_layers(model, containers):
        yield layer


def named_layers(model, containers=False):
    """Like `iter_layers`, with each layer's path: the names of its
    containers and its own, joined by "/" ("wrn_20_1/stem_conv" for a layer
    of a model nested in `model`; a layer of `model` itself is its name).

    Args:
        model: a `keras.Model` or any `keras.layers.Layer`.
        containers: also yield the layers that hold sub-layers.

    Returns:
        A generator of (path, layer) pairs.
    """
    seen = {id(model)}
    stack = [("", iter(sublayers(model)))]
    while stack:
        prefix, children = stack[-1]
        layer = next(children, None)
        if layer is None:
            stack.pop()
            continue
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        path = prefix + layer.name
        inner = sublayers(layer)
        if containers or not inner:
            yield path, layer
        if inner:
            stack.append((path + "/", iter(inner)))


def weight_owners(model):
    """Maps each variable of `model` to the innermost layer that holds it.

    Args:
        model: a `keras.Model` or any `keras.layers.Layer`.

    Returns:
        A dict {id(variable): layer}. A variable held by a container and by
        one of its sub-layers belongs to the sub-layer (a leaf layer wins
        over any container); one shared by two layers of the same kind
        belongs to the one that comes last in
        `iter_layers(model, containers=True)`. Variables that only `model`
        itself holds map to `model`.
    """
    owners = {id(w): model for w in model.weights}
    layers = list(iter_layers(model, containers=True))
    leaves = {id(layer) for layer in iter_layers(model)}
    for layer in layers + [layer for layer in layers if id(layer) in leaves]:
        for w in layer.weights:
            owners[id(w)] = layer
    return owners


def all_layers(model):
    """Every layer of `model`, nested models and containers included.

    Args:
        model: a Keras model or layer.

    Returns:
        A list of layers, each once, in a stable order
        (`list(iter_layers(model, containers=True))`).
    """
    return list(iter_layers(model, containers=True))
