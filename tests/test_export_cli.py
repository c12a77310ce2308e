"""`python -m keras_onebit export`: end to end in a subprocess, and its failures;
the TFLite Micro arena that model_data.h declares."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np

import keras_onebit as kob
from keras_onebit.export import micro, tflite

ROOT = pathlib.Path(__file__).resolve().parents[1]
MARGIN_FLOOR = 16 * 1024  # the documented margin: max(16 kB, 5% of the minimum)


def run_export(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "keras_onebit", "export", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def assert_arena_margin(minimum, declared):
    assert minimum > 0 and declared >= minimum + max(MARGIN_FLOOR, 0.05 * minimum)
    assert declared == micro.declared_arena(minimum) and declared % micro.ARENA_ALIGN == 0


def test_default_model_exports_with_report(tmp_path, cifar10):
    proc = run_export("--model", "default", "--formats", "float,packed_int8,micro",
                      "--out", str(tmp_path),
                      "--images", "40", "--micro_images", "2", "--latency_runs", "3",
                      "--representative", "50")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "[1/" in proc.stdout and "report.json" in proc.stdout  # a line per step
    summary = proc.stdout.split("\nwrote ")[-1].splitlines()[1:]  # one line per file
    assert len(summary) == 4 and len({line.index(" bytes") for line in summary}) == 1
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    names = {p.name for p in folder.iterdir()}
    assert {"report.json", "report.md", "model_data.cc", "model_data.h",
            f"{folder.name}.onebit", f"{folder.name}_float.tflite",
            f"{folder.name}_micro.tflite"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    report = json.loads((folder / "report.json").read_text())
    assert report["model"]["source"] == f"hub model {kob.hub.default_model_id()}"
    assert folder.name == kob.hub.default_model_id()
    rows = report["formats"]
    assert rows["float"]["max_rel_diff"] <= 1e-4 and rows["float"]["latency_ms"] > 0
    assert rows["archive"]["max_abs_diff"] == 0
    assert rows["micro"]["bit_identical_to_int8_tflm"] is True
    assert rows["micro"]["tflm_arena_bytes"] > 0
    assert rows["micro"]["bytes"] < rows["float"]["bytes"] / 8
    markdown = (folder / "report.md").read_text()
    assert "| micro |" in markdown
    # the fast packed format: sign bits, TFLite Micro arena, images counted per row
    packed = rows["packed_int8"]
    assert packed["bytes"] < rows["micro"]["bytes"] * 1.2
    assert packed["tflm_arena_bytes"] > 0 and packed["tflm_images"] == 2
    assert packed["images"] == 40 and rows["micro"]["images"] == 2
    line = next(line for line in markdown.splitlines() if line.startswith("| packed_int8 |"))
    assert "| 40 |" in line and "(2)" in line
    # expanded at load time: the int8 file's bytes (int8 is converted for packed_int8)
    assert packed["expanded_byte_identical_to_plain"] is True and packed["expand_ms"] > 0
    assert packed["expanded_latency_ms"] > 0 and packed["expanded_bytes"] > 4 * packed["bytes"]
    assert "## Packed files expanded at load time" in markdown
    # model_data.h declares the measured minimum + the margin; both are in the report
    minimum, declared = (rows["micro"]["tflm_arena_bytes"],
                         rows["micro"]["tflm_arena_declared_bytes"])
    assert_arena_margin(minimum, declared)
    assert f"{minimum:,} / {declared:,}" in (folder / "report.md").read_text()
    cc = (folder / "model_data.cc").read_text()
    assert f"g_model_data_arena_size = {declared};" in cc
    assert f"g_model_data_arena_minimum = {minimum};" in cc
    assert "g_model_data_arena_size;" in (folder / "model_data.h").read_text()
    compressed = (folder / f"{folder.name}_micro.tflite").read_bytes()
    out = micro.run(compressed, cifar10["x_test"][:1].astype("float32"), declared)
    assert out.shape == (1, 10) and np.isfinite(out).all()


def test_bad_formats_fail_before_work(tmp_path):
    proc = run_export("--model", "wrn_20_1", "--formats", "float,int3", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "Unknown formats ['int3']" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_fails_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_export("--model", "wrn_20_1", "--seeded", "--out", str(blocker / "export"))
    assert proc.returncode == 2
    assert f"--out {blocker / 'export'}: cannot create this folder" in proc.stderr
    assert "loading" not in proc.stdout


def test_declared_arena_has_the_margin_and_runs_in_tflite_micro():
    keras.utils.set_random_seed(0)
    model = kob.models.wrn(8, 1, classifier_activation=None)  # small: converts in ~2 s
    images = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    compressed = micro.compress(tflite.convert(model, "int8", images))
    minimum = micro.minimum_arena(compressed, images[0])
    declared = micro.declared_arena(minimum)
    assert_arena_margin(minimum, declared)
    # the interpreter runs in the declared arena, with the same outputs as in the minimum
    np.testing.assert_array_equal(micro.run(compressed, images[:2], declared),
                                  micro.run(compressed, images[:2], minimum))
    cc, h = micro.c_source(compressed, arena_size=declared, minimum_arena=minimum)
    assert f"g_model_data_arena_size = {declared};" in cc
    assert f"g_model_data_arena_minimum = {minimum};" in cc
    assert "g_model_data_arena_minimum;" in h and f"margin of {declared - minimum} bytes" in h


def test_arena_margin_is_16_kB_or_5_percent():
    assert micro.arena_margin(0) == micro.arena_margin(100 * 1024) == 16 * 1024
    assert micro.arena_margin(1_000_000) == 49 * 1024  # ceil(50,000 / 1024) kB
    for minimum in (1024, 320 * 1024, 400 * 1024, 10 << 20):
        margin = micro.arena_margin(minimum)
        assert margin >= max(16 * 1024, 0.05 * minimum) and margin % 1024 == 0


def tampered_default_hub(tmp_path):
    """A hub folder whose copy of the default entry has one bit of its weights flipped."""
    import shutil

    model_id = kob.hub.default_model_id()
    entry = tmp_path / "hub" / model_id
    shutil.copytree(ROOT / "pretrained" / model_id, entry)
    (weights,) = entry.glob("*.onebit")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x10
    weights.write_bytes(bytes(data))
    return tmp_path / "hub"


def test_tampered_default_model_fails_and_writes_nothing(tmp_path):
    hub = tampered_default_hub(tmp_path)
    out = tmp_path / "export"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_ONEBIT_HUB": str(hub)}
    proc = subprocess.run([sys.executable, "-m", "keras_onebit", "export", "--model", "default",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert f"the default hub model {kob.hub.default_model_id()} cannot be loaded" in line
    assert "nothing was exported" in line and "hub verify" in line
    assert not out.exists() and "seeded" not in proc.stdout


def test_factory_name_without_weights_is_refused_unless_seeded(tmp_path):
    proc = run_export("--model", "wrn_20_1", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "--model wrn_20_1 is a factory name without weights" in proc.stderr
    assert "--seeded" in proc.stderr and not (tmp_path / "out").exists()
    proc = run_export("--model", "default", "--seeded", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "--seeded needs a registered factory name" in proc.stderr


def test_seeded_export_is_named_so(tmp_path):
    proc = run_export("--model", "wrn_20_1", "--seeded", "--formats", "float", "--out",
                      str(tmp_path), "--images", "4", "--latency_runs", "1",
                      "--representative", "8", "--data-dir", str(ROOT.parent / "shared/data"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder,) = tmp_path.iterdir()
    assert folder.name == "wrn_20_1-seeded"
    assert {p.name for p in folder.iterdir()} >= {"wrn_20_1-seeded_float.tflite",
                                                   "wrn_20_1-seeded.onebit"}
    report = json.loads((folder / "report.json").read_text())
    assert report["model"]["source"].startswith("seeded wrn_20_1 (random weights on request")
    assert "seeded wrn_20_1 (random weights" in (folder / "report.md").read_text()
