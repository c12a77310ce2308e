"""Command line: `python -m keras_onebit <command> [flags]`.

Commands: export, hub, eval, train. `python -m keras_onebit <command> --help`
lists a command's flags. Each command lives in `keras_onebit.cli.<command>`
and defines its own absl flags, so only the chosen one is imported.
"""

import importlib
import sys

COMMANDS = {
    "export": "keras_onebit.cli.export",
    "hub": "keras_onebit.cli.hub",
    "eval": "keras_onebit.cli.evaluate",
    "train": "keras_onebit.cli.train",
}


def main(argv=None):
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(f"usage: python -m keras_onebit {{{','.join(COMMANDS)}}} [flags]", file=sys.stderr)
        return 2
    from absl import app

    module = importlib.import_module(COMMANDS[argv[1]])
    app.run(module.main, argv=[f"keras_onebit {argv[1]}"] + argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
