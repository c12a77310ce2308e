"""Charts of the benchmark results: a PNG per table of bench/README.md.

    python bench/charts.py [--results bench/results]

Reads <results>/<benchmark>.json (train_step, input_pipeline, export,
stochastic_storage, iterative, and peers) and writes <results>/<chart>.png.
A missing JSON file is skipped. The charts plot only what the JSON holds; the
dashed lines are the issues' targets, as stated in bench/README.md. Each PNG is
written atomically and holds no date or version, so the same JSON gives the
same bytes.
"""

import argparse
import json
import math
import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
DPI = 100
SIZE_TARGETS = {"wrn_16_4": 1.10, "wrn_20_10": 1.03}  # issue 12, as in bench/export.py
STEP_TARGET = 1.05  # issue 2
PIPELINE_TARGET = 5.0  # issue 5
SCALE_ORDER = ("max", "p99.9", "p99", "p95", "fixed 2.0")
VARIANT_ORDER = ("float", "binary_from_start", "forward", "reverse", "random")
# Behind a bar's label, so a target line crossing it does not hide the digits.
LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5}


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def ordered(keys, order):
    """`keys` in the order of `order`, then the others in their own order."""
    keys = list(keys)
    return [k for k in order if k in keys] + [k for k in keys if k not in order]


def title(text, data):
    """`text` with the model and the run date, when the JSON names them."""
    parts = []
    if data.get("model"):
        parts.append(str(data["model"]))
    if data.get("date"):
        parts.append(f"run {data['date']}")
    return f"{text} ({', '.join(parts)})" if parts else text


def target_line(ax, value, label, vertical=False):
    line = ax.axvline if vertical else ax.axhline
    line(value, color="tab:red", linestyle="--", linewidth=1, label=label)


def parity_line(ax, label, vertical=False):
    line = ax.axvline if vertical else ax.axhline
    line(1.0, color="black", linewidth=1, label=label)


def slot(group, i, count, width):
    """x of bar `i` of `count` side by side in group `group`."""
    return group + (i - (count - 1) / 2) * width


def step_ratio(ax, models, policies, by_key):
    width = 0.8 / len(policies)
    for i, policy in enumerate(policies):
        found = [(slot(k, i, len(policies), width), by_key[m, policy])
                 for k, m in enumerate(models) if (m, policy) in by_key]
        ratios = [r["ratio"] for _, r in found]
        bars = ax.bar([x for x, _ in found], [v - 1.0 for v in ratios], width, bottom=1.0,
                      label=policy)
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in ratios], padding=2, fontsize=8)
    parity_line(ax, "1.0 (same time)")
    target_line(ax, STEP_TARGET, f"target <= {STEP_TARGET}")
    ratios = [r["ratio"] for r in by_key.values()]
    ax.set_ylim(min(0.95, min(ratios) - 0.02), max(STEP_TARGET, max(ratios)) + 0.03)
    ax.set_xticks(range(len(models)), models)
    ax.set(xlabel="model", ylabel="one-bit / float step time",
           title="step-time ratio (bars start at 1.0)")
    ax.legend(loc="upper left", fontsize=8)


def step_ms(ax, models, policies, by_key):
    series = [(p, kind) for p in policies for kind in ("one_bit", "float")]
    width = 0.8 / len(series)
    for i, (policy, kind) in enumerate(series):
        found = [(slot(k, i, len(series), width), by_key[m, policy])
                 for k, m in enumerate(models) if (m, policy) in by_key]
        ms = [r[f"{kind}_s"] * 1000 for _, r in found]
        bars = ax.bar([x for x, _ in found], ms, width, label=f"{kind.replace('_', '-')}, {policy}",
                      hatch="//" if kind == "float" else None)
        ax.bar_label(bars, labels=[f"{v:.0f}" for v in ms], padding=2, fontsize=7)
    ax.set_xticks(range(len(models)), models)
    ax.set(xlabel="model", ylabel="ms per training step", title="median step time")
    ax.margins(y=0.12)
    ax.legend(loc="upper left", fontsize=8)


def train_step(data):
    """One-bit / float step-time ratio and ms per step, per model and dtype policy."""
    rows = data.get("rows") or []
    if not rows:
        return None
    models = list(dict.fromkeys(r["model"] for r in rows))
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    by_key = {(r["model"], r["policy"]): r for r in rows}
    fig, (ax_ratio, ax_ms) = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    step_ratio(ax_ratio, models, policies, by_key)
    step_ms(ax_ms, models, policies, by_key)
    setting = []
    if rows[0].get("batch"):
        setting.append(f"batch {rows[0]['batch']}")
    if data.get("threads"):
        setting.append(f"{data['threads']} threads")
    setting = f" ({', '.join(setting)})" if setting else ""
    fig.suptitle(title(f"Training step, one-bit vs float{setting}", data))
    return fig


def input_pipeline(data):
    """Images/s of the augmented pipeline vs what training consumes, log scale."""
    pipeline, training = data.get("pipeline_images_per_s"), data.get("training_images_per_s")
    if not (is_number(pipeline) and is_number(training)):
        return None
    fig, ax = plt.subplots(figsize=(9, 3), layout="constrained")
    values = [pipeline, training]
    bars = ax.barh([0, 1], values, 0.6)
    ax.bar_label(bars, labels=[f"{v:,.0f} images/s" for v in values], padding=3, fontsize=8)
    ax.set_yticks([0, 1], ["augmented pipeline", "one-bit training"])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(training / 3, pipeline * 5)
    target_line(ax, PIPELINE_TARGET * training,
                f"target: pipeline >= {PIPELINE_TARGET:g}x training", vertical=True)
    ax.set_xlabel("images per second (log scale)")
    ax.legend(loc="lower right", fontsize=8)
    batch = f", batch {data['batch']}" if data.get("batch") else ""
    ratio = f": {data['ratio']:.1f}x" if is_number(data.get("ratio")) else ""
    ax.set_title(title(f"Input pipeline vs training{ratio}{batch}", data))
    return fig


def export_size(data):
    """File size / one-bit limit per format, per model, log scale."""
    models = data.get("models") or []
    if not models:
        return None
    fig, axes = plt.subplots(1, len(models), figsize=(7 * len(models), 4.5), squeeze=False,
                             layout="constrained")
    for ax, model in zip(axes[0], models, strict=True):
        rows = [r for r in model["rows"] if is_number(r.get("ratio_to_limit"))]
        values = [r["ratio_to_limit"] for r in rows]
        bars = ax.barh(range(len(rows)), values, 0.7)
        ax.bar_label(bars, labels=[f"{r['ratio_to_limit']:.3f}x  ({r['bytes']:,} B)"
                                   for r in rows], padding=3, fontsize=8, bbox=LABEL_BOX)
        ax.set_yticks(range(len(rows)), [r["format"] for r in rows])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(0.8, max(values) * 12)
        parity_line(ax, "one-bit limit (1.0x)", vertical=True)
        target = SIZE_TARGETS.get(model["model"])
        if target:
            target_line(ax, target, f"target for packed formats <= {target:.2f}x", vertical=True)
        ax.set_xlabel("file size / one-bit limit (log scale)")
        ax.set_title(f"{model['model']}: one-bit limit {model['onebit_limit_bytes']:,} bytes")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=8)
    fig.suptitle(title("Export: file size per format", data))
    return fig


def export_latency(data):
    """LiteRT latency per format relative to float, at each thread count, per model."""
    models = data.get("models") or []
    threads = data.get("threads") or ["1", "2"]
    if not models:
        return None
    fig, axes = plt.subplots(1, len(models), figsize=(7 * len(models), 4.5), squeeze=False,
                             layout="constrained")
    height = 0.8 / len(threads)
    for ax, model in zip(axes[0], models, strict=True):
        rows = [r for r in model["rows"]
                if all(is_number(r.get(f"vs_float_{t}t")) for t in threads)]
        for i, t in enumerate(threads):
            ys = [k + (i - (len(threads) - 1) / 2) * height for k in range(len(rows))]
            bars = ax.barh(ys, [r[f"vs_float_{t}t"] for r in rows], height,
                           label=f"{t} thread{'s' if str(t) != '1' else ''}")
            ax.bar_label(bars, labels=[f"{r[f'vs_float_{t}t']:.2f}x  ({r[f'ms_{t}t']:.1f} ms)"
                                       for r in rows], padding=3, fontsize=7, bbox=LABEL_BOX)
        ax.set_yticks(range(len(rows)), [r["format"] for r in rows])
        ax.invert_yaxis()
        ax.margins(x=0.3)
        ax.set_xlim(left=0)
        parity_line(ax, "1.0x float (target for the fastest packed format)", vertical=True)
        ax.set_xlabel("LiteRT latency / float's latency (batch 1)")
        ax.set_title(f"{model['model']}")
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title("Export: LiteRT latency per format relative to float; labels: ratio "
                       "(ms per image)", data))
    return fig


def stochastic_memory(data):
    """Peak memory of each training step, exact vs stochastic storage, per variant."""
    memory = data.get("memory") or {}
    if not memory:
        return None
    fig, axes = plt.subplots(1, len(memory), figsize=(6 * len(memory), 4.2), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, (variant, runs) in zip(axes[0], memory.items(), strict=True):
        for storage, run in runs.items():
            if not isinstance(run, dict) or not run.get("peak_step_mb"):
                continue
            peaks = run["peak_step_mb"]
            seconds = f", {run['step_s']:.2f} s/step" if is_number(run.get("step_s")) else ""
            ax.plot(range(1, len(peaks) + 1), peaks, marker="o", label=f"{storage}{seconds}")
        ratio = runs.get("worst_stochastic_over_best_exact")
        worst = f": worst stochastic / best exact {ratio:.2f}x" if is_number(ratio) else ""
        ax.set_title(f"{variant}{worst}", fontsize=10)
        ax.set(xlabel="training step", ylabel="peak memory above the pre-step level (MB)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower right", fontsize=8)
    batch = f", batch {data['batch']}" if data.get("batch") else ""
    fig.suptitle(title(f"Stochastic one-bit activation storage: peak memory per step{batch}",
                       data))
    return fig


def stochastic_gradient(data):
    """Weight-gradient error of one draw against the exact gradient, per choice of scale."""
    errors = data.get("gradient_error") or {}
    if not errors:
        return None
    scales = ordered(errors, SCALE_ORDER)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    panels = (("relative_l2_error", "relative L2 error (lower is better)"),
              ("cosine", "cosine to the exact gradient (higher is better)"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        values = [errors[s].get(key) for s in scales]
        bars = ax.bar(range(len(scales)), [v if is_number(v) else 0 for v in values], 0.6)
        ax.bar_label(bars, labels=[f"{v:.2f}" if is_number(v) else "-" for v in values],
                     padding=2, fontsize=8)
        ax.set_xticks(range(len(scales)), scales)
        ax.set(xlabel="scale s", ylabel=label)
        ax.margins(y=0.12)
    fig.suptitle(title("Stochastic storage: weight-gradient error of one draw, by scale", data))
    return fig


def iterative(data):
    """Test error per variant: the mean as a bar, each seed as a dot."""
    variants = data.get("variants") or {}
    if not variants:
        return None
    names = ordered(variants, VARIANT_ORDER)
    means = [variants[n]["mean"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    bars = ax.bar(range(len(names)), means, 0.6, label="mean")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in means], label_type="center", color="white",
                 fontsize=9)
    seeds = [(k, e) for k, n in enumerate(names) for e in variants[n].get("test_error_percent", [])]
    if seeds:
        ax.plot([k for k, _ in seeds], [e for _, e in seeds], "o", color="black", markersize=4,
                label="each seed")
    ax.set_xticks(range(len(names)), names)
    ax.set(xlabel="variant", ylabel="MNIST test error (%)")
    ax.margins(y=0.12)
    ax.legend(loc="upper left", fontsize=8)
    budget = ""
    if data.get("epochs"):
        budget = f", {data['epochs']} epochs"
        if data.get("epochs_per_layer"):
            budget += f", {data['epochs_per_layer']} per layer"
    ax.set_title(title(f"Iterative layer binarization: MLP on MNIST{budget}", data))
    return fig


PEER_VALUES = (("bytes", "file size (bytes, log scale)", "{:,.0f}"),
               ("x_limit", "size / one-bit limit (log scale)", "{:.3f}x"),
               ("ms", "latency (ms)", "{:.2f}"))
PEER_NAME = ("variant", "side", "format")


def peer_rows(data):
    """The rows of peers.json: its "rows", and the "rows" or "files" of each of its
    "variants"."""
    rows = list(data.get("rows") or [])
    for variant in data.get("variants") or []:
        if isinstance(variant, dict):
            rows += variant.get("rows") or variant.get("files") or []
    return [r for r in rows if isinstance(r, dict)]


def peer_panels(rows):
    """(key, axis label, label format) of each value some row holds: bytes, x_limit,
    ms, and ms_<n>t (latency at n threads)."""
    threads = sorted({int(k[3:-1]) for r in rows for k in r
                      if k.startswith("ms_") and k.endswith("t") and k[3:-1].isdigit()})
    values = PEER_VALUES + tuple((f"ms_{t}t", f"latency, {t} thread{'s' * (t != 1)} (ms)",
                                  "{:.2f}") for t in threads)
    return [v for v in values if any(is_number(r.get(v[0])) for r in rows)]


def peers(data):
    """Whatever of bytes, x_limit and latency the rows hold, one panel each, a bar per
    row named by its variant, side and format."""
    rows = peer_rows(data)
    panels = peer_panels(rows)
    if not panels:
        return None
    names = [" / ".join(str(r[k]) for k in PEER_NAME if r.get(k) is not None) or f"row {i + 1}"
             for i, r in enumerate(rows)]
    sides = list(dict.fromkeys(r.get("side") for r in rows))
    colors = [f"C{sides.index(r.get('side')) % 10}" for r in rows]  # a color per side (library)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels) + 2, 0.3 * len(rows) + 2),
                             squeeze=False, sharey=True, layout="constrained")
    for ax, (key, label, fmt) in zip(axes[0], panels, strict=True):
        values = [r.get(key) if is_number(r.get(key)) else None for r in rows]
        shown = [v for v in values if v is not None and v > 0]
        bars = ax.barh(range(len(rows)), [v if v is not None else 0 for v in values], 0.7,
                       color=colors)
        ax.bar_label(bars, labels=[fmt.format(v) if v is not None else "-" for v in values],
                     padding=3, fontsize=7, bbox=LABEL_BOX)
        if key in ("bytes", "x_limit") and shown:
            ax.set_xscale("log")
            ax.set_xlim(min(shown) / 2, max(shown) * 20)
        else:
            ax.margins(x=0.3)
        if key == "x_limit":
            parity_line(ax, "one-bit limit (1.0x)", vertical=True)
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xlabel(label)
    axes[0][0].set_yticks(range(len(rows)), names)
    axes[0][0].invert_yaxis()
    fig.suptitle(title("Peers", data))
    return fig


CHARTS = {
    "train_step": (train_step,),
    "input_pipeline": (input_pipeline,),
    "export": (export_size, export_latency),
    "stochastic_storage": (stochastic_memory, stochastic_gradient),
    "iterative": (iterative,),
    "peers": (peers,),
}


def save(fig, path):
    """Writes `fig` to `path` through a temporary file in the same directory,
    with no software version or date in the PNG."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def write_all(results=RESULTS):
    """Writes the chart of every result file present in `results`; returns the paths."""
    results = pathlib.Path(results)
    written = []
    for name, charts in CHARTS.items():
        source = results / f"{name}.json"
        if not source.is_file():
            continue
        data = json.loads(source.read_text())
        for chart in charts:
            fig = chart(data)
            if fig is not None:
                written.append(save(fig, results / f"{chart.__name__}.png"))
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS),
                        help="Directory of the result JSON files; the PNGs go there too.")
    args = parser.parse_args(argv)
    for path in write_all(args.results):
        print("wrote", path)


if __name__ == "__main__":
    main()
