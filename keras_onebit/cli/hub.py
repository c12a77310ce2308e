"""`python -m keras_onebit hub <action>`: the model hub.

    python -m keras_onebit hub list
    python -m keras_onebit hub import-mcdonnell --mat CIFAR10_allparams.mat --out hub/ \\
        [--layout auto|keras|matlab] [--id wrn_20_10-cifar10-1bit]
    python -m keras_onebit hub verify --entry wrn_20_10-cifar10-1bit
    python -m keras_onebit hub default

`import-mcdonnell` converts one of the authors' published one-bit WRN files
(Keras `*_allparams.mat` or MATLAB `TrainedWideResNet20-10_*.mat`) into the hub
entry `<out>/<id>/`; point `KERAS_ONEBIT_HUB` at `<out>` to load it by id.
"""

import urllib.error

from absl import flags

from keras_onebit.cli import common
from keras_onebit.errors import ConfigError

FLAGS = flags.FLAGS
flags.DEFINE_string("mat", None, "import-mcdonnell: the authors' .mat file.")
flags.DEFINE_string("out", None, "import-mcdonnell: the hub folder to write <id>/ into.")
flags.DEFINE_enum("layout", "auto", ["auto", "keras", "matlab"], "import-mcdonnell: file layout.")
flags.DEFINE_string("id", None, "import-mcdonnell: model id (default wrn_20_10-cifar<C>-1bit"
                    "[-matlab]).")
flags.DEFINE_string("entry", None, "verify: hub id or entry folder.")

DOWNLOAD_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError)
OFFLINE_ADVICE = ("Offline: put the entry folder in a folder named by $KERAS_ONEBIT_HUB, or "
                  "convert the authors' file with python -m keras_onebit hub import-mcdonnell "
                  "--mat FILE --out DIR.")


def _size(n):
    if not n:
        return "?"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _is_fraction(value):
    return type(value) in (int, float) and 0 <= value <= 1


def _accuracy(metrics):
    """The accuracy an entry records: on CIFAR-10's 1000 exact test images
    when it has them (the rest are JPEG copies), else on its test set."""
    metrics = metrics if isinstance(metrics, dict) else {}
    exact, overall = metrics.get("exact_test_accuracy"), metrics.get("test_accuracy")
    if _is_fraction(exact):
        return f"{100 * exact:.1f}% exact"
    if _is_fraction(overall):
        return f"{100 * overall:.2f}%"
    if exact is not None or overall is not None:
        return "(malformed)"
    return "-"


def _list():
    """Prints every known model: its data, bits, weights size, recorded
    accuracy and where it is."""
    from keras_onebit import hub

    rows = hub.list_entries()
    print(f"{'id':34} {'data':9} {'bits':6} {'size':8} {'accuracy':12} {'default':7} where")
    for r in rows:
        where = str(r["local"]) if r["local"] else (f"download: {r['url']}" if r["url"]
                                                     else "not available here")
        bits = "?" if r["binary"] is None else ("1-bit" if r["binary"] else "float")
        print(f"{r['id']:34} {r['dataset'] or '?':9} {bits:6} {_size(r['bytes']):8} "
              f"{_accuracy(r['metrics']):12} {'yes' if r['default'] else '':7} {where}")
    print("size: the weights file (a download: the authors' .mat); accuracy: as the entry's "
          "model card records it (exact: CIFAR-10's 1000 test images that are not JPEG copies)")
    print("hub folders searched:", ", ".join(str(d) for d in hub.search_dirs()))
    return 0


def _import():
    """Converts one of the authors' .mat files into a hub entry."""
    from keras_onebit import hub

    if not FLAGS.mat or not FLAGS.out:
        raise ConfigError("import-mcdonnell needs --mat (the authors' .mat file) and --out "
                          "(the hub folder to write into).")
    common.existing_file(FLAGS.mat, "--mat", "one of the authors' *_allparams.mat or "
                         "TrainedWideResNet20-10_*.mat files")
    folder = hub.import_mcdonnell(FLAGS.mat, FLAGS.out, layout=FLAGS.layout, model_id=FLAGS.id)
    config = hub.read_config(folder)
    print(f"wrote {folder}: {config['factory']}({config['factory_kwargs']}), "
          f"{config['weights']} {config['weights_bytes']:,} bytes, sha256 "
          f"{config['weights_sha256']}")
    return 0


def _download_url(model_id):
    """The manifest's download URL of `model_id` (or a description when it has none)."""
    from keras_onebit.hub import HubError, folders

    try:
        return folders.manifest_entries().get(model_id, {}).get("url") or "its URL"
    except HubError:
        return "its URL"


def _download_failed(entry, error):
    """The one-line HubError of a hub entry whose download failed."""
    from keras_onebit.hub import HubError

    reason = getattr(error, "reason", None) or error
    return HubError(f"hub entry {entry!r} is not on this machine and its download from "
                    f"{_download_url(entry)} failed ({reason}). {OFFLINE_ADVICE}")


def _verify():
    """Checks the id, size and sha256 of an entry's weights (downloading it if needed)."""
    from keras_onebit.hub.loading import verify_entry

    if not FLAGS.entry:
        raise ConfigError("verify needs --entry: a hub id (python -m keras_onebit hub list) "
                          "or an entry folder.")
    try:
        config, weights = verify_entry(FLAGS.entry)
    except DOWNLOAD_ERRORS as e:
        raise _download_failed(FLAGS.entry, e) from e
    print(f"ok {weights} sha256 {config['weights_sha256']}")
    return 0


def _default():
    """Prints the default model id."""
    from keras_onebit.hub import default_model_id

    print(default_model_id())
    return 0


ACTIONS = {"list": _list, "import-mcdonnell": _import, "verify": _verify, "default": _default}


def main(argv):
    """Runs one action: python -m keras_onebit hub <action> [flags]."""
    choices = ", ".join(ACTIONS)
    if len(argv) < 2:
        raise ConfigError(f"an action is required: one of {choices} "
                          "(python -m keras_onebit hub --help).")
    if argv[1] not in ACTIONS:
        raise ConfigError(f"unknown action {argv[1]!r}: choose one of {choices}.")
    if len(argv) > 2:
        raise ConfigError(f"unexpected arguments {' '.join(argv[2:])!r} after {argv[1]}: "
                          "give everything else as --flags.")
    return ACTIONS[argv[1]]()
