"""Builds the wheel with the hub: the project's pretrained/ (manifest, and per
model config.json, weights.onebit, MODEL_CARD.md, curves) is copied into the
package as keras_onebit/_pretrained/, which keras_onebit.hub.folders finds
first. Everything else is in pyproject.toml."""

import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).resolve().parent
HUB_FILES = ("index.json", "config.json", "weights.onebit", "MODEL_CARD.md", "curves.png",
             "log.csv")


class BuildWithHub(build_py):
    """build_py, then the hub entries into keras_onebit/_pretrained/ (not for
    an editable install: that reads pretrained/ in place)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = ROOT / "pretrained"
        target = pathlib.Path(self.build_lib) / "keras_onebit" / "_pretrained"
        shutil.rmtree(target, ignore_errors=True)
        for path in sorted(source.rglob("*")):
            if path.is_file() and path.name in HUB_FILES:
                dest = target / path.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)


setup(cmdclass={"build_py": BuildWithHub})
