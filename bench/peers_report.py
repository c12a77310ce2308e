"""The "Peers" section of bench/README.md, from bench/results/peers.json
(written by bench/peers.py; `python bench/peers.py --render` rewrites it)."""

from common import cell

VARIANTS = {
    "weights": "one-bit weights, real activations (the paper's net)",
    "binary": "fully binary (ste_sign on the inputs of the 12 block convs)",
}

# What the 2026-12-02 run showed beyond its table (rewrite after a new run; this is the
# second run of the day, after packed's convs became im2col products).
NOTES = (
    "What the run shows. (1) Our weights copied into larq give the same network: logits within "
    "6e-7 of their scale for one-bit weights. In the fully binary net a few pre-sign values "
    "that lie within float round-off of 0 take the other sign in the other library, which "
    "moves the logits by up to 9% of their scale and changed no argmax on these 500 images. "
    "(2) LCE packs a convolution only when its input is binary too: for the paper's net "
    "(real activations) its file is a float file, 30.7x the one-bit limit, where our packed "
    "formats are 1.08-1.10x. For the fully binary net LCE's file (LceBconv2d) is 1.104x the "
    "limit, ours 1.105x (packed, its convs as im2col products) and 1.087x (packed_int8). "
    "(3) On this x86-64 machine LCE's binary convolutions ran 2.9x (1 thread) and 2.6x "
    "(2 threads) the time of our float file on LiteRT with XNNPACK, our packed file of the "
    "same net 1.5x and 2.0x; LCE's published benchmarks are on Arm (a Pixel 1 phone, a "
    "Raspberry Pi), which this machine is not: on a phone the order may differ (not measured "
    "here). (4) Our int8 formats quantize the activations before the sign, so values near 0 "
    "flip: argmax agreement with Keras 0.476 on these seeded models (near-tied logits; a "
    "trained net has wider margins, not measured here). For a fully binary net use float "
    "or packed (0.998). (5) A training step of the same network took 0.89x larq's time "
    "(one-bit weights) and 0.96x (fully binary); the previous run the same day measured 0.96x "
    "and 0.85x: steps of about one second vary by 10% between runs here.")


def _ops(counts):
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _library(row):
    return {"keras_onebit": "keras_onebit (LiteRT)", "larq": "larq + LCE"}[row["side"]]


def intro(result):
    versions = result.get("versions") or {}
    pinned = ", ".join(f"{k} {v}" for k, v in versions.items()) or "not installed"
    return [
        "The same one-bit WRN-16-4 in keras_onebit and in larq (its `QuantConv2D` with a "
        "constant-scale sign kernel quantizer, alpha * sign(W) with alpha = sqrt(2 / fan_in) "
        "and the identity gradient), our seeded weights (BN statistics from 500 CIFAR-10 "
        "images) copied layer by layer into larq. The peers run in their own environment "
        f"(`bench/peers/.venv`: {pinned}), driven over a pipe (`bench/peers/larq_worker.py`). "
        "LCE files are run by LCE's interpreter (`lce`: its defaults; `lce+xnnpack`: "
        "`use_xnnpack=True`), ours by LiteRT.", "",
        f"Run {result['date']}, `make bench-peers` (`python bench/peers.py`; batch 1 for "
        f"latency, {result['rounds']} alternated rounds of {result['repeats']} inferences; "
        f"training: batch {result['batch']}, SGD with momentum, {result['rounds']} alternated "
        f"rounds of {result['steps']} steps; medians; {result['conditions']}).", "",
    ]


def agreement_table(result):
    lines = ["| variant | images | larq vs keras_onebit logits: max abs diff / max abs logit "
             "| argmax agreement |", "|---|---|---|---|"]
    for v in result["variants"]:
        c = v["larq_vs_keras_onebit"]
        lines.append(f"| {VARIANTS[v['variant']]} | {c['images']} | {c['max_rel_diff']:.1e} | "
                     f"{c['argmax_agreement']:.3f} |")
    return lines


def files_table(result):
    threads = result["threads"]
    lines = ["| variant | library | format | bytes | x one-bit limit | argmax agree with Keras | "
             + " | ".join(f"ms ({t} thr) | x our float ({t} thr)" for t in threads) + " |",
             "|---|---|---|---|---|---|" + "---|---|" * len(threads)]
    for v in result["variants"]:
        for row in v["files"]:
            cells = [v["variant"], _library(row), row["format"], f"{row['bytes']:,}",
                     f"{row['x_limit']:.3f}", cell(row["argmax_agreement"], "{:.3f}")]
            for t in threads:
                cells += [cell(row[f"ms_{t}t"]), cell(row[f"vs_float_{t}t"])]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def ops_table(result):
    lines = ["| variant | library | format | operators (count) |", "|---|---|---|---|"]
    for v in result["variants"]:
        for row in v["files"]:
            if row["format"] != "lce+xnnpack":  # the same file as lce
                lines.append(f"| {v['variant']} | {_library(row)} | {row['format']} | "
                             f"{_ops(row['ops'])} |")
    return lines


def training_table(result):
    lines = ["| variant | keras_onebit ms/step | larq ms/step | keras_onebit / larq |",
             "|---|---|---|---|"]
    for v in result["variants"]:
        s = v["train_step_s"]
        lines.append(f"| {v['variant']} | {1000 * s['keras_onebit']:.1f} | "
                     f"{1000 * s['larq']:.1f} | {v['train_ratio']:.3f} |")
    return lines


def markdown(heading, result):
    lines = [heading, ""]
    if result.get("install_error"):
        return "\n".join(lines + [
            f"Run {result['date']}, `make bench-peers`: the peers did not install into "
            "`bench/peers/.venv`; the end of `bench/peers/install.log`:", "", "```",
            result["install_error"], "```", "", ""])
    lines += intro(result)
    lines += ["Outputs, larq model vs ours (same weights):", ""] + agreement_table(result)
    lines += ["", "Files and latency (x limit: file bytes / (binary weights / 8 + other "
              "weights x 4)):", ""] + files_table(result)
    lines += ["", "![Peers: file size, size / one-bit limit and latency per library and format]"
              "(results/peers.png)", "",
              "*Chart (`bench/charts.py`): the files table, per variant / library / format.*"]
    lines += ["", "Operators in each file:", ""] + ops_table(result)
    lines += ["", "Training step, the same network in both libraries (keras_onebit: Keras 3 + "
              "TensorFlow of requirements.txt; larq: Keras 2 + TensorFlow 2.13):", ""]
    lines += training_table(result)
    if NOTES:
        lines += ["", NOTES]
    return "\n".join(lines + ["", ""])
