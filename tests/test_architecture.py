"""The package docstring's architecture paragraph is the import graph: every
`import` of a keras_onebit module (at module level or inside a function) goes
to a module listed before the importer's, so lower parts never import higher
ones and there is no import circle (issue 29)."""

import ast
import os
import pathlib
import re
import subprocess
import sys

import keras_onebit

ROOT = pathlib.Path(keras_onebit.__file__).parent


def documented_order():
    """The keras_onebit modules in the order the package docstring lists them."""
    paragraph = keras_onebit.__doc__.split("Architecture", 1)[1]
    names = re.findall(r"`([a-z_]+)`", paragraph)
    exists = {p.stem for p in ROOT.glob("*.py")} | {p.name for p in ROOT.iterdir() if p.is_dir()}
    order = []
    for name in names:
        if name in exists and name not in order:
            order.append(name)
    return order


def imported_modules(path):
    """The top-level keras_onebit modules `path` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "keras_onebit":
                found.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("keras_onebit."))
    return found


def test_docstring_lists_every_module():
    modules = {p.stem for p in ROOT.glob("*.py") if not p.stem.startswith("_")}
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert (modules | packages) - set(documented_order()) == set()


def test_no_module_imports_a_higher_one():
    rank = {name: i for i, name in enumerate(documented_order())}
    upward = []
    for path in ROOT.rglob("*.py"):
        top = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if top not in rank:
            continue
        for name in imported_modules(path):
            if name in rank and rank[name] > rank[top]:
                upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert upward == []


RENAMED = [
    ("keras_onebit.storage", "keras_onebit.activation_storage", "StochasticBinaryStorage"),
    ("keras_onebit.walk", "keras_onebit.layer_walk", "iter_layers"),
    ("keras_onebit.latent", "keras_onebit.latent_kernels", "restore_kernel"),
    ("keras_onebit.hub.registry", "keras_onebit.hub.folders", "default_model_id"),
]
PROBE_RENAMED = """
import importlib, sys, warnings
for old, new, name in {renamed!r}:
    renamed = importlib.import_module(new)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    print([str(w.message) for w in caught if w.category is DeprecationWarning],
          getattr(module, name) is getattr(renamed, name))
"""


def test_renamed_modules_keep_their_old_import_paths_with_a_warning():
    """Old import paths give the same objects and a DeprecationWarning naming the new one
    (in a fresh process: a module warns once, when first imported)."""
    result = subprocess.run([sys.executable, "-c", PROBE_RENAMED.format(renamed=RENAMED)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    want = [f"{[f'{old} is deprecated: import {new}']} True" for old, new, _ in RENAMED]
    assert result.stdout.splitlines() == want, result.stderr[-2000:]


def test_the_package_gives_its_old_module_names_too():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert keras_onebit.storage.BitMaskReLU is keras_onebit.activation_storage.BitMaskReLU
    assert "activation_storage" in keras_onebit.__all__ and "storage" in keras_onebit.__all__
