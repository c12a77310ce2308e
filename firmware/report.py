"""The firmware report: what `make firmware` measured, read back from the tools' text output.

Pure functions (no toolchain, no TFLite Micro), so the tests check them anywhere:

- `parse_size(text)`: `arm-none-eabi-size -A` output -> text / data / bss bytes.
- `parse_symbols(text)`: `arm-none-eabi-nm -S -C` output -> {name: (address, size)}.
- `parse_run(text)`: the firmware's own output (examples/micro_main.cc) -> arena used, per input
  the top class and the output bits, stack and heap peaks.
- `parse_icount(text)`: the instruction-counting plugin's lines -> per inference counts.
- `build_record(...)`: one build's entry of report.json (the keys other tools read).
- `fits(build, part)`, `fit_table(builds, parts)`: which builds fit a microcontroller's budget.
- `markdown(report)`: report.md.
"""

import re
import struct

# Common microcontrollers: (name, flash bytes, RAM bytes, note). The budgets of the parts' data
# sheets; the RP2040 has no internal flash (2 MB is the QSPI flash of the Raspberry Pi Pico).
PARTS = (
    ("nRF52840", 1024 * 1024, 256 * 1024, "Cortex-M4F, 64 MHz"),
    ("STM32F746", 1024 * 1024, 320 * 1024, "Cortex-M7, 216 MHz"),
    ("STM32H743", 2 * 1024 * 1024, 1024 * 1024, "Cortex-M7, 480 MHz"),
    ("RP2040", 2 * 1024 * 1024, 264 * 1024, "Cortex-M0+, 133 MHz; 2 MB external flash"),
)

# Sections that the flash holds besides .data's initial values (firmware/sections.ld).
TEXT_SECTIONS = (".vectors", ".text", ".ARM.extab", ".ARM.exidx")
REQUIRED_KEYS = ("core", "kernels", "format", "flash_bytes", "ram_bytes", "arena_used_bytes",
                 "arena_declared_bytes", "instructions_per_inference", "outputs_bit_identical")


class ReportError(ValueError):
    """A tool's output is not what the firmware report expects."""


def parse_size(text):
    """{"text", "data", "bss"} bytes from `arm-none-eabi-size -A` (SysV format) output."""
    sections = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0].startswith(".") and fields[1].isdigit():
            sections[fields[0]] = int(fields[1])
    if ".text" not in sections:
        raise ReportError("arm-none-eabi-size printed no .text section.")
    return {"text": sum(sections.get(name, 0) for name in TEXT_SECTIONS),
            "data": sections.get(".data", 0), "bss": sections.get(".bss", 0)}


def parse_symbols(text):
    """{demangled name: (address, size)} from `arm-none-eabi-nm -S -C` output (sized symbols)."""
    symbols = {}
    for line in text.splitlines():
        match = re.match(r"([0-9a-f]+) ([0-9a-f]+) \w (.+)$", line.strip())
        if match:
            symbols[match.group(3)] = (int(match.group(1), 16), int(match.group(2), 16))
    return symbols


def symbol(symbols, suffix):
    """(address, size) of the one symbol whose name ends with `suffix`."""
    found = [value for name, value in symbols.items() if name.endswith(suffix)]
    if len(found) != 1:
        raise ReportError(f"expected one symbol named *{suffix}, found {len(found)}.")
    return found[0]


def bits_to_floats(words):
    """float32 values from their bits as hexadecimal words."""
    return [struct.unpack("<f", struct.pack("<I", int(word, 16)))[0] for word in words]


def float_bits(values):
    """The hexadecimal bits of float32 values, as the firmware prints them."""
    return [f"{struct.unpack('<I', struct.pack('<f', float(v)))[0]:08x}" for v in values]


def parse_run(text):
    """The firmware's output -> {"arena_used", "arena_size", "outputs": [{"input", "top",
    "bits"}], "stack_peak", "heap_peak"}; ReportError when a part is missing."""
    arena = re.search(r"^arena used: (\d+) of (\d+) bytes$", text, re.M)
    stack = re.search(r"^stack peak: (\d+) bytes$", text, re.M)
    heap = re.search(r"^heap peak: (\d+) bytes$", text, re.M)
    outputs = [{"input": m.group(1), "top": int(m.group(2)), "bits": m.group(3).split()}
               for m in re.finditer(r"^input (\S+): top class (\d+)\n"
                                    r"probabilities:.*\nbits: ([0-9a-f ]+)$", text, re.M)]
    missing = [name for name, found in (("arena used", arena), ("stack peak", stack),
                                        ("heap peak", heap), ("outputs", outputs)) if not found]
    if missing:
        last = text.strip().splitlines()[-1:] or ["(no output)"]
        raise ReportError(f"the firmware's output has no {', '.join(missing)}; "
                          f"its last line: {last[0]}")
    return {"arena_used": int(arena.group(1)), "arena_size": int(arena.group(2)),
            "outputs": outputs, "stack_peak": int(stack.group(1)), "heap_peak": int(heap.group(1))}


def parse_icount(text):
    """[(instructions, instructions in the regions)] per inference, in order."""
    found = re.findall(r"^icount: invoke (\d+) instructions (\d+) region (\d+)$", text, re.M)
    counts = [(int(total), int(region)) for _, total, region in found]
    if not counts:
        raise ReportError("the instruction-counting plugin printed no inference.")
    if [int(index) for index, _, _ in found] != list(range(len(found))):
        raise ReportError("the instruction-counting plugin skipped an inference.")
    return counts


def ordered(bits):
    """A float32's hexadecimal bits as an integer that counts ulps (negatives below zero)."""
    value = int(bits, 16)
    return value if value < 0x80000000 else 0x80000000 - value


def ulp_distance(bits, expected):
    """The largest distance in float32 ulps between two lists of hexadecimal bits."""
    if len(bits) != len(expected):
        raise ReportError(f"the firmware printed {len(bits)} output values, expected "
                          f"{len(expected)}.")
    return max((abs(ordered(a) - ordered(b)) for a, b in zip(bits, expected, strict=True)),
               default=0)


def compare_outputs(outputs, reference):
    """[{"input", "top", "bit_identical", "max_ulp", "top_as_python"}]: each firmware output
    against the Python interpreter's float32 values for the same input (`reference`: {input:
    values}): whether every bit agrees, else by how many ulps at most, and whether the top class
    is the interpreter's. A float SOFTMAX computes expf with the firmware's C library (newlib), not
    the host's, and so can differ by an ulp or two where everything before it is bit-identical."""
    compared = []
    for output in outputs:
        values = reference[output["input"]]
        expected = float_bits(values)
        top = max(range(len(values)), key=lambda i: values[i])
        compared.append({"input": output["input"], "top": output["top"],
                         "bit_identical": output["bits"] == expected,
                         "max_ulp": ulp_distance(output["bits"], expected),
                         "top_as_python": output["top"] == top})
    return compared


def build_record(*, core, kernels, fmt, board, size, symbols, run, icount, reference, labels,
                 macs, model_bytes):
    """One build's entry of report.json. `size`, `symbols`, `run`, `icount`: the parsed tool
    output; `reference`: the Python interpreter's outputs per input; `labels`: {input: label}."""
    arena_declared = symbol(symbols, "tensor_arena")[1]
    flash = size["text"] + size["data"]
    static_ram = size["data"] + size["bss"] - arena_declared
    ram = static_ram + run["arena_used"] + run["stack_peak"] + run["heap_peak"]
    instructions = [total for total, _ in icount]
    median = sorted(range(len(icount)), key=lambda i: icount[i][0])[len(icount) // 2]
    per_inference, decode = icount[median]
    compared = compare_outputs(run["outputs"], reference)
    for entry in compared:
        entry["label"] = labels.get(entry["input"])
    return {
        "core": core, "kernels": kernels, "format": fmt, "board": board,
        "text_bytes": size["text"], "data_bytes": size["data"], "bss_bytes": size["bss"],
        "model_bytes": model_bytes, "model_array_bytes": symbol(symbols, "g_model_data")[1],
        "flash_bytes": flash,
        "ram_bytes": ram,
        "ram_with_declared_arena_bytes": static_ram + arena_declared + run["stack_peak"]
        + run["heap_peak"],
        "arena_used_bytes": run["arena_used"], "arena_declared_bytes": arena_declared,
        "arena_declared_suffices": run["arena_used"] <= arena_declared,
        "stack_peak_bytes": run["stack_peak"], "heap_peak_bytes": run["heap_peak"],
        "instructions_per_inference": per_inference,  # the median inference
        "instructions_each_inference": instructions,
        "decode_instructions_per_inference": decode,
        "macs_per_inference": macs,
        "instructions_per_mac": round(per_inference / macs, 3),
        "outputs": compared,
        "outputs_bit_identical": all(entry["bit_identical"] for entry in compared),
        "outputs_max_ulp": max(entry["max_ulp"] for entry in compared),
        "tops_as_python": all(entry["top_as_python"] for entry in compared),
    }


def check_record(record):
    """Raises ReportError unless `record` has every key report.json promises."""
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise ReportError(f"a build of report.json lacks {', '.join(missing)}.")
    return record


def fits(build, part):
    """Whether a build fits a part: its flash, and its RAM with the arena the export declares."""
    _, flash, ram, _ = part
    return build["flash_bytes"] <= flash and build["ram_with_declared_arena_bytes"] <= ram


def fit_table(builds, parts=PARTS):
    """[(part, {format: (fits, flash share, RAM share)})] for the given builds (one per format,
    e.g. the CMSIS-NN builds of one core)."""
    rows = []
    for part in parts:
        cells = {}
        for build in builds:
            cells[build["format"]] = (fits(build, part), build["flash_bytes"] / part[1],
                                      build["ram_with_declared_arena_bytes"] / part[2])
        rows.append((part, cells))
    return rows


def _kb(n):
    return f"{n / 1024:,.1f} kB"


def markdown(report):
    """report.md: the builds, the comparison with the Python interpreter, and the fit table."""
    builds = report["builds"]
    conditions = report["conditions"]
    lines = [f"# Firmware of {report['model']}", "",
             f"Built and run by `make firmware` on {conditions['date']}: {conditions['compiler']}, "
             f"{conditions['qemu']}, tflite-micro {conditions['tflite_micro']}, BUILD_TYPE="
             f"{conditions['build_type']}. Flash = text + data; RAM = data + bss (without the "
             "arena array) + the arena used + the stack and heap peaks; instructions counted by "
             "qemu (firmware/icount.c).", "", *builds_markdown(builds), "",
             "Top class per input (label in brackets), the same in every build "
             "when the outputs are bit-identical:", ""]
    lines.append(", ".join(f"{o['input']}: {o['top']}"
                           + (f" [{o['label']}]" if o.get("label") is not None else "")
                           for o in builds[0]["outputs"]))
    lines += ["", "## Fits a part (CMSIS-NN builds, RAM with the declared arena)", "",
              *fit_markdown(fit_builds(builds))]
    return "\n".join(lines) + "\n"


def fit_builds(builds):
    """The builds the fit table shows: CMSIS-NN on the first core measured (one per format)."""
    return [b for b in builds if b["kernels"] == "cmsis_nn" and b["core"] == builds[0]["core"]]


def builds_markdown(builds):
    """The measured builds as Markdown table lines."""
    lines = ["| core | kernels | format | flash | RAM | RAM, declared arena "
             "| arena used / declared | instructions / inference | per MAC | decode share "
             "| outputs bit-identical |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for b in builds:
        share = b["decode_instructions_per_inference"] / b["instructions_per_inference"]
        lines.append(
            f"| {b['core']} | {b['kernels']} | {b['format']} | {_kb(b['flash_bytes'])} | "
            f"{_kb(b['ram_bytes'])} | {_kb(b['ram_with_declared_arena_bytes'])} | "
            f"{b['arena_used_bytes']:,} / {b['arena_declared_bytes']:,} | "
            f"{b['instructions_per_inference']:,} | {b['instructions_per_mac']:.2f} | "
            f"{share:.1%} | {_identical(b)} |")
    return lines


def _identical(build):
    """The table's last cell: yes, or by how many ulps the outputs differ at most."""
    if build["outputs_bit_identical"]:
        return "yes"
    return f"no: within {build['outputs_max_ulp']} ulp" if "outputs_max_ulp" in build else "NO"


def fit_markdown(builds):
    """The fit table as Markdown lines."""
    formats = [b["format"] for b in builds]
    lines = ["| part | flash | RAM | " + " | ".join(formats) + " |",
             "|---|---:|---:|" + "---|" * len(formats)]
    for part, cells in fit_table(builds):
        row = []
        for fmt in formats:
            ok, flash_share, ram_share = cells[fmt]
            row.append(f"{'fits' if ok else 'no'} (flash {flash_share:.0%}, RAM {ram_share:.0%})")
        lines.append(f"| {part[0]} ({part[3]}) | {_kb(part[1])} | {_kb(part[2])} | "
                     + " | ".join(row) + " |")
    return lines
