"""Helpers shared by the benchmarks: side-by-side timing and result files."""

import json
import pathlib
import statistics
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def measured(fn, repeats=1):
    """A callable that runs `fn` `repeats` times and returns the seconds per call."""
    def run():
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) / repeats

    return run


def alternate_reported(fns, rounds):
    """Calls each callable in `fns` (a dict) `rounds` times, interleaved so machine
    noise hits every variant alike; each returns its own seconds (e.g. `measured`,
    or a worker process that times itself). Returns {name: [seconds, ...]}."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(fn())
    return times


def alternate(fns, rounds, repeats=1):
    """Times each callable in `fns` (a dict) `rounds` times, `repeats` calls per
    timing, interleaved. Returns {name: [seconds per call, ...]}."""
    return alternate_reported({name: measured(fn, repeats) for name, fn in fns.items()}, rounds)


def cell(value, fmt="{:.2f}"):
    """A table cell: "-" for None, else `value` formatted."""
    return "-" if value is None else fmt.format(value)


def convert_formats(model, formats, representative):
    """Yields (format, .tflite bytes, seconds) for each format in order; a packed
    format packs its base conversion if that came first (what tflite.convert
    does, without converting twice; its seconds include the base's), micro
    compresses the int8 file."""
    from keras_onebit.export import bitpack, micro, tflite

    files, seconds = {}, {}
    for fmt in formats:
        base = bitpack.BASE.get(fmt)
        packs_base = base in files
        start = time.perf_counter()
        if fmt == "micro":
            files[fmt] = micro.compress(files.get("int8") or
                                        tflite.convert(model, "int8", representative))
        elif packs_base:
            files[fmt] = bitpack.pack_filters(files[base])[0]
        else:
            files[fmt] = tflite.convert(model, fmt, representative)
        seconds[fmt] = time.perf_counter() - start + (seconds[base] if packs_base else 0.0)
        yield fmt, files[fmt], seconds[fmt]


def median(values):
    return statistics.median(values)


def save(name, result):
    """Writes bench/results/<name>.json and returns its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def update_readme(heading, section, readme=None):
    """Replaces the section of bench/README.md that starts with `heading` (up
    to the next "## " heading) by `section`, or appends it; atomically."""
    readme = readme or RESULTS.parent / "README.md"
    text = readme.read_text()
    if heading in text:
        start = text.index(heading)
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(text.rstrip("\n") + "\n")
    tmp.replace(readme)
