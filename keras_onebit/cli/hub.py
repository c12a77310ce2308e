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

import sys

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("mat", None, "import-mcdonnell: the authors' .mat file.")
flags.DEFINE_string("out", None, "import-mcdonnell: the hub folder to write <id>/ into.")
flags.DEFINE_enum("layout", "auto", ["auto", "keras", "matlab"], "import-mcdonnell: file layout.")
flags.DEFINE_string("id", None, "import-mcdonnell: model id (default wrn_20_10-cifar<C>-1bit"
                    "[-matlab]).")
flags.DEFINE_string("entry", None, "verify: hub id or entry folder.")

ACTIONS = ("list", "import-mcdonnell", "verify", "default")


def _list():
    from keras_onebit import hub

    rows = hub.list_entries()
    print(f"{'id':34} {'data':9} {'bits':6} {'default':7} where")
    for r in rows:
        where = str(r["local"]) if r["local"] else (f"download: {r['url']}" if r["url"]
                                                     else "not available here")
        bits = "?" if r["binary"] is None else ("1-bit" if r["binary"] else "float")
        print(f"{r['id']:34} {r['dataset'] or '?':9} {bits:6} {'yes' if r['default'] else '':7} "
              f"{where}")
    print("hub folders searched:", ", ".join(str(d) for d in hub.search_dirs()))
    return 0


def _import():
    from keras_onebit import hub

    if not FLAGS.mat or not FLAGS.out:
        print("hub import-mcdonnell: --mat and --out are required.", file=sys.stderr)
        return 2
    folder = hub.import_mcdonnell(FLAGS.mat, FLAGS.out, layout=FLAGS.layout, model_id=FLAGS.id)
    config = hub.read_config(folder)
    print(f"wrote {folder}: {config['factory']}({config['factory_kwargs']}), "
          f"{config['weights']} {config['weights_bytes']:,} bytes, sha256 "
          f"{config['weights_sha256']}")
    return 0


def _verify():
    from keras_onebit.hub.loading import resolve, verified_weights

    if not FLAGS.entry:
        print("hub verify: --entry is required.", file=sys.stderr)
        return 2
    kind, path = resolve(FLAGS.entry)
    if kind != "entry":
        print(f"hub verify: {path} is not a hub entry folder.", file=sys.stderr)
        return 1
    config, weights = verified_weights(path)
    print(f"ok {weights} sha256 {config['weights_sha256']}")
    return 0


def main(argv):
    from keras_onebit.hub import HubError

    action = argv[1] if len(argv) > 1 else None
    if action not in ACTIONS or len(argv) > 2:
        print(f"usage: python -m keras_onebit hub {{{','.join(ACTIONS)}}} [flags]",
              file=sys.stderr)
        return 2
    try:
        if action == "list":
            return _list()
        if action == "import-mcdonnell":
            return _import()
        if action == "verify":
            return _verify()
        from keras_onebit.hub import default_model_id

        print(default_model_id())
        return 0
    except (HubError, FileNotFoundError) as e:
        print(f"hub {action}: {e}", file=sys.stderr)
        return 1
