"""Command line: `python -m keras_onebit <command> [flags]`.

Commands: export, hub, eval, train, teacher. `python -m keras_onebit --help` lists
them; `python -m keras_onebit <command> --help` lists a command's flags. Each
command lives in `keras_onebit.cli.<command>` and defines its own absl flags,
so only the chosen one is imported.

The command line speaks only for itself: TensorFlow loads without its C++ log
lines (keras_onebit/_startup.py), and every error a user can cause (a
`keras_onebit.Error`, an OSError such as a missing file or a full disk, a bad
flag value) ends in one line on stderr,

    keras_onebit <command>: error: <what is wrong and what to do>

and exit code 2, without a traceback. `--debug` shows the traceback and
TensorFlow's log lines.
"""

import errno
import importlib
import logging
import os
import sys
import traceback
import urllib.error
import warnings
from collections import namedtuple

from keras_onebit import _startup as startup

Command = namedtuple("Command", "module summary")

COMMANDS = {
    "export": Command("keras_onebit.cli.export",
                      "a model in every deployment format (.onebit, TFLite, TFLite Micro) "
                      "with a report"),
    "hub": Command("keras_onebit.cli.hub",
                   "pretrained models: list, verify, default, import-mcdonnell"),
    "eval": Command("keras_onebit.cli.evaluate",
                    "top-1 error of a model (hub id, file or factory name) on a test set"),
    "train": Command("keras_onebit.cli.train",
                     "train a model with the papers' recipe (checkpoints, --resume)"),
    "teacher": Command("keras_onebit.cli.teacher",
                       "a teacher's probabilities for every training image, for train "
                       "--teacher (distillation)"),
}
DEBUG_HELP = "Show the Python traceback of an error and TensorFlow's log lines."
USAGE = "usage: python -m keras_onebit <command> [flags]"
EXIT_OK, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 2, 130
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE, as a shell reports a program that SIGPIPE ended
# Modules whose Python warnings a normal run does not show (--debug does).
QUIET_WARNING_MODULES = r"(tensorflow|keras|absl|ai_edge_litert|tflite_micro|h5py)(\.|$)"

OFFLINE = ("Check the network connection or proxy; offline, use a local copy "
           "(KERAS_ONEBIT_HUB for hub models, --data_dir for data sets).")
# What to do about an OSError, by errno (the message already says what happened).
OS_ERROR_ADVICE = {
    errno.ENOSPC: "free disk space or write somewhere else",
    errno.EDQUOT: "free disk space or write somewhere else",
    errno.EACCES: "choose a path you may write to",
    errno.EPERM: "choose a path you may write to",
    errno.EROFS: "choose a folder on a writable file system",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "check the path: a part of it is a file",
    errno.EISDIR: "give a file, not a folder",
}


def main(argv=None):
    """Runs `argv` = [program, command, flags...]; returns the exit code."""
    try:
        return dispatch(list(sys.argv if argv is None else argv)[1:])
    except BrokenPipeError:  # the reader of our output stopped (`... | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return EXIT_OUTPUT_CLOSED


def dispatch(args):
    """Runs `args` = [command, flags...]; returns the exit code."""
    if args and startup.debug_requested(args[:1]):
        args = args[1:] + args[:1]  # `--debug train ...` works too
    if not args:
        print(overview(), file=sys.stderr)
        return EXIT_USER_ERROR
    if args[0] in startup.OVERVIEW_ARGS:
        print(overview())
        return EXIT_OK
    if args[0] not in COMMANDS:
        return fail(None, f"unknown command {args[0]!r}: choose one of "
                          f"{', '.join(COMMANDS)} (python -m keras_onebit --help).")
    return run(args[0], args[1:])


def overview():
    """The top-level help: usage and one line per command."""
    width = max(len(name) for name in COMMANDS)
    lines = [USAGE, "", "Keras 3 one-bit-weight models from the command line.", "",
             "commands:"]
    lines += [f"  {name:{width}}  {command.summary}" for name, command in COMMANDS.items()]
    lines += ["", "python -m keras_onebit <command> --help lists the command's flags.",
              "Every command takes --debug: tracebacks and TensorFlow's log lines."]
    return "\n".join(lines)


def run(command, args):
    """Imports and runs one command; a user error becomes one line and exit code 2."""
    from absl import flags

    from keras_onebit.errors import Error

    debug = startup.debug_requested(args)
    quiet_python_logs(debug)
    try:
        module = importlib.import_module(COMMANDS[command].module)
        define_debug_flag()
        define_dash_aliases()
        if any(arg in startup.HELP_ARGS for arg in before_separator(args)):
            print(command_help(command, module))
            return EXIT_OK
        if any(arg in startup.FULL_HELP_ARGS for arg in before_separator(args)):
            print(flags.FLAGS.get_help())
            return EXIT_OK
        positional = flags.FLAGS([f"keras_onebit {command}", *args])
        return module.main(positional) or EXIT_OK
    except flags.Error as e:  # an unknown flag, a bad value, a failed validator
        return report(command, f"{e}; see python -m keras_onebit {command} --help.", debug)
    except BrokenPipeError:
        raise  # not the user's error: main() ends quietly
    except (Error, OSError) as e:
        return report(command, describe(e), debug)
    except KeyboardInterrupt:
        return report(command, "interrupted.", debug, EXIT_INTERRUPTED)


def before_separator(args):
    """The arguments before a `--` (after it, everything is positional)."""
    return args[:args.index("--")] if "--" in args else args


def define_debug_flag():
    """--debug, defined when the command line runs (not on library import)."""
    from absl import flags

    if "debug" not in flags.FLAGS:
        flags.DEFINE_bool("debug", False, DEBUG_HELP)


def define_dash_aliases():
    """The one alias policy of every command: each flag spelled with underscores
    (--data_dir) is also accepted with dashes (--data-dir)."""
    from absl import flags

    for module, defined in flags.FLAGS.flags_by_module_dict().items():
        if not module.startswith("keras_onebit"):
            continue
        for flag in list(defined):
            alias = flag.name.replace("_", "-")
            if alias != flag.name and alias not in flags.FLAGS:
                flags.DEFINE_alias(alias, flag.name, module_name=module)


def quiet_python_logs(debug):
    """Unless --debug: TensorFlow's and absl's Python loggers report errors only,
    and the Python warnings of the libraries underneath are not shown."""
    if debug:
        return
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=QUIET_WARNING_MODULES)


def command_help(command, module):
    """`python -m keras_onebit CMD --help`: the command's doc and its own flags."""
    from absl import flags

    doc = (module.__doc__ or "").strip()
    own = flags.FLAGS.module_help(module).strip().split("\n", 1)[-1]  # no module-name line
    return (f"{doc}\n\nflags of python -m keras_onebit {command}:\n{own}\n"
            f"  --[no]debug: {DEBUG_HELP}\n    (default: 'false')\n\n"
            "absl's own flags (--flagfile, logging): --helpfull")


def describe(error):
    """One line about a user error: its message, plus advice for an OSError."""
    if isinstance(error, urllib.error.HTTPError):
        return f"download of {error.url} failed: HTTP {error.code} {error.reason}. {OFFLINE}"
    if isinstance(error, urllib.error.URLError):
        return f"download failed: {error.reason}. {OFFLINE}"
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        advice = OS_ERROR_ADVICE.get(error.errno)
        return f"{error.strerror}{where}" + (f"; {advice}." if advice else ".")
    return str(error) or type(error).__name__


def report(command, message, debug, code=EXIT_USER_ERROR):
    """Prints the traceback (with --debug) and the one-line error; returns `code`."""
    if debug:
        traceback.print_exc()
    return fail(command, message, code)


def fail(command, message, code=EXIT_USER_ERROR):
    """Prints `keras_onebit [command]: error: message` as one line; returns `code`."""
    program = f"keras_onebit {command}" if command else "keras_onebit"
    print(f"{program}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
