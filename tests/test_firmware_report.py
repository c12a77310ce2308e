"""`make firmware` without its tools: the report's parsing and arithmetic, the fit table, the
one-line refusals, and the committed measurement (bench/results/firmware.json) against its own
arithmetic. Building and running the firmware needs the Arm toolchain, qemu and tflite-micro
sources, which CI does not have (docs/DEPLOY_MICRO.md)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import load_script

ROOT = pathlib.Path(__file__).resolve().parent.parent


report = load_script("firmware", "report")
run = load_script("firmware", "run")

SIZE_A = """firmware.elf  :
section              size        addr
.text              402332           0
.ARM.exidx              8      402332
.data                2480   536870912
.bss               226992   536873392
.comment               30           0
.ARM.attributes        46           0
Total              631888
"""

NM = """00000210 00000004 T firmware_invoke_begin
00000214 00000004 T firmware_invoke_end
00012340 00061a80 R g_model_data
00073dc0 00000004 R g_model_data_len
20000a00 00036c00 b (anonymous namespace)::tensor_arena
00001000 00000120 T tflite::DecodeStateLut::DecompressToBuffer(void*)
00001120 00000010 T tflite::DecodeStateLut::Setup(TfLiteTensor const&, TfLiteTensor const&)
00004000 00000040 t tflite::(anonymous namespace)::DecodeEval(TfLiteContext*, TfLiteNode*)
"""


def firmware_output(outputs, arena_used=206960, arena=224256, stack=2712, heap=4312):
    """What examples/micro_main.cc prints for `outputs` ({input: float32 values})."""
    lines = [f"arena used: {arena_used} of {arena} bytes"]
    for name, values in outputs.items():
        lines.append(f"input {name}: top class {int(np.argmax(values))}")
        lines.append("probabilities: " + " ".join(f"{v:.5f}" for v in values))
        lines.append("bits: " + " ".join(report.float_bits(values)))
    lines += [f"stack peak: {stack} bytes", f"heap peak: {heap} bytes"]
    return "\n".join(lines) + "\n"


def probabilities(seed):
    logits = np.random.default_rng(seed).normal(size=10)
    return (np.exp(logits) / np.exp(logits).sum()).astype(np.float32)


def test_float_bits_round_trip():
    values = np.random.default_rng(0).normal(size=100).astype(np.float32)
    back = np.array(report.bits_to_floats(report.float_bits(values)), np.float32)
    assert back.tobytes() == values.tobytes()


def test_size_and_symbols():
    size = report.parse_size(SIZE_A)
    assert size == {"text": 402332 + 8, "data": 2480, "bss": 226992}
    symbols = report.parse_symbols(NM)
    assert report.symbol(symbols, "tensor_arena") == (0x20000A00, 0x36C00)
    assert report.symbol(symbols, "g_model_data") == (0x12340, 0x61A80)  # not *_len
    regions = run.decode_regions(symbols)
    assert regions == [[0x1000, 0x1130], [0x4000, 0x4040]]  # adjacent ranges merged
    with pytest.raises(report.ReportError):
        report.parse_size("nothing here\n")


def record_for(outputs, reference, icount=((1000, 70), (990, 70), (1010, 70))):
    symbols = report.parse_symbols(NM)
    return report.build_record(
        core="cortex-m4", kernels="cmsis_nn", fmt="micro", board="mps2-an386",
        size=report.parse_size(SIZE_A), symbols=symbols,
        run=report.parse_run(firmware_output(outputs)), icount=list(icount),
        reference=reference, labels={"test0.f32": 3}, macs=500, model_bytes=400000)


def test_record_arithmetic():
    outputs = {"gradient": probabilities(1), "test0.f32": probabilities(2)}
    record = report.check_record(record_for(outputs, outputs))
    assert record["flash_bytes"] == 402340 + 2480
    arena_declared = 0x36C00
    assert record["arena_declared_bytes"] == arena_declared == 224256
    assert record["ram_bytes"] == 2480 + 226992 - arena_declared + 206960 + 2712 + 4312
    assert record["ram_with_declared_arena_bytes"] == 2480 + 226992 + 2712 + 4312
    assert record["instructions_per_inference"] == 1000  # the median of 990, 1000, 1010
    assert record["instructions_each_inference"] == [1000, 990, 1010]
    assert record["decode_instructions_per_inference"] == 70
    assert record["instructions_per_mac"] == 2.0
    assert record["outputs_bit_identical"] is True
    assert [o["top"] for o in record["outputs"]] == [int(np.argmax(v)) for v in outputs.values()]
    assert record["outputs"][1]["label"] == 3


def test_one_flipped_bit_is_not_identical():
    outputs = {"gradient": probabilities(1), "test0.f32": probabilities(2)}
    reference = dict(outputs)
    nudged = reference["test0.f32"].copy()
    nudged[4] = np.nextafter(nudged[4], np.float32(1))  # one unit in the last place
    reference["test0.f32"] = nudged
    record = record_for(outputs, reference)
    assert record["outputs_bit_identical"] is False
    assert [o["bit_identical"] for o in record["outputs"]] == [True, False]
    assert [o["max_ulp"] for o in record["outputs"]] == [0, 1]
    assert record["outputs_max_ulp"] == 1 and record["tops_as_python"] is True
    assert report.builds_markdown([record])[-1].endswith("| no: within 1 ulp |")


def test_ulps_count_across_zero_and_tops_are_compared():
    bits = report.float_bits
    assert report.ulp_distance(bits([1.0, -0.0]), bits([1.0, 0.0])) == 0
    smallest = float(np.nextafter(np.float32(0), np.float32(1)))
    assert report.ulp_distance(bits([smallest]), bits([-smallest])) == 2
    assert report.ulp_distance(bits([2.0]), bits([np.nextafter(np.float32(2), np.float32(3))])) == 1
    outputs = {"gradient": probabilities(1), "test0.f32": probabilities(2)}
    swapped = {name: values[::-1].copy() for name, values in outputs.items()}
    record = record_for(outputs, swapped)
    assert record["tops_as_python"] is False and record["outputs_max_ulp"] > 1000


def test_parse_run_names_what_is_missing():
    text = firmware_output({"gradient": probabilities(1)})
    cut = text.replace("stack peak: 2712 bytes\n", "")
    with pytest.raises(report.ReportError, match="no stack peak"):
        report.parse_run(cut)
    with pytest.raises(report.ReportError, match="Invoke failed"):
        report.parse_run("arena used: 10 of 20 bytes\nInvoke failed\n")
    with pytest.raises(report.ReportError, match="skipped"):
        report.parse_icount("icount: invoke 0 instructions 5 region 0\n"
                            "icount: invoke 2 instructions 5 region 0\n")


def build(fmt, flash, ram):
    return {"format": fmt, "flash_bytes": flash, "ram_with_declared_arena_bytes": ram}


def test_fit_table_arithmetic():
    parts = dict((p[0], p) for p in report.PARTS)
    micro, int8 = build("micro", 400_000, 240_000), build("int8", 1_380_000, 170_000)
    assert report.fits(micro, parts["nRF52840"]) and not report.fits(int8, parts["nRF52840"])
    exact = build("micro", 1024 * 1024, 256 * 1024)  # exactly the budget: fits
    assert report.fits(exact, parts["nRF52840"])
    over = build("micro", 1024 * 1024, 256 * 1024 + 1)
    assert not report.fits(over, parts["nRF52840"])
    rows = dict((part[0], cells) for part, cells in report.fit_table([micro, int8]))
    assert rows["STM32H743"]["int8"][0] is True  # 2 MB flash
    ok, flash_share, ram_share = rows["nRF52840"]["micro"]
    assert ok and flash_share == pytest.approx(400_000 / 1048576)
    assert ram_share == pytest.approx(240_000 / 262144)
    lines = report.fit_markdown([micro, int8])
    assert lines[0] == "| part | flash | RAM | micro | int8 |"
    assert len(lines) == 2 + len(report.PARTS)


def test_make_variables_split_as_a_shell_would():
    """cortex_m_generic (the Cortex-M4F build) prints shell-quoted -D values; passed to the compiler
    as they are printed, -D"ARMCM4" is no macro name."""
    text = ('MICROLITE_LIB_PATH=gen/x/lib/libtensorflow-microlite.a\n'
            'CXXFLAGS=-mcpu=cortex-m4 -mfloat-abi=hard '
            '-DCMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE=\\""ARMCM4".h\\" -D"ARMCM4"\n')
    values = run.make_variables(text)
    assert values["MICROLITE_LIB_PATH"] == "gen/x/lib/libtensorflow-microlite.a"
    assert values["CXXFLAGS"] == ["-mcpu=cortex-m4", "-mfloat-abi=hard",
                                  '-DCMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE="ARMCM4.h"',
                                  "-DARMCM4"]


def test_missing_tools_one_line():
    with pytest.raises(run.FirmwareError) as e:
        run.check_tools(which=lambda tool: None if tool.startswith("arm-") else "/usr/bin/x")
    message = str(e.value)
    assert "\n" not in message
    assert "apt-get install binutils-arm-none-eabi gcc-arm-none-eabi" in message
    assert "qemu" not in message


def test_missing_sources_one_line(tmp_path):
    with pytest.raises(run.FirmwareError, match="TFLM_SRC"):
        run.check_sources("")
    with pytest.raises(run.FirmwareError, match="not a tflite-micro checkout"):
        run.check_sources(tmp_path)
    make = tmp_path / "tensorflow/lite/micro/tools/make"
    make.mkdir(parents=True)
    (make / "Makefile").write_text("")
    for folder, _ in run.DOWNLOADS:
        if folder != "cmsis_nn":
            (make / "downloads" / folder).mkdir(parents=True, exist_ok=True)
    with pytest.raises(run.FirmwareError) as e:
        run.check_sources(tmp_path)
    assert "downloads/cmsis_nn is missing" in str(e.value)
    assert "4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae" in str(e.value)
    (make / "downloads" / "cmsis_nn").mkdir()
    assert run.check_sources(tmp_path) == tmp_path


def test_make_firmware_without_tools_says_so(tmp_path):
    """As `make firmware` runs it, on a PATH without the Arm toolchain or qemu."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty))
    done = subprocess.run([sys.executable, str(ROOT / "firmware" / "run.py"), "--tflm_src", ""],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("make firmware: missing arm-none-eabi-gcc")
    assert "apt-get install" in lines[0] and "qemu-system-arm" in lines[0]
    assert not list(tmp_path.glob("export*"))


RESULTS = ROOT / "bench" / "results" / "firmware.json"
# Every committed `make firmware` record: the default model's and others' (firmware_<id>.json)
RECORDS = sorted((ROOT / "bench" / "results").glob("firmware*.json"))


def check_builds(builds):
    """Every build has the promised keys, its own arithmetic holds, its outputs matched the
    Python interpreter, the declared arena sufficed."""
    for b in map(report.check_record, builds):
        assert b["flash_bytes"] == b["text_bytes"] + b["data_bytes"]
        assert b["ram_bytes"] == (b["data_bytes"] + b["bss_bytes"] - b["arena_declared_bytes"]
                                  + b["arena_used_bytes"] + b["stack_peak_bytes"]
                                  + b["heap_peak_bytes"])
        assert b["arena_used_bytes"] <= b["arena_declared_bytes"]
        assert b["model_array_bytes"] == b["model_bytes"]
        assert b["outputs_bit_identical"] == all(o["bit_identical"] for o in b["outputs"])


def check_outputs_bit_identical(builds):
    for b in builds:
        assert b["outputs_bit_identical"], (b["core"], b["kernels"], b["format"])


@pytest.mark.skipif(not RESULTS.is_file(), reason="no committed firmware measurement")
def test_committed_measurement_is_consistent():
    """bench/results/firmware.json (written by `make firmware`): every core, kernel set and
    format, each consistent (check_builds); and the issue's targets for CMSIS-NN on Cortex-M4."""
    builds = json.loads(RESULTS.read_text())["builds"]
    assert {(b["core"], b["kernels"], b["format"]) for b in builds} >= {
        (core, kernels, fmt) for core in ("cortex-m4", "cortex-m7")
        for kernels in ("reference", "cmsis_nn") for fmt in ("micro", "int8")}
    check_builds(builds)
    check_outputs_bit_identical(builds)  # an int8 softmax: nothing left to the C library
    m4 = {b["format"]: b for b in builds if (b["core"], b["kernels"]) == ("cortex-m4", "cmsis_nn")}
    assert m4["micro"]["flash_bytes"] <= 0.35 * m4["int8"]["flash_bytes"]
    assert m4["micro"]["instructions_per_inference"] <= 1.10 * m4["int8"][
        "instructions_per_inference"]
    assert m4["micro"]["ram_with_declared_arena_bytes"] <= 256 * 1024


@pytest.mark.parametrize("path", [p for p in RECORDS if p != RESULTS], ids=lambda p: p.name)
def test_other_models_records_are_consistent(path):
    """A record of another model (`make firmware MODEL=<id> FIRMWARE_ARGS="--results
    bench/results/firmware_<id>.json"`): its own model, both formats on Cortex-M4 with both kernel
    sets, each consistent; the outputs bit-identical to the Python interpreter's or, where the
    model ends in a float SOFTMAX (the fully binary models: newlib's expf), within 4 ulp with the
    same top classes; on the Cortex-M4F (hard float) within 8, its fused multiply-adds rounding once
    where the host rounds twice."""
    measured = json.loads(path.read_text())
    assert path.name == f"firmware_{measured['model']}.json"
    builds = measured["builds"]
    assert {(b["core"], b["kernels"], b["format"]) for b in builds} >= {
        ("cortex-m4", kernels, fmt) for kernels in ("reference", "cmsis_nn")
        for fmt in ("micro", "int8")}
    check_builds(builds)
    for b in builds:
        ulps = 8 if b["core"].endswith("+fp") else 4
        assert b["outputs_bit_identical"] or (b["outputs_max_ulp"] <= ulps and b["tops_as_python"])


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: p.name)
def test_deploy_micro_quotes_the_measurement(path):
    """docs/DEPLOY_MICRO.md's tables are the ones each committed measurement gives."""
    builds = json.loads(path.read_text())["builds"]
    doc = (ROOT / "docs" / "DEPLOY_MICRO.md").read_text()
    assert "\n".join(report.builds_markdown(builds)) in doc
    assert "\n".join(report.fit_markdown(report.fit_builds(builds))) in doc
