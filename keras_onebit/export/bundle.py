"""Exports one model in every format into a folder, with a report.

    export_bundle(model, "export/wrn_20_1", images=..., representative=...)

writes `<name>.onebit` (the packed archive), `<name>_<format>.tflite` for each
TFLite format, `model_data.cc/.h` for micro, and `report.json` / `report.md`:
file sizes against the one-bit limit, max |difference| and argmax agreement
against Keras on real images, LiteRT latency, TFLite Micro arena.
"""

import dataclasses
import pathlib
import time

import numpy as np

from keras_onebit import summary as memory_summary
from keras_onebit.export import bitpack, micro, report, sign_int8
from keras_onebit.export.deploy import check_supported
from keras_onebit.export.errors import ExportError
from keras_onebit.export.expand import expand
from keras_onebit.export.files import check_writable, write_bytes, write_text
from keras_onebit.export.packed import load_packed, save_packed
from keras_onebit.export.tflite import FORMATS, binary_activations, convert

NOTES = {
    "float": "+-alpha float32 kernels, XNNPACK",
    "int8": "full-integer PTQ; binary kernels exactly +-127 per channel",
    "int4": "fake_quant int4 kernels (+-7 per channel), int8 activations",
    "packed": "float model, filters as UINT8 sign bits + alpha, unpacked once into variables; "
              "convs as im2col products (XNNPACK)",
    "packed_int8": "int8 model, filters as UINT8 sign bits, unpacked once into int8 variables",
    "micro": "int8 + TFLM 1-bit LUT compression; TFLite Micro only",
}
SIGN_NOTE = ("binary activations: exact int8 convs of the signs (+-1 x +-127 -> n / 2), "
             "the rest float32 as in the float model; no calibration")
INT4_SIGN_NOTE = ("binary activations: int8's exact convs of the signs with INT4 +-7 filters "
                  "(+-1 x +-7 -> n / 2), the same outputs as int8; no calibration")
SIGN_NOTES = {"int8": SIGN_NOTE, "int4": INT4_SIGN_NOTE}


def parse_formats(formats):
    """A validated list of format names from "a,b" or a sequence."""
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"Unknown formats {unknown or formats!r}: expected a comma-separated "
                          f"subset of {', '.join(FORMATS)}.")
    return [f for f in FORMATS if f in formats]


def prepare_dir(out_dir):
    """Creates `out_dir` and checks that files can be written there."""
    out_dir = pathlib.Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"Cannot create output directory {out_dir}: {e}") from e
    check_writable(out_dir / "report.json")
    return out_dir


@dataclasses.dataclass
class _Checks:
    """How export_bundle measures each file."""
    images: np.ndarray  # compared with Keras
    reference: np.ndarray  # Keras's outputs on them
    signs: bool  # the model binarizes conv inputs (exact-sign formats)
    micro_images: int
    threads: int
    latency_runs: int
    tflm_formats: tuple
    out_dir: pathlib.Path
    progress: object


def export_bundle(model, out_dir, images, representative, formats=FORMATS, name=None,
                  source="", micro_images=20, threads=2, latency_runs=30, command="",
                  tflm_formats=("int8", "packed_int8"), progress=print, expansion_record=True):
    """Exports `model` in `formats` into `out_dir`; returns the report dict.

    `images`: real input images for the comparison with Keras; `representative`:
    images for int8 / int4 calibration. The micro format, and `tflm_formats`,
    also run in the TFLite Micro interpreter on `micro_images` images;
    `expansion_record`: as `tflite.convert`. Fails before any work on an
    unsupported layer or an unwritable folder."""
    formats = parse_formats(formats)
    check_supported(model)
    out_dir = prepare_dir(out_dir)
    name = name or model.name
    images = np.asarray(images, np.float32)
    steps = 2 + len(formats) + 1
    step = iter(range(1, steps + 1))

    def say(text):
        progress(f"[{next(step)}/{steps}] {text}", flush=True)

    start = time.perf_counter()
    say(f"Keras reference outputs on {len(images)} images")
    reference = model.predict(images, batch_size=100, verbose=0)
    mem = memory_summary(model, print_fn=lambda *a, **k: None)
    checks = _Checks(images, reference, binary_activations(model), micro_images, threads,
                     latency_runs, tuple(tflm_formats), out_dir, progress)
    say(f"packed archive {name}.onebit")
    rows = {"archive": _archive_row(model, out_dir / f"{name}.onebit", name, source, checks)}
    converted = _conversions(model, representative, checks.signs, expansion_record)
    for fmt in formats:
        say(f"{fmt}: converting")
        rows[fmt] = _format_row(fmt, name, converted, checks, mem["onebit_bytes"])
    say("report.json, report.md")
    _add_ratios(rows, mem["onebit_bytes"])
    return {
        "model": {"name": name, "source": source, "binary_weights": mem["binary_weights"],
                  "float_parameters": mem["float_parameters"],
                  "onebit_limit_bytes": mem["onebit_bytes"], "float32_bytes": mem["float32_bytes"]},
        "images": {"count": int(len(images)), "description": f"{len(images)} real images"},
        "threads": threads, "latency_runs": latency_runs, "command": command,
        "formats": rows, "seconds": time.perf_counter() - start,
    }


def _archive_row(model, archive, name, source, checks):
    """The packed archive, written and loaded back: its size and its outputs."""
    save_packed(model, archive, metadata={"name": name, "source": source})
    back = load_packed(archive).predict(checks.images[:100], batch_size=100, verbose=0)
    return {"file": archive.name, "bytes": archive.stat().st_size,
            **report.compare(checks.reference[:100], back),
            "notes": "load_packed(save_packed(m)) vs m"}


def _conversions(model, representative, signs, expansion_record):
    """fmt -> the file's bytes, each converted once: micro and packed_int8 reuse
    int8's, and a fully binary net's exact-sign formats the float file, as `convert`
    makes them."""
    cache = {}

    def converted(fmt):
        if fmt not in cache:
            if fmt == "micro":
                cache[fmt] = micro.compress(converted("int8"))
            elif fmt in sign_int8.FORMAT_BITS and signs:
                cache[fmt] = sign_int8.quantize_sign_convs(converted("float"),
                                                           sign_int8.FORMAT_BITS[fmt])[0]
            elif fmt in bitpack.BASE:
                cache[fmt] = bitpack.pack_filters(converted(bitpack.BASE[fmt]),
                                                  expansion_record=expansion_record)[0]
            else:
                cache[fmt] = convert(model, fmt, representative)
        return cache[fmt]

    return converted


def _format_row(fmt, name, converted, checks, limit):
    """Converts `fmt`, writes its file and measures it: size, agreement with Keras,
    latency, and the format's own checks (TFLite Micro, expansion, sign saturation)."""
    t0 = time.perf_counter()
    data = converted(fmt)
    path = write_bytes(checks.out_dir / f"{name}_{fmt}.tflite", data)
    row = {"file": path.name, "bytes": len(data), "convert_s": time.perf_counter() - t0,
           "notes": NOTES[fmt]}
    few = checks.images[:checks.micro_images]
    if checks.signs and fmt in SIGN_NOTES:
        row["notes"] = SIGN_NOTES[fmt]
        row.update(report.sign_saturation(data, few))
    if fmt == "micro":
        row.update(_micro_checks(data, converted("int8"), checks.reference, few,
                                 checks.out_dir, checks.progress))
    else:
        outputs = report.litert_outputs(data, checks.images, checks.threads)
        row.update(report.compare(checks.reference, outputs))
        row["latency_ms"] = report.latency_ms(data, checks.images[0], checks.threads,
                                              checks.latency_runs)
        if fmt in checks.tflm_formats:
            row.update(_tflm_checks(data, checks.reference, few))
        if fmt in bitpack.BASE:
            row.update(_expansion_checks(data, converted(bitpack.BASE[fmt]), checks.images,
                                         checks.threads, checks.latency_runs))
    checks.progress(f"    {path.name}: {len(data):,} bytes ({len(data) / limit:.2f}x one-bit "
                    "limit)" + (f", {row['latency_ms']:.2f} ms" if "latency_ms" in row else ""),
                    flush=True)
    return row


def _add_ratios(rows, limit):
    """Each row's size against the one-bit limit and latency against the float file."""
    float_ms = rows.get("float", {}).get("latency_ms")
    for row in rows.values():
        row["ratio_to_limit"] = row["bytes"] / limit
        if float_ms and row.get("latency_ms"):
            row["latency_vs_float"] = row["latency_ms"] / float_ms


def _expansion_checks(data, base, images, threads, latency_runs):
    """A packed file expanded at load time (`expand`): how long that takes, the
    expanded model's latency, and whether it is its plain twin byte for byte (else
    whether it computes the same outputs)."""
    t0 = time.perf_counter()
    expanded = expand(data)
    seconds = time.perf_counter() - t0
    same_bytes = expanded == base
    same = same_bytes or np.array_equal(report.litert_outputs(expanded, images, threads),
                                        report.litert_outputs(base, images, threads))
    return {"expand_ms": 1000.0 * seconds,
            "expanded_latency_ms": report.latency_ms(expanded, images[0], threads, latency_runs),
            "expanded_bytes": len(expanded), "expanded_byte_identical_to_plain": same_bytes,
            "expanded_bit_identical_to_plain": bool(same)}


def _tflm_checks(data, reference, images):
    """Runs a LiteRT-compatible model in TFLite Micro: arena and parity."""
    arena = micro.minimum_arena(data, images[0])
    outputs = micro.run(data, images, arena)
    parity = report.compare(reference[:len(images)], outputs)
    return {"tflm_arena_bytes": arena, "tflm_max_abs_diff": parity["max_abs_diff"],
            "tflm_argmax_agreement": parity["argmax_agreement"], "tflm_images": len(images)}


def _micro_checks(data, int8, reference, images, out_dir, progress):
    arena = micro.minimum_arena(data, images[0])
    declared = micro.declared_arena(arena)  # what model_data.h declares: minimum + margin
    int8_arena = micro.minimum_arena(int8, images[0])
    outputs = micro.run(data, images, declared)
    int8_outputs = micro.run(int8, images, int8_arena)
    cc, h = micro.c_source(data, arena_size=declared, minimum_arena=arena)
    write_text(out_dir / "model_data.cc", cc)
    write_text(out_dir / "model_data.h", h)
    progress(f"    model_data.cc/.h written; TFLM arena {declared:,} bytes declared = {arena:,} "
             f"measured minimum + {declared - arena:,} margin (int8 without compression: "
             f"{int8_arena:,} minimum)", flush=True)
    return {"tflm_arena_bytes": arena, "tflm_arena_declared_bytes": declared,
            "int8_tflm_arena_bytes": int8_arena,
            "bit_identical_to_int8_tflm": bool(np.array_equal(outputs, int8_outputs)),
            **report.compare(reference[:len(images)], outputs)}
