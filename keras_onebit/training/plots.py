"""Training curves as a PNG, from the CSV log of a run."""

import csv


def plot_curves(log_path, png_path, title="", marks=()):
    """Loss and accuracy (training and validation) per epoch, with the
    learning rate on a second axis. `marks`: (epoch, label) pairs, each drawn
    as a vertical line after that epoch (e.g. where the loss changes).
    Written atomically."""
    import os

    from keras_onebit.errors import require

    matplotlib = require("matplotlib", "plots", "The training-curve PNG")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, style in (("loss", "-"), ("val_loss", "--")):
        if key in rows[0]:
            ax_loss.plot(epochs, [float(r[key]) for r in rows], style, label=key)
    for key, style in (("accuracy", "-"), ("val_accuracy", "--")):
        if key in rows[0]:
            ax_acc.plot(epochs, [float(r[key]) for r in rows], style, label=key)
    if "lr" in rows[0]:
        ax_lr = ax_loss.twinx()
        ax_lr.plot(epochs, [float(r["lr"]) for r in rows], ":", color="grey", label="lr (end)")
        ax_lr.set_ylabel("learning rate at epoch end")
    for epoch, label in marks:
        for ax in (ax_loss, ax_acc):
            ax.axvline(epoch + 0.5, color="black", linewidth=0.8)
            ax.annotate(label, (epoch + 0.5, 0.02), xycoords=("data", "axes fraction"),
                        rotation=90, ha="right", va="bottom", fontsize=8)
    ax_loss.set(xlabel="epoch", ylabel="loss", title=f"{title} loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=f"{title} accuracy")
    ax_loss.legend(loc="upper right")
    ax_acc.legend(loc="lower right")
    fig.tight_layout()
    tmp = f"{png_path}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path
