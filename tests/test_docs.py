"""The documentation runs: README.md and docs/*.md are executed as written.

- Every ```python block of a file runs top to bottom in one namespace per file,
  in a fresh working folder `<tmp>/work` whose parent holds `shared` -> the real
  `../shared`, so the docs' paths `../shared/data/...` work unchanged.
- Every `python -m keras_onebit ...` line of a ```sh block runs (bash, the
  same kind of working folder per file, blocks in order, `python` = this
  interpreter); other lines (`make`, `pip`, your own scripts) are not run, but
  variable assignments and `export X=...` are kept.
- A block whose first line starts with `# not run` is skipped: only for the internet or
  hours of CPU, at most `NOT_RUN_BUDGET` in all the docs.
- docs/API.md is what tools/gen_api_docs.py generates from the docstrings now.

Docs that rot fail here. The user cache and hub variables point into the temp
folder, so nothing outside it is written and nothing is downloaded.
"""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.conftest import slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = "# not run"
NOT_RUN_BUDGET = 3
SH_LANGS = ("sh", "bash", "shell", "console")
_FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_ASSIGN = r"[A-Za-z_][A-Za-z0-9_]*=\S*"
_KEEP_SH = re.compile(
    rf"^(?:export\s+{_ASSIGN}|{_ASSIGN}|(?:{_ASSIGN}\s+)*python -m keras_onebit\b.*)$")


def code_blocks(path):
    """[(language, code, first line number)] of the fenced blocks of a Markdown file."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    return [(m.group(1).lower(), m.group(2), text.count("\n", 0, m.start()) + 2)
            for m in _FENCE.finditer(text)]


def is_not_run(code):
    lines = code.strip().splitlines()
    return bool(lines) and lines[0].strip().startswith(NOT_RUN)


def sh_commands(code):
    """The lines of a sh block this test runs (continuations joined)."""
    joined = re.sub(r"[ \t]*\\\n\s*", " ", code)
    keep = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and _KEEP_SH.match(line):
            keep.append(line)
    return keep


def _name(path):
    return str(path.relative_to(ROOT))


@pytest.fixture
def docs_workdir(tmp_path, monkeypatch):
    """<tmp>/work with <tmp>/shared -> ../shared; cache and hub variables in tmp."""
    assert SHARED.is_dir(), f"the docs use ../shared beside the repository ({SHARED})"
    (tmp_path / "shared").symlink_to(SHARED, target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("KERAS_ONEBIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_ONEBIT_HUB", raising=False)
    monkeypatch.delenv("KERAS_ONEBIT_DATA", raising=False)
    monkeypatch.setenv("KERAS_ONEBIT_DOWNLOAD_TIMEOUT", "5")
    return work


def test_not_run_blocks_within_budget():
    skipped = [f"{_name(p)}:{line}" for p in DOCS for lang, code, line in code_blocks(p)
               if lang in ("python", *SH_LANGS) and is_not_run(code)]
    assert len(skipped) <= NOT_RUN_BUDGET, (
        f"{len(skipped)} blocks marked '{NOT_RUN}' (at most {NOT_RUN_BUDGET}): {skipped}")


def test_docs_have_blocks_and_links():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"
    assert any(lang == "python" for p in DOCS for lang, _, _ in code_blocks(p))


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_python_blocks_run(doc, docs_workdir):
    blocks = [(code, line) for lang, code, line in code_blocks(doc)
              if lang == "python" and not is_not_run(code)]
    if not blocks:
        pytest.skip(f"{_name(doc)} has no python block to run")
    namespace = {"__name__": "__docs__"}
    for code, line in blocks:
        # Line numbers in tracebacks point into the Markdown file.
        exec(compile("\n" * (line - 1) + code, str(doc), "exec"), namespace)  # noqa: S102


@pytest.mark.parametrize("doc", [
    # 100 s: two training runs and a teacher; test_training and test_distill cover them
    pytest.param(doc, marks=slow) if doc.name == "TRAINING.md" else doc for doc in DOCS], ids=_name)
def test_cli_commands_run(doc, docs_workdir):
    commands = [(cmd, line) for lang, code, line in code_blocks(doc)
                if lang in SH_LANGS and not is_not_run(code) for cmd in sh_commands(code)]
    if not any("keras_onebit" in cmd for cmd, _ in commands):
        pytest.skip(f"{_name(doc)} shows no python -m keras_onebit command to run")
    bin_dir = pathlib.Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    # `python` must be this interpreter even when the venv's bin has no `python` link.
    shim = docs_workdir.parent / "bin"
    shim.mkdir()
    (shim / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shim / "python").chmod(0o755)
    env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    script = "set -e\n" + "\n".join(
        f"echo '$ {cmd.replace(chr(39), '')}  # {_name(doc)}:{line}'\n{cmd}"
        for cmd, line in commands)
    proc = subprocess.run(["bash", "-c", script], cwd=docs_workdir, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f"a command of {_name(doc)} failed (exit {proc.returncode}):\n"
        f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


def _generator():
    spec = importlib.util.spec_from_file_location("gen_api_docs",
                                                  ROOT / "tools" / "gen_api_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_up_to_date():
    expected = _generator().render()
    actual = (ROOT / "docs" / "API.md").read_text(encoding="utf-8")
    assert actual == expected, (
        "docs/API.md is not what the docstrings give now: run "
        "`.venv/bin/python tools/gen_api_docs.py` and commit docs/API.md")


def test_sh_command_extraction():
    code = ("make test   # not run\nR=../x\nexport A=1\npip install y\n"
            "KERAS_ONEBIT_HUB=hub python -m keras_onebit eval --model m \\\n    --limit 5\n"
            "python my_script.py\n")
    assert sh_commands(code) == ["R=../x", "export A=1",
                                 "KERAS_ONEBIT_HUB=hub python -m keras_onebit eval --model m "
                                 "--limit 5"]
