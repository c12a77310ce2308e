"""Every `--flag` that the library's messages or the docs tell users to type exists
on the command it belongs to (one alias policy: each underscore flag also takes
dashes, e.g. --data_dir and --data-dir)."""

import concurrent.futures
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from keras_onebit.__main__ import COMMANDS

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
# Not flags of a command: absl's and Python's own options, and a placeholder in hub's help.
NOT_COMMAND_FLAGS = {"--help", "--helpfull", "--helpshort", "--flagfile", "--flags",
                     "--check-hash-based-pycs"}
COMMAND_LINE = re.compile(r"(?:python -m keras_onebit|keras-onebit) (export|hub|eval|train|teacher)"
                          r"\b([^`#\n]*)")
FLAGS_OF = """
import json, sys, importlib
from absl import flags
from keras_onebit import __main__ as cli
importlib.import_module(cli.COMMANDS[sys.argv[1]].module)
cli.define_debug_flag()
cli.define_dash_aliases()
names, own = set(), set()
for module, defined in flags.FLAGS.flags_by_module_dict().items():
    for flag in defined:
        spellings = {flag.name} | ({"no" + flag.name} if flag.boolean else set())
        names |= spellings
        if module.startswith("keras_onebit"):
            own.add(flag.name)
for name in flags.FLAGS:  # aliases too
    names.add(name)
print(json.dumps({"all": sorted(names), "own": sorted(own)}))
"""


def command_flags(command):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", FLAGS_OF, command], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return ({f"--{name}" for name in found["all"]}, {f"--{name}" for name in found["own"]})


@pytest.fixture(scope="module")
def defined():
    """{command: (every spelling it accepts, the names of its own flags)}."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(COMMANDS)) as pool:
        return dict(zip(COMMANDS, pool.map(command_flags, COMMANDS), strict=True))


@pytest.fixture(scope="module")
def flags_of(defined):
    """{command: every spelling it accepts}."""
    return {command: names for command, (names, _) in defined.items()}


def doc_command_lines():
    """(file, command, flags) of every `python -m keras_onebit CMD ...` in the docs."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for match in COMMAND_LINE.finditer(path.read_text()):
            found.append((path.name, match[1], set(FLAG.findall(match[2]))))
    return found


def library_messages():
    """(module file, command named just before the flag or None, flag) of the string
    literals in keras_onebit/ ("train --teacher" names train's flag)."""
    found = []
    for path in sorted((ROOT / "keras_onebit").rglob("*.py")):
        for literal in re.findall(r"(?s)(\"\"\".*?\"\"\"|\"[^\"\n]*\"|'[^'\n]*')",
                                  path.read_text()):
            for match in re.finditer(rf"(?:\b({'|'.join(COMMANDS)}) )?({FLAG.pattern})",
                                     literal):
                if match[2] not in NOT_COMMAND_FLAGS:
                    found.append((path, match[1], match[2]))
    return found


def test_the_alias_policy_gives_every_flag_both_spellings(defined, flags_of):
    for command, (names, own) in defined.items():
        assert own
        for name in own:
            assert name.replace("_", "-") in names, (command, name)
    assert {"--data_dir", "--data-dir"} <= flags_of["export"] & flags_of["train"]


def test_flags_in_the_docs_exist_on_their_command(flags_of):
    lines = doc_command_lines()
    assert len(lines) >= 20  # the docs' commands were found
    missing = [(name, command, sorted(names - flags_of[command] - NOT_COMMAND_FLAGS))
               for name, command, names in lines if names - flags_of[command] - NOT_COMMAND_FLAGS]
    assert not missing


def test_flags_in_the_librarys_messages_exist(flags_of):
    every = set().union(*flags_of.values())
    missing = []
    messages = library_messages()
    assert len(messages) >= 50  # the messages were found
    for path, named, name in messages:
        module = path.stem if path.parent.name == "cli" else None
        command = named or {"evaluate": "eval"}.get(module, module)
        if name not in (flags_of[command] if command in flags_of else every):
            missing.append((str(path.relative_to(ROOT)), command, name))
    assert not missing


def test_the_check_fails_on_a_flag_that_does_not_exist(flags_of):
    assert "--data_dirs" not in set().union(*flags_of.values())
    (match,) = COMMAND_LINE.finditer("python -m keras_onebit export --data_dirs x --out y")
    assert set(FLAG.findall(match[2])) - flags_of["export"] == {"--data_dirs"}
