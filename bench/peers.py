"""Peers side by side: keras_onebit vs larq + larq-compute-engine (LCE) on the
same one-bit WRN-16-4 and the shipped fully binary bireal_20_2, with the same
weights.

    make bench-peers    (creates bench/peers_env/.venv from bench/peers_env/requirements.txt,
                         then runs this file)
    python bench/peers.py [--rounds 8] [--conditions "..."] [--render]

The peers (larq 0.14.0, larq-compute-engine 0.16.0, tensorflow-cpu 2.15.1,
Keras 2) cannot share a process with Keras 3, so they run in their own
environment, in `bench/peers_env/larq_worker.py`, driven from here over a pipe.
Two variants of the network: "weights" (one-bit weights alpha * sign(W), real
activations: the paper's net) and "binary" (also binary activations: larq's
`ste_sign` input quantizer on every block conv). For each: our Keras model
(seeded, BN statistics from real CIFAR-10 images) is copied into larq and
the outputs compared; our .tflite formats and LCE's converted file are
compared by size (x the one-bit limit), operators, agreement with Keras and
latency (LiteRT for ours, LCE's interpreter for LCE's file), and the
training step time of both libraries, all alternated in one run.
Writes bench/results/peers.json and the "Peers" section of bench/README.md.
"""

import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_ONEBIT_QUIET", "1")  # no TensorFlow start-up lines (_startup.py)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_onebit  # noqa: E402, F401  first: it loads TensorFlow and Keras quietly

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from common import (  # noqa: E402
    RESULTS,
    alternate_reported,
    convert_formats,
    measured,
    median,
    save,
    update_readme,
)

from keras_onebit import models  # noqa: E402
from keras_onebit.data import load_dataset  # noqa: E402
from keras_onebit.export import bitpack, limit_bytes, report  # noqa: E402
from keras_onebit.export.fallback import calibrate_batchnorm  # noqa: E402
from keras_onebit.layers import is_binary  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
PEERS = HERE / "peers_env"

flags.DEFINE_string("peer_python", str(PEERS / ".venv" / "bin" / "python"),
                    "Python of the peers' environment (made by make bench-peers).")
flags.DEFINE_list("variants", ["weights", "binary", "bireal_20_2"], "weights: one-bit "
                  "weights, real activations; binary: binary activations too (both a seeded "
                  "WRN-16-4); bireal_20_2: the trained fully binary model of --bireal.")
flags.DEFINE_string("bireal", "bireal_20_2-cifar10-1bit", "The bireal_20_2 variant's weights: "
                    "a hub id or a .keras file.")
flags.DEFINE_list("formats", ["float", "int8", "packed", "packed_int8", "micro"],
                  "Our formats.")
flags.DEFINE_integer("images", 1000, "CIFAR-10 test images for the output comparisons (the "
                     "exact ones first).")
flags.DEFINE_list("threads", ["1", "2"], "Interpreter thread counts.")
flags.DEFINE_integer("rounds", 8, "Alternated timing rounds.")
flags.DEFINE_integer("repeats", 3, "Inferences per latency timing.")
flags.DEFINE_integer("steps", 3, "Training steps per timing.")
flags.DEFINE_integer("batch", 64, "Training batch size.")
flags.DEFINE_integer("representative", 100, "Calibration images for int8.")
flags.DEFINE_string("conditions", "the machine's state not recorded",
                    "What else ran on the machine during the run, for the README.")
flags.DEFINE_bool("readme", True, "Write the Peers section of bench/README.md.")
flags.DEFINE_bool("render", False, "Only rewrite the README section from "
                  "bench/results/peers.json (no measurement).")
FLAGS = flags.FLAGS

HEADING = "## Peers: larq and larq-compute-engine side by side (`bench/peers.py`)"
INSTALL_LOG = PEERS / "install.log"
# Every setting of LCE's interpreter that changes its kernels (use_reference_bconv is
# the slow reference): the default bgemm, the indirect bgemm, each with XNNPACK for
# the float operators.
LCE_SETTINGS = {"lce": {}, "lce+indirect": {"use_indirect_bgemm": True},
                "lce+xnnpack": {"use_xnnpack": True},
                "lce+indirect+xnnpack": {"use_indirect_bgemm": True, "use_xnnpack": True}}


class PeerError(RuntimeError):
    """The peers' worker failed or is not installed."""


class Peer:
    """The larq worker process (bench/peers_env/larq_worker.py): one JSON command
    per line in, one JSON answer per line out."""

    def __init__(self, python):
        if not pathlib.Path(python).exists():
            raise PeerError(f"no peer environment ({python} does not exist)")
        self.stderr = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            [python, str(PEERS / "larq_worker.py")], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, text=True)

    def call(self, cmd, **arguments):
        self.process.stdin.write(json.dumps({"cmd": cmd, **arguments}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.stderr.seek(0)
            tail = self.stderr.read()[-2000:]
            raise PeerError(f"the larq worker ended during {cmd!r}:\n{tail}")
        answer = json.loads(line)
        if not answer.pop("ok"):
            raise PeerError(f"larq worker, {cmd}: {answer['error']}")
        return answer

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def install_error():
    """The end of bench/peers_env/install.log when the peers did not install."""
    if (PEERS / ".venv" / ".installed").exists():
        return None
    if not INSTALL_LOG.exists():
        return "the peer environment was not made (run make bench-peers)"
    lines = [line for line in INSTALL_LOG.read_text().splitlines()
             if line.strip() and "is ignored" not in line]
    return "\n".join(lines[-15:])


def seeded_model(variant, images):
    """Our WRN-16-4 (logits out): seeded weights, BN statistics from real images."""
    keras.utils.set_random_seed(0)
    model = models.wrn_16_4(classifier_activation=None,
                            input_quantizer="ste_sign" if variant == "binary" else None)
    return calibrate_batchnorm(model, images)


def trained_bireal(spec):
    """The trained bireal_20_2 of `spec` (hub id or .keras file), logits out."""
    trained = (keras.models.load_model(spec) if spec.endswith(".keras")
               else models.bireal_20_2(weights=spec))
    model = models.bireal_20_2(classifier_activation=None)
    model.set_weights(trained.get_weights())
    return model


def larq_arrays(model):
    """Every layer's weights as {"<layer name>/<index>": array}. A binary conv
    with binary inputs sends its +-1 kernel, and the BN after it takes the conv's
    per-channel scale: gamma' = gamma alpha / sqrt(var + eps), beta' = beta -
    gamma mean / sqrt(var + eps), mean' = 0, var' = 1 - eps (the same function)."""
    arrays = {f"{layer.name}/{i}": keras.ops.convert_to_numpy(w)
              for layer in model.layers for i, w in enumerate(layer.weights)}
    for layer in model.layers:
        if not (is_binary(layer) and layer.input_quantizer is not None and
                layer.get_config().get("scale") == "mean_abs"):
            continue
        kernel = keras.ops.convert_to_numpy(layer.forward_kernel())
        alpha = np.abs(kernel).max(axis=(0, 1, 2))
        arrays[f"{layer.name}/0"] = np.where(kernel >= 0, 1.0, -1.0).astype(np.float32)
        bn = model.get_layer(layer.name.replace("_conv", "_bn"))
        gamma, beta, mean, var = (arrays[f"{bn.name}/{i}"].astype(np.float64) for i in range(4))
        inv = gamma / np.sqrt(var + bn.epsilon)
        folded = (inv * alpha, beta - inv * mean, np.zeros_like(mean),
                  np.full_like(var, 1.0 - bn.epsilon))
        arrays.update({f"{bn.name}/{i}": v.astype(np.float32) for i, v in enumerate(folded)})
    return arrays


def save_weights(model, path):
    """`larq_arrays(model)` as an .npz."""
    np.savez(path, **larq_arrays(model))


def latency(files, lce_path, image_path, image, peer):
    """Median ms per inference, {(side/format, threads): ms}, alternated."""
    fns = {}
    for threads in map(int, FLAGS.threads):
        for fmt, data in files.items():
            if fmt != "micro":  # TFLite Micro only
                fns[fmt, threads] = measured(report.invoker(data, image, threads), FLAGS.repeats)
        for name, settings in LCE_SETTINGS.items():
            key = f"{name}@{threads}"
            peer.call("load", key=key, path=str(lce_path), threads=threads, **settings)
            fns[name, threads] = (lambda key=key: peer.call(
                "infer", key=key, repeats=FLAGS.repeats, image=str(image_path))["seconds"])
    times = alternate_reported(fns, FLAGS.rounds)
    return {key: 1000 * median(values) for key, values in times.items()}


def training_steps(model, peer):
    """Median seconds per training step, ours and larq's, alternated."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (FLAGS.batch, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, (FLAGS.batch,))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(x, y)  # trace and warm up, as the worker does
    model.train_on_batch(x, y)
    peer.call("train_setup", batch=FLAGS.batch)
    fns = {"keras_onebit": measured(lambda: model.train_on_batch(x, y), FLAGS.steps),
           "larq": lambda: peer.call("train", steps=FLAGS.steps)["seconds"]}
    times = alternate_reported(fns, FLAGS.rounds)
    return {name: median(values) for name, values in times.items()}


def bench_variant(variant, data, peer, scratch):
    if variant == "bireal_20_2":
        print(f"{variant}: the trained model {FLAGS.bireal}", flush=True)
        model = trained_bireal(FLAGS.bireal)
    else:
        print(f"{variant}: building WRN-16-4 (seeded, BN statistics from 500 CIFAR-10 images)",
              flush=True)
        model = seeded_model(variant, data["x_train"][:500].astype("float32"))
    exact = data["test_exact_mask"]
    order = np.concatenate([np.flatnonzero(exact), np.flatnonzero(~exact)])
    test = data["x_test"][order[:FLAGS.images]].astype("float32")
    images, image = scratch / "test.npy", scratch / "image.npy"
    np.save(images, test, allow_pickle=False)
    np.save(image, test[0], allow_pickle=False)
    reference = model.predict(test, batch_size=50, verbose=0)

    save_weights(model, scratch / f"{variant}.npz")
    peer.call("build", variant=variant, weights=str(scratch / f"{variant}.npz"))
    peer.call("predict", images=str(images), out=str(scratch / "larq.npy"))
    larq_vs_ours = report.compare(reference, np.load(scratch / "larq.npy"))
    print(f"  larq model vs ours on {len(test)} images: {larq_vs_ours}", flush=True)

    representative = data["x_train"][:FLAGS.representative].astype("float32")
    files = {fmt: b for fmt, b, _ in convert_formats(model, FLAGS.formats, representative)}
    lce_path = scratch / f"{variant}_lce.tflite"
    peer.call("convert", out=str(lce_path))
    peer.call("load", key="check", path=str(lce_path), threads=1)
    peer.call("lce_predict", key="check", images=str(images), out=str(scratch / "lce.npy"))
    agreement = {"lce": report.compare(reference, np.load(scratch / "lce.npy"))}
    for fmt, data_bytes in files.items():
        if fmt != "micro":
            agreement[fmt] = report.compare(reference, report.litert_outputs(data_bytes, test, 1))
    print("  agreement with Keras:", {k: v["argmax_agreement"] for k, v in agreement.items()},
          flush=True)

    ms = latency(files, lce_path, image, test[0], peer)
    steps = training_steps(model, peer)
    print(f"  training step: {steps}", flush=True)
    limit = limit_bytes(model)
    lce_bytes = lce_path.read_bytes()
    rows = [file_row(variant, "keras_onebit", fmt, data_bytes, limit, agreement.get(fmt), ms)
            for fmt, data_bytes in files.items()]
    rows += [file_row(variant, "larq", name, lce_bytes, limit, agreement["lce"], ms)
             for name in LCE_SETTINGS]
    return {"variant": variant, "onebit_limit_bytes": limit, "images": len(test),
            "larq_vs_keras_onebit": larq_vs_ours, "files": rows,
            "train_step_s": steps, "train_ratio": steps["keras_onebit"] / steps["larq"]}


def file_row(variant, side, fmt, data, limit, agreement, ms):
    row = {"variant": variant, "side": side, "format": fmt, "bytes": len(data),
           "x_limit": len(data) / limit, "ops": bitpack.operator_counts(data),
           "argmax_agreement": agreement and agreement["argmax_agreement"],
           "max_rel_diff": agreement and agreement["max_rel_diff"]}
    for threads in FLAGS.threads:
        row[f"ms_{threads}t"] = ms.get((fmt, int(threads)))
        base = ms.get(("float", int(threads)))
        row[f"vs_float_{threads}t"] = row[f"ms_{threads}t"] / base if row[
            f"ms_{threads}t"] and base else None
    return row


def run():
    error = install_error()
    result = {"date": datetime.date.today().isoformat(), "threads": FLAGS.threads,
              "rounds": FLAGS.rounds, "repeats": FLAGS.repeats, "steps": FLAGS.steps,
              "batch": FLAGS.batch, "conditions": FLAGS.conditions, "install_error": error,
              "variants": []}
    if error:
        print("the peers are not installed:\n" + error)
        return result
    peer = Peer(FLAGS.peer_python)
    try:
        result["versions"] = peer.call("versions")
        data = load_dataset("cifar10")
        with tempfile.TemporaryDirectory() as scratch:
            result["variants"] = [bench_variant(v, data, peer, pathlib.Path(scratch))
                                  for v in FLAGS.variants]
    finally:
        peer.close()
    return result


def main(_):
    logging.set_verbosity(logging.ERROR)
    from peers_report import markdown

    if FLAGS.render:
        result = json.loads((RESULTS / "peers.json").read_text())
        if FLAGS["conditions"].present:  # recorded after the run
            result["conditions"] = FLAGS.conditions
            save("peers", result)
    else:
        result = run()
        print("saved", save("peers", result))
    if FLAGS.readme or FLAGS.render:
        update_readme(HEADING, markdown(HEADING, result))
        print("updated bench/README.md")


if __name__ == "__main__":
    app.run(main)
