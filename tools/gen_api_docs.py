"""Writes docs/API.md, the reference of keras_onebit's public API, from the code.

    python tools/gen_api_docs.py           # rewrite docs/API.md
    python tools/gen_api_docs.py --check   # exit 1 if docs/API.md is stale

Public API: `keras_onebit.__all__` and, for each public module (models, hub,
export, training, quantizers, layers, data, storage), its `__all__` or else the
public names it defines. Each entry is the signature (`inspect.signature`) and
the docstring (`inspect.getdoc`); a class also lists its public methods and
properties defined in the class itself. tests/test_docs.py regenerates the page
in memory and compares, so the page cannot drift from the docstrings.
"""

import inspect
import os
import pathlib
import re
import sys
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "API.md"
MODULES = ("keras_onebit", "keras_onebit.models", "keras_onebit.hub", "keras_onebit.export",
           "keras_onebit.training", "keras_onebit.quantizers", "keras_onebit.layers",
           "keras_onebit.data", "keras_onebit.activation_storage")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _import(name):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import importlib

    return importlib.import_module(name)


def public_names(module):
    """`module.__all__`, else the public names the module itself defines (sorted)."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    out = []
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if getattr(value, "__module__", None) == module.__name__ and (
                inspect.isclass(value) or inspect.isfunction(value)):
            out.append(name)
    return sorted(out)


def signature(obj):
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"
    return _ADDRESS.sub("", text)


def docstring(obj, fallback="(no docstring)"):
    doc = inspect.getdoc(obj)
    return doc.strip() if doc else fallback


def _block(text):
    text = text.replace("```", "'''")
    return f"```text\n{text}\n```\n"


def _first_line(obj):
    doc = inspect.getdoc(obj)
    return doc.strip().splitlines()[0] if doc else ""


def _class_members(cls):
    rows = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            rows.append(f"- `{name}` (property): {_first_line(value)}".rstrip(": ").rstrip())
        elif isinstance(value, (staticmethod, classmethod)):
            func = value.__func__
            rows.append(f"- `{name}{signature(func)}`: {_first_line(func)}".rstrip(": "))
        elif inspect.isfunction(value):
            rows.append(f"- `{name}{signature(value)}`: {_first_line(value)}".rstrip(": "))
    return rows


def entry(module_name, name, value):
    """The Markdown of one public name."""
    full = f"{module_name}.{name}"
    if isinstance(value, types.ModuleType):
        return f"### `{full}` (module)\n\nSee the section `{value.__name__}` below.\n"
    if inspect.isclass(value):
        bases = ", ".join(b.__module__.split(".")[0] + "." + b.__qualname__
                          if b.__module__.split(".")[0] != "keras_onebit" else b.__qualname__
                          for b in value.__bases__)
        init = signature(value)
        out = [f"### class `{full}{init}`\n", f"Bases: {bases}\n", _block(docstring(value))]
        members = _class_members(value)
        if members:
            out.append("Members:\n\n" + "\n".join(members) + "\n")
        return "\n".join(out)
    if callable(value):
        alias = ""
        real = getattr(value, "__name__", name)
        if real != name:
            alias = f"Alias of `{real}`.\n\n"
        return f"### `{full}{signature(value)}`\n\n{alias}{_block(docstring(value))}"
    return f"### `{full}`\n\nValue: `{_ADDRESS.sub('', repr(value))}`\n"


def render():
    """The text of docs/API.md."""
    parts = [
        "# API reference\n",
        "Generated from the docstrings by `python tools/gen_api_docs.py`; do not edit by hand "
        "(`tests/test_docs.py` fails when this page differs from what the code gives). "
        "Guides: [GETTING_STARTED](GETTING_STARTED.md), [TRAINING](TRAINING.md), "
        "[HUB](HUB.md), [FORMAT](FORMAT.md), [DEPLOY_PHONE](DEPLOY_PHONE.md), "
        "[DEPLOY_MICRO](DEPLOY_MICRO.md).\n",
        "Modules: " + ", ".join(f"`{m}`" for m in MODULES) + ".\n",
    ]
    for module_name in MODULES:
        module = _import(module_name)
        parts.append(f"## `{module_name}`\n")
        parts.append(_block(docstring(module, "(no module docstring)")))
        for name in public_names(module):
            parts.append(entry(module_name, name, getattr(module, name)))
    return "\n".join(parts).rstrip() + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run python tools/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text):,} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
