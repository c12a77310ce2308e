"""Every public function and class documents itself in Keras's format (issue 16 §6).

- A public callable that takes arguments has an `Args:` section (a class: the
  arguments of its own `__init__`; classes whose `__init__` comes from Python or
  Keras, such as the error classes, take none of their own).
- A public function that returns a value has a `Returns:` section. "Returns a
  value": its own body (nested functions and lambdas excluded) has a `return
  <expr>` other than `return None`, or a `yield`.
- A public function whose own body raises has a `Raises:` section.

The public API is the `__all__` of keras_onebit, models, hub, export and
training, the listed names of quantizers, layers and storage, and the public
names that walk, summary, activations, constraints, latent, errors and data
define. Run this file as a script to list what is missing:

    python tests/test_docstrings.py
"""

import ast
import importlib
import inspect
import pathlib
import sys
import textwrap
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ALL_MODULES = ("keras_onebit", "keras_onebit.models", "keras_onebit.hub", "keras_onebit.export",
               "keras_onebit.training")
LISTED = {
    "keras_onebit.quantizers": ("sign", "fan_in", "he_scale", "Quantizer", "SignWeight",
                                "ApproxSign", "SteSign", "get", "get_kernel_quantizer",
                                "serialize"),
    "keras_onebit.layers": ("BinaryConv2D", "BinaryDense", "ZeroChannels", "ShiftedReLU",
                            "is_binary"),
    "keras_onebit.activation_storage": ("StochasticBinaryStorage", "BitMaskReLU", "get",
                                        "pack_bits", "unpack_bits"),
}
DEFINING_MODULES = ("keras_onebit.layer_walk", "keras_onebit.summary",
                    "keras_onebit.activations", "keras_onebit.constraints",
                    "keras_onebit.latent_kernels", "keras_onebit.errors", "keras_onebit.data")


def _defined_names(module):
    """The public classes and functions a module defines itself."""
    return sorted(name for name, value in vars(module).items()
                  if not name.startswith("_") and not isinstance(value, types.ModuleType)
                  and (inspect.isclass(value) or inspect.isfunction(value))
                  and getattr(value, "__module__", None) == module.__name__)


def public_api():
    """{id(object): (qualified name, object)} of the public functions and classes."""
    found = {}

    def add(module_name, names):
        module = importlib.import_module(module_name)
        for name in names:
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                found.setdefault(id(value), (f"{module_name}.{name}", value))

    for module_name in ALL_MODULES:
        add(module_name, importlib.import_module(module_name).__all__)
    for module_name, names in LISTED.items():
        add(module_name, names)
    for module_name in DEFINING_MODULES:
        add(module_name, _defined_names(importlib.import_module(module_name)))
    return dict(sorted(found.values()))


def _own_init(cls):
    """The `__init__` a keras_onebit class defines (itself or a keras_onebit base), else None."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            return vars(klass)["__init__"] if klass.__module__.startswith("keras_onebit") else None
    return None


def takes_arguments(obj):
    func = _own_init(obj) if inspect.isclass(obj) else obj
    if func is None:
        return False
    params = list(inspect.signature(func).parameters)
    return bool(params[1:] if inspect.isclass(obj) else params)


def _own_nodes(func):
    """The AST nodes of a function's own body (not of nested functions, lambdas or classes)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(func))))
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    stack = [node for node in tree.body[0].body if not isinstance(node, nested)]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node)
                     if not isinstance(child, nested))


def returns_value(func):
    for node in _own_nodes(func):
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            return True
    return False


def raises(func):
    return any(isinstance(node, ast.Raise) and node.exc is not None for node in _own_nodes(func))


def problems():
    """[(qualified name, missing section)] over the public API."""
    out = []
    for name, obj in public_api().items():
        doc = inspect.getdoc(obj) or ""
        if takes_arguments(obj) and "\nArgs:\n" not in f"\n{doc}\n":
            out.append((name, "Args:"))
        if inspect.isfunction(obj):
            if returns_value(obj) and "\nReturns:\n" not in f"\n{doc}\n":
                out.append((name, "Returns:"))
            if raises(obj) and "\nRaises:\n" not in f"\n{doc}\n":
                out.append((name, "Raises:"))
    return out


def test_public_api_is_found():
    import keras_onebit as kob

    found = {id(obj) for obj in public_api().values()}
    for obj in (kob.models.wrn, kob.hub.load, kob.hub.list_ids, kob.data.load_dataset,
                kob.quantizers.SignWeight, kob.quantizers.sign, kob.activation_storage.pack_bits,
                kob.layers.is_binary, kob.summary, kob.training.train_dataset,
                kob.export.save_packed,
                importlib.import_module("keras_onebit.layer_walk").iter_layers):
        assert id(obj) in found, obj


def test_api_rules_see_what_they_should():
    def plain(x):
        def inner():
            return 1
        return None

    def gives(x):
        return x + 1

    def generator():
        yield 1

    def checks(x):
        if x:
            raise ValueError(x)

    assert not returns_value(plain) and returns_value(gives) and returns_value(generator)
    assert raises(checks) and not raises(gives)
    assert takes_arguments(gives) and not takes_arguments(generator)


def test_public_api_docstrings():
    missing = [f"{name}: no {section} section" for name, section in problems()]
    assert not missing, "\n".join(missing)


if __name__ == "__main__":
    missing = problems()
    for name, section in missing:
        print(f"{name}: {section}")
    print(f"{len(missing)} missing over {len(public_api())} public objects")
