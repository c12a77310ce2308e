"""Helpers shared by the benchmarks: side-by-side timing and result files."""

import json
import pathlib
import statistics
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def alternate(fns, rounds, repeats=1):
    """Times each callable in `fns` (a dict) `rounds` times, interleaved so
    machine noise hits every variant alike. Returns {name: [seconds, ...]}."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            times[name].append((time.perf_counter() - start) / repeats)
    return times


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
