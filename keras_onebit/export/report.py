"""Measurements of exported models and the report files.

LiteRT: `ai_edge_litert.interpreter.Interpreter(model_content=..., num_threads=...)`
(`tf.lite.Interpreter` is deprecated in TF 2.21). TFLite Micro: micro.run.
"""

import json
import math
import time

import numpy as np

from keras_onebit.export import sign_int8
from keras_onebit.export.files import write_text


def litert_interpreter(model_bytes, threads=2, xnnpack=True, keep_tensors=False):
    """An allocated LiteRT interpreter; `xnnpack=False`: the builtin kernels only
    (no default delegate), whose int8 arithmetic is TFLite's reference rounding;
    `keep_tensors`: every intermediate tensor stays readable after `invoke`
    (builtin kernels only)."""
    from keras_onebit.errors import require

    module = require("ai_edge_litert.interpreter", "export", "Running a .tflite model (LiteRT)")
    options = {} if xnnpack and not keep_tensors else {
        "experimental_op_resolver_type": module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    if keep_tensors:
        options["experimental_preserve_all_tensors"] = True
    it = module.Interpreter(model_content=bytes(model_bytes), num_threads=threads, **options)
    it.allocate_tensors()
    return it


def litert_outputs(model_bytes, images, threads=2, xnnpack=True):
    """Outputs of a one-image-batch .tflite model for each image (float32 in)."""
    return interpreter_outputs(litert_interpreter(model_bytes, threads, xnnpack), images)


def interpreter_outputs(it, images):
    """Outputs of an allocated one-image-batch interpreter for each image."""
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    outputs = []
    for image in np.asarray(images, np.float32):
        it.set_tensor(inp, image[None])
        it.invoke()
        outputs.append(it.get_tensor(out)[0].copy())
    return np.stack(outputs)


def invoker(model_bytes, image, threads=2):
    """A no-argument callable running one inference (after one warm-up run,
    which also does the packed format's one-time unpack)."""
    it = litert_interpreter(model_bytes, threads)
    it.set_tensor(it.get_input_details()[0]["index"], np.asarray(image, np.float32)[None])
    it.invoke()
    return it.invoke


def latency_ms(model_bytes, image, threads=2, runs=30):
    """Median milliseconds per inference in LiteRT."""
    run = invoker(model_bytes, image, threads)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def sign_saturation(model_bytes, images):
    """How many values of the sign convs' int8 outputs sit at -128 or 127 (where
    |n| may exceed what the int8 output holds), and how many values there are,
    over `images` (a one-image-batch model; LiteRT's builtin kernels)."""
    outputs = sign_int8.sign_conv_outputs(model_bytes)
    it = litert_interpreter(model_bytes, threads=1, keep_tensors=True)
    inp = it.get_input_details()[0]["index"]
    saturated = total = 0
    for image in np.asarray(images, np.float32):
        it.set_tensor(inp, image[None])
        it.invoke()
        for t in outputs:
            q = it.get_tensor(t)
            saturated += int(np.count_nonzero((q == 127) | (q == -128)))
            total += q.size
    return {"sign_convs": len(outputs), "saturated_values": saturated, "values": total}


def compare(reference, outputs):
    """max |difference|, the same relative to max |reference|, argmax agreement."""
    reference, outputs = np.asarray(reference, np.float64), np.asarray(outputs, np.float64)
    diff = float(np.max(np.abs(reference - outputs)))
    scale = float(np.max(np.abs(reference))) or 1.0
    agree = float(np.mean(reference.argmax(-1) == outputs.argmax(-1)))
    return {"max_abs_diff": diff, "max_rel_diff": diff / scale, "argmax_agreement": agree,
            "images": int(len(reference))}


def _fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.2e}"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _arena_cell(row):
    """The TFLite Micro arena cell: "minimum / declared" bytes, the minimum alone
    where nothing is declared, "-" where the format did not run in TFLite Micro."""
    minimum, declared = row.get("tflm_arena_bytes"), row.get("tflm_arena_declared_bytes")
    if declared is None:
        return _fmt(minimum)
    return f"{_fmt(minimum)} / {_fmt(declared)}"


def _tflm_agreement_cell(row):
    """TFLite Micro argmax agreement and its image count, "-" where not run."""
    if row.get("tflm_argmax_agreement") is None:
        return "-"
    return f"{_fmt(row['tflm_argmax_agreement'])} ({_fmt(row.get('tflm_images'))})"


def markdown(report):
    """report.md text from the report dict."""
    m = report["model"]
    lines = [
        f"# Export report: {m['name']}", "",
        f"- model: {m['source']}",
        f"- binary weights: {m['binary_weights']:,}; float parameters: {m['float_parameters']:,}",
        f"- one-bit limit (binary / 8 + floats * 4): {m['onebit_limit_bytes']:,} bytes",
        f"- reference: Keras outputs on {report['images']['description']}",
        f"- LiteRT latency: median of {report['latency_runs']} runs, batch 1, "
        f"{report['threads']} threads",
        "- TFLite Micro arena: the minimum measured by bisection (1 kB steps) in the tflite-micro "
        "Python interpreter / the size model_data.h declares, minimum + max(16 kB, 5%) for other "
        "TFLite Micro builds (optimized kernels' scratch buffers, versions; "
        "keras_onebit/export/micro.py)",
        f"- created by `{report['command']}`", "",
        "- images: how many of them each row's differences and agreement were measured on "
        "(LiteRT, or TFLite Micro for micro); TFLM agree: the same in the TFLite Micro "
        "interpreter, on the number of images given",
        "",
        "| format | file | bytes | x one-bit limit | max abs diff | max rel diff | argmax agree "
        "| images | LiteRT ms | x float | TFLM arena min / declared | TFLM agree (images) "
        "| notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["formats"].items():
        lines.append("| " + " | ".join([
            name, row.get("file", "-"), _fmt(row.get("bytes")), _fmt(row.get("ratio_to_limit")),
            _fmt(row.get("max_abs_diff")), _fmt(row.get("max_rel_diff")),
            _fmt(row.get("argmax_agreement")), _fmt(row.get("images")),
            _fmt(row.get("latency_ms"), 2), _fmt(row.get("latency_vs_float"), 2),
            _arena_cell(row), _tflm_agreement_cell(row),
            row.get("notes", ""),
        ]) + " |")
    lines.append("")
    lines += _expansion_table(report)
    return "\n".join(lines)


def _expansion_table(report):
    """report.md's rows for the packed files expanded at load time (`expand`)."""
    rows = {name: row for name, row in report["formats"].items() if "expand_ms" in row}
    if not rows:
        return []
    float_ms = report["formats"].get("float", {}).get("latency_ms")
    lines = ["## Packed files expanded at load time", "",
             "`keras_onebit.export.expand` (or `export.interpreter(path)`) turns a packed file "
             "into its plain twin once, before the interpreter is built: one bit per weight on "
             "disk, the plain model's speed in memory.", "",
             "| format | expand ms | LiteRT ms as stored | LiteRT ms expanded | x float (expanded) "
             "| expanded bytes | the plain export's bytes | outputs bit-identical to it |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        ratio = row["expanded_latency_ms"] / float_ms if float_ms else None
        lines.append("| " + " | ".join([
            name, _fmt(row["expand_ms"], 1), _fmt(row.get("latency_ms"), 2),
            _fmt(row["expanded_latency_ms"], 2), _fmt(ratio, 2), _fmt(row["expanded_bytes"]),
            "yes" if row.get("expanded_byte_identical_to_plain") else "no",
            "yes" if row["expanded_bit_identical_to_plain"] else "no"]) + " |")
    lines.append("")
    return lines


def write(out_dir, report):
    """Writes report.json and report.md (atomically) in `out_dir`."""
    write_text(out_dir / "report.json", json.dumps(report, indent=2, sort_keys=True,
                                                   default=_json_default) + "\n")
    write_text(out_dir / "report.md", markdown(report))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")
