"""Quiet start-up of `python -m keras_onebit`: the command line speaks only for itself.

TensorFlow 2.21 writes C++ log lines while its shared libraries load
("WARNING: All log messages before absl::InitializeLog() is called ...",
"oneDNN custom operations are on ..."). They come from static initializers
that run before TensorFlow reads TF_CPP_MIN_LOG_LEVEL, so that variable alone
does not hide them (checked: they appear with TF_CPP_MIN_LOG_LEVEL=3). The
command line therefore loads Keras and TensorFlow once with file descriptor 2
pointed at /dev/null, and sets TF_CPP_MIN_LOG_LEVEL=3 (unless the user set it)
for the C++ lines that come later. TF_ENABLE_ONEDNN_OPTS is left alone: it
would change the numerics, not only the messages.

Importing this module runs `require_tensorflow_installed()` (on the TensorFlow
backend only) and `quiet_start()`; `keras_onebit/__init__.py` imports
it before anything heavy. It does nothing unless this process is
`python -m keras_onebit`, or the environment sets KERAS_ONEBIT_QUIET=1 before
the first import of keras_onebit (the benchmarks under bench/ do), so a
program that imports the library keeps TensorFlow's usual behaviour. `--debug`
on the command line shows everything (TensorFlow's lines and tracebacks).
`python -m keras_onebit --help` (or no command) prints the overview of the
commands without importing TensorFlow or the library (`overview_only()`):
instant, where the import takes several seconds; so do `hub list`, `hub default`
and `hub verify` (`light_start()`), which import only the hub's file handling.

This module imports nothing but the standard library and keras_onebit.errors;
on Keras's TensorFlow backend it first checks that some TensorFlow is installed (a
one-line MissingDependencyError naming the pip extras otherwise); on JAX and
PyTorch the library imports and trains without TensorFlow (keras_onebit.lazy).
"""

import contextlib
import importlib.util
import os
import sys

from keras_onebit.errors import require_tensorflow_installed

PROGRAM = "keras_onebit"
SCRIPT = "keras-onebit"  # the console script of pyproject.toml
TRUE_WORDS = ("true", "t", "1", "yes", "y")
QUIET_ENV = "KERAS_ONEBIT_QUIET"  # a program importing the library asks for the quiet start
# Interpreter options that take the next argument as their value.
OPTIONS_WITH_VALUE = ("-W", "-X", "--check-hash-based-pycs")
HELP_ARGS = ("-h", "--help", "--helpshort", "-?")
FULL_HELP_ARGS = ("--helpfull",)
# First arguments that ask for the overview of the commands, which needs
# neither TensorFlow nor the library.
OVERVIEW_ARGS = HELP_ARGS + FULL_HELP_ARGS + ("help",)
# Commands that read only JSON files and checksums (the hub's list, default and
# verify): they answer at once, without the seconds that importing TensorFlow takes.
LIGHT_COMMANDS = (("hub", "list"), ("hub", "default"), ("hub", "verify"))


def launched_as_cli(orig_argv=None):
    """True when the interpreter was started as `python [options] -m keras_onebit ...`
    or as the `keras-onebit` console script."""
    argv = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)
    if any(os.path.basename(arg) == SCRIPT for arg in argv[:2]):
        return True
    args, i = argv[1:], 0
    while i < len(args):
        arg = args[i]
        if arg == "-m":
            return args[i + 1:i + 2] == [PROGRAM]
        if arg.startswith("-m"):
            return arg[2:] == PROGRAM
        if arg.startswith("-c") or not arg.startswith("-"):
            return False  # python -c, or a script
        i += 2 if arg in OPTIONS_WITH_VALUE else 1
    return False


def debug_requested(args):
    """True when the command-line arguments `args` turn on `--debug`."""
    for arg in args:
        if arg == "--":
            break
        if arg == "--debug":
            return True
        if arg.startswith("--debug="):
            return arg.split("=", 1)[1].lower() in TRUE_WORDS
    return False


@contextlib.contextmanager
def silenced_stderr():
    """Points file descriptor 2 at /dev/null inside the block (C++ writes too)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def configured_backend():
    """The Keras backend this process will use, read as Keras reads it, without
    importing Keras: $KERAS_BACKEND, else ~/.keras/keras.json (or $KERAS_HOME's),
    else "tensorflow"."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    import json

    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def tensorflow_installed():
    """True when `import tensorflow` would find a package (and it is not blocked)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["tensorflow"] is None
        return False


def load_backend_quietly():
    """Imports TensorFlow (when installed, whatever the Keras backend: the commands'
    input pipeline and exports use it, and a later first import would print its
    start-up lines) and Keras with stderr silenced."""
    with silenced_stderr():
        if tensorflow_installed():
            import tensorflow  # noqa: F401
        import keras  # noqa: F401


def without_debug(args=None):
    """The command-line arguments (`args`, or this process's) without `--debug`."""
    return [arg for arg in (sys.argv[1:] if args is None else args) if not debug_requested([arg])]


def overview_only(args=None, orig_argv=None):
    """True when this process is `python -m keras_onebit` with no command or a
    top-level help request (`args`: the arguments after the program name)."""
    if not launched_as_cli(orig_argv):
        return False
    args = without_debug(args)
    return not args or args[0] in OVERVIEW_ARGS


def light_start(args=None, orig_argv=None):
    """True when this process is `python -m keras_onebit` with a top-level help
    request or one of LIGHT_COMMANDS, which need neither TensorFlow nor Keras: the
    library's package then imports none of its parts, and the command imports what
    it uses (`args`: the arguments after the program name)."""
    if overview_only(args, orig_argv):
        return True
    if not launched_as_cli(orig_argv):
        return False
    return tuple(without_debug(args)[:2]) in LIGHT_COMMANDS


def quiet_requested():
    """True when this process is `python -m keras_onebit` or sets KERAS_ONEBIT_QUIET."""
    return launched_as_cli() or os.environ.get(QUIET_ENV, "").lower() in TRUE_WORDS


def quiet_start():
    """In `python -m keras_onebit` (or with KERAS_ONEBIT_QUIET=1) without `--debug`:
    TF_CPP_MIN_LOG_LEVEL=3 by default and a silent TensorFlow import (none for
    the overview of the commands). Returns True when it imported TensorFlow so."""
    if not quiet_requested() or debug_requested(sys.argv[1:]) or light_start():
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    load_backend_quietly()
    return True


if configured_backend() == "tensorflow":  # JAX and PyTorch train without TensorFlow
    require_tensorflow_installed()
quiet_start()
