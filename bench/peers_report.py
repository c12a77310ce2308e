"""The "Peers" section of bench/README.md, from bench/results/peers.json
(written by bench/peers.py; `python bench/peers.py --render` rewrites it)."""

from common import cell

VARIANTS = {
    "weights": "one-bit weights, real activations (the paper's net)",
    "binary": "fully binary (ste_sign on the inputs of the 12 block convs)",
    "bireal_20_2": "the trained fully binary bireal_20_2 (hub)",
}
FULLY_BINARY = ("binary", "bireal_20_2")
EXACT = 0.995  # issue 27: a format "matches Keras" at this argmax agreement or more
TARGET = 0.5  # issue 27: our fastest matching format / LCE's best latency


def _row(variant, fmt):
    return next(row for row in variant["files"] if row["format"] == fmt)


def _lce_rows(variant):
    return [r for r in variant["files"] if r["side"] == "larq"]


def speed(variant, threads):
    """(our fastest format agreeing >= EXACT and its ms, LCE's fastest setting and its
    ms, ours / LCE) at `threads`, or None when a side has no timed row."""
    key = f"ms_{threads}t"
    ours = [r for r in variant["files"] if r["side"] == "keras_onebit" and r.get(key)
            and (r.get("argmax_agreement") or 0) >= EXACT]
    lce = [r for r in _lce_rows(variant) if r.get(key)]
    if not ours or not lce:
        return None
    best, peer = min(ours, key=lambda r: r[key]), min(lce, key=lambda r: r[key])
    return best["format"], best[key], peer["format"], peer[key], best[key] / peer[key]


def speed_lines(result):
    """One sentence per fully binary variant and thread count: who is faster, by how much."""
    variants = {v["variant"]: v for v in result["variants"]}
    lines = []
    for name in FULLY_BINARY:
        for t in result["threads"]:
            found = name in variants and speed(variants[name], t)
            if not found:
                continue
            ours, ms, lce, lce_ms, ratio = found
            who = "we are faster" if ratio < 1 else "LCE is faster"
            met = "met" if ratio <= TARGET else "NOT met"
            lines.append(f"{name}, {t} thread{'s' if str(t) != '1' else ''}: our fastest "
                         f"format that matches Keras ({ours}, {ms:.2f} ms) vs LCE's fastest "
                         f"setting ({lce}, {lce_ms:.2f} ms): {ratio:.2f}x, {who} (target <= "
                         f"{TARGET}x: {met})")
    return lines


def size_lines(result):
    """Where LCE is ahead: per fully binary variant, its file against our smallest
    one, and how fast our one-bit files run as stored, against LCE's fastest."""
    variants = {v["variant"]: v for v in result["variants"]}
    t = result["threads"][0]
    lines = []
    for name in FULLY_BINARY:
        if name not in variants:
            continue
        v = variants[name]
        ours = [r for r in v["files"] if r["side"] == "keras_onebit" and r.get(f"ms_{t}t")]
        lce = [r for r in _lce_rows(v) if r.get(f"ms_{t}t")]
        if not ours or not lce:
            continue
        small = min(ours, key=lambda r: r["x_limit"])
        fast = min(lce, key=lambda r: r[f"ms_{t}t"])
        lines.append(f"{name}: LCE's file {lce[0]['x_limit']:.3f}x the one-bit limit, our "
                     f"smallest {small['x_limit']:.3f}x ({small['format']}), which runs as stored "
                     f"at {small[f'ms_{t}t'] / fast[f'ms_{t}t']:.2f}x LCE's fastest time ({t} "
                     "thread)")
    return lines


def notes(result):
    """What the run shows beyond its tables, every number read from `result`;
    None when the run lacks the seeded variants or a row that they compare."""
    variants = {v["variant"]: v for v in result["variants"]}
    needed = {"weights": ("lce", "packed", "packed_int8"),
              "binary": ("lce", "packed", "packed_int8", "int8")}
    if any(name not in variants or not {*rows} <= {r["format"] for r in variants[name]["files"]}
           for name, rows in needed.items()):
        return None
    w, b = variants["weights"], variants["binary"]
    ours_w = [_row(w, f)["x_limit"] for f in ("packed", "packed_int8")]
    lce, packed = _row(b, "lce"), _row(b, "packed")
    binary_diff = b["larq_vs_keras_onebit"]
    weights_diff = f"{w['larq_vs_keras_onebit']['max_rel_diff']:.0e}".replace("e-0", "e-")
    agree = ", ".join(f"{f} {_row(b, f)['argmax_agreement']:.3f}"
                      for f in ("float", "int8", "packed", "packed_int8")
                      if f in {r["format"] for r in b["files"]})
    return (
        "What the run shows. (1) Our weights copied into larq give the same network: logits within "
        f"{weights_diff} of their scale for one-bit weights. In "
        "a fully binary net a few pre-sign values that lie within float round-off of 0 can take "
        f"the other sign in the other library: logits within {binary_diff['max_rel_diff']:.0%} of "
        f"their scale, argmax agreement {binary_diff['argmax_agreement']:.3f} on these "
        f"{binary_diff['images']} images (seeded WRN-16-4). (2) LCE packs a convolution only "
        "when its input is binary too: for the paper's net (real activations) its file is a float "
        f"file, {_row(w, 'lce')['x_limit']:.1f}x the one-bit limit, where our packed formats are "
        f"{min(ours_w):.2f}-{max(ours_w):.2f}x. For the fully binary WRN-16-4 LCE's file "
        f"(LceBconv2d) is {lce['x_limit']:.3f}x the limit, ours {packed['x_limit']:.3f}x (packed) "
        f"and {_row(b, 'packed_int8')['x_limit']:.3f}x (packed_int8). (3) Our int8 formats "
        "convolve the signs exactly (docs/FORMAT.md), so every format agrees with Keras as the "
        f"float file does: {agree} on the seeded fully binary WRN-16-4 (near-tied logits). "
        "(4) Speed, each side at its fastest (LCE's published benchmarks are on Arm, which this "
        "x86-64 machine is not; on a phone the order may differ, not measured here): "
        + "; ".join(speed_lines(result)) + ". Where LCE is ahead: the size of a fully binary "
        "file, and our fastest file is int8, about 7x the limit (`export.expand` gives its "
        "speed to a packed_int8 download at load time, docs/DEPLOY_PHONE.md): "
        + "; ".join(size_lines(result)) + ". (5) A training step of the same network took "
        f"{w['train_ratio']:.2f}x larq's time (one-bit weights) and {b['train_ratio']:.2f}x "
        "(fully binary); steps of about one second vary by about 10% between runs here.")


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
        f"(`bench/peers_env/.venv`: {pinned}), driven over a pipe "
        "(`bench/peers_env/larq_worker.py`). "
        "Also the trained fully binary `bireal_20_2-cifar10-1bit` (`--bireal`), rebuilt in larq "
        "with `ste_sign` on inputs and kernels: its +-1 kernels copied, each conv's per-channel "
        "scale folded into the BN after it. LCE files are run by LCE's interpreter in every "
        "setting that changes its kernels (`lce`: its defaults; `+indirect`: "
        "`use_indirect_bgemm=True`; `+xnnpack`: `use_xnnpack=True`), ours by LiteRT.", "",
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
            if not row["format"].startswith("lce+"):  # the same file as lce
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
            "`bench/peers_env/.venv`; the end of `bench/peers_env/install.log`:", "", "```",
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
              "TensorFlow of requirements.txt; larq: Keras 2 + TensorFlow 2.15):", ""]
    lines += training_table(result)
    found = notes(result)
    lines += ["", found] if found else []
    return "\n".join(lines + ["", ""])
