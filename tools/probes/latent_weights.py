"""Fully binary probe (2026-12-08): do the latent weights of `bireal_20_2-cifar10-1bit` still
move? Its training accuracy stays at its test accuracy (0.70 after 126 epochs): it underfits.
For each stage's binary 3x3 convs this prints the latent weights' median |w| at initialisation
(a fresh `bireal_20_2`, he_normal: the same distribution, another draw) and after epochs 30, 62
and 126 (the run's committed checkpoints), the share clipped at +-1, and the share of signs that
flipped between the run's shipped cycle ends (14, 30, 62, 126; the signs of epoch 14 come from
the hub file of that entry in git history, commit b9cd0a7), per epoch of each cycle. It writes
tools/probes/latent_weights.png (histograms at initialisation and after epoch 126).

    .venv/bin/python tools/probes/latent_weights.py   (from the repository root, with git)
"""
import os
import pathlib
import subprocess
import tempfile

os.environ["KERAS_ONEBIT_QUIET"] = "1"
import keras_onebit  # noqa: E402,F401  (quiet start before TensorFlow)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_onebit import models  # noqa: E402
from keras_onebit.export.packed_loader import load_packed  # noqa: E402
from keras_onebit.layers import binary_kernels  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUN = "runs/bireal_20_2-cifar10-1bit-e{}/checkpoint.keras"
HUB_AT_14 = ("b9cd0a7", "pretrained/bireal_20_2-cifar10-1bit/weights.onebit")
CYCLE_ENDS = (14, 30, 62, 126)


def kernels(model):
    """{layer name: latent kernel} of the model's binary convs, in model order."""
    layers = binary_kernels(model).values()
    return {layer.name: np.asarray(layer.kernel, dtype=np.float32) for layer in layers}


def at_epoch(epoch):
    if epoch != 14:
        return kernels(keras.saving.load_model(ROOT / RUN.format(epoch), compile=False))
    commit, path = HUB_AT_14
    data = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True,
                          check=True).stdout
    with tempfile.TemporaryDirectory() as folder:
        file = pathlib.Path(folder) / "e14.onebit"
        file.write_bytes(data)
        return kernels(load_packed(file))  # alpha * sign(w): its signs only


def stage(name):
    return name.split("_")[0]


def table(weights, init):
    stages = sorted({stage(n) for n in init})
    print("| stage | median abs w: init / 30 / 62 / 126 | median abs(w126 - w30) | clipped at +-1, 126 | "
          + " | ".join(f"flips {a}->{b} (per epoch)" for a, b in zip(CYCLE_ENDS, CYCLE_ENDS[1:]))
          + " |")
    for s in stages + ["all"]:
        names = [n for n in init if s in ("all", stage(n))]

        def cat(w, names=names):
            return np.concatenate([w[n].ravel() for n in names])

        medians = " / ".join(f"{np.median(np.abs(cat(w))):.4f}"
                             for w in (init, *(weights[e] for e in CYCLE_ENDS[1:])))
        moved = np.median(np.abs(cat(weights[126]) - cat(weights[30])))
        clipped = np.mean(np.abs(cat(weights[126])) >= 0.999)
        flips = []
        for a, b in zip(CYCLE_ENDS, CYCLE_ENDS[1:]):
            share = np.mean(np.sign(cat(weights[a])) != np.sign(cat(weights[b])))
            flips.append(f"{share:.3f} ({share / (b - a):.4f})")
        print(f"| {s} | {medians} | {moved:.4f} | {clipped:.4f} | " + " | ".join(flips) + " |")


def histograms(weights, init, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = sorted({stage(n) for n in init})
    fig, axes = plt.subplots(1, len(stages), figsize=(4 * len(stages), 3.2))
    for ax, s in zip(axes, stages, strict=True):
        for label, w in (("initialisation", init), ("after epoch 126", weights[126])):
            values = np.concatenate([w[n].ravel() for n in w if stage(n) == s])
            ax.hist(values, bins=120, range=(-0.3, 0.3), histtype="step", density=True, label=label)
        ax.set_title(f"{s}: latent weights of the binary convs")
        ax.set_xlabel("w")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print("wrote", out)


def main():
    init = kernels(models.bireal_20_2(binary=True, classes=10))
    weights = {epoch: at_epoch(epoch) for epoch in CYCLE_ENDS}
    table(weights, init)
    histograms(weights, init, ROOT / "tools/probes/latent_weights.png")


if __name__ == "__main__":
    main()
