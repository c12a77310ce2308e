"""Fully binary probe (2026-12-08): do the latent weights of `bireal_20_2-cifar10-1bit` still
move? Its training accuracy stays at its test accuracy (0.70 after 126 epochs): it underfits.
For each stage's binary 3x3 convs this prints the latent weights' median |w| at initialisation
(a fresh `bireal_20_2` drawn with seed 0, he_normal: the same distribution, another draw) and
after epochs 30, 62 and 126 (the run's committed checkpoints), the share clipped at +-1, and the
share of signs that flipped between the run's shipped cycle ends (14, 30, 62, 126; the signs of
epoch 14 come from the hub file of that entry in git history, commit b9cd0a7), per epoch of each
cycle. It writes tools/probes/latent_weights.png (histograms at initialisation and after epoch
126).

    .venv/bin/python tools/probes/latent_weights.py   (from the repository root, with git)
"""
import itertools
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


def by_stage(kernel_sets):
    """{stage, and "all": {key: the latent weights of its convs, flattened}} of
    {key: {layer name: kernel}}: each group concatenated once for the table and the PNG."""
    names = list(kernel_sets["init"])
    groups = {s: [n for n in names if stage(n) == s] for s in sorted({stage(n) for n in names})}
    groups["all"] = names
    return {s: {key: np.concatenate([kernels[n].ravel() for n in group])
                for key, kernels in kernel_sets.items()}
            for s, group in groups.items()}


def table(flat):
    pairs = list(itertools.pairwise(CYCLE_ENDS))
    print("| stage | median abs w: init / 30 / 62 / 126 | median abs(w126 - w30) | "
          "clipped at +-1, 126 | "
          + " | ".join(f"flips {a}->{b} (per epoch)" for a, b in pairs) + " |")
    for s, w in flat.items():
        medians = " / ".join(f"{np.median(np.abs(w[key])):.4f}" for key in ("init", 30, 62, 126))
        moved = np.median(np.abs(w[126] - w[30]))
        clipped = np.mean(np.abs(w[126]) >= 0.999)
        flips = []
        for a, b in pairs:
            share = np.mean(np.sign(w[a]) != np.sign(w[b]))
            flips.append(f"{share:.3f} ({share / (b - a):.4f})")
        print(f"| {s} | {medians} | {moved:.4f} | {clipped:.4f} | " + " | ".join(flips) + " |")


def histograms(flat, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in flat if s != "all"]
    fig, axes = plt.subplots(1, len(stages), figsize=(4 * len(stages), 3.2))
    for ax, s in zip(axes, stages, strict=True):
        for label, key in (("initialisation", "init"), ("after epoch 126", 126)):
            ax.hist(flat[s][key], bins=120, range=(-0.3, 0.3), histtype="step", density=True,
                    label=label)
        ax.set_title(f"{s}: latent weights of the binary convs")
        ax.set_xlabel("w")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print("wrote", out)


def main():
    keras.utils.set_random_seed(0)  # the initialisation drawn for comparison, the same each run
    kernel_sets = {"init": kernels(models.bireal_20_2(binary=True, classes=10))}
    kernel_sets.update({epoch: at_epoch(epoch) for epoch in CYCLE_ENDS})
    flat = by_stage(kernel_sets)
    table(flat)
    histograms(flat, ROOT / "tools/probes/latent_weights.png")


if __name__ == "__main__":
    main()
