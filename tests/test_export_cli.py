"""`python -m keras_onebit export`: end to end in a subprocess, and its failures."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_export(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "keras_onebit", "export", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_default_model_exports_with_report(tmp_path):
    proc = run_export("--model", "default", "--formats", "float,micro", "--out", str(tmp_path),
                      "--images", "40", "--micro_images", "2", "--latency_runs", "3",
                      "--representative", "50")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "[1/" in proc.stdout and "report.json" in proc.stdout  # a line per step
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    names = {p.name for p in folder.iterdir()}
    assert {"report.json", "report.md", "model_data.cc", "model_data.h",
            f"{folder.name}.onebit", f"{folder.name}_float.tflite",
            f"{folder.name}_micro.tflite"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    report = json.loads((folder / "report.json").read_text())
    source = report["model"]["source"]
    assert source.startswith(("hub model", "seeded wrn_20_1"))
    rows = report["formats"]
    assert rows["float"]["max_rel_diff"] <= 1e-4 and rows["float"]["latency_ms"] > 0
    assert rows["archive"]["max_abs_diff"] == 0
    assert rows["micro"]["bit_identical_to_int8_tflm"] is True
    assert rows["micro"]["tflm_arena_bytes"] > 0
    assert rows["micro"]["bytes"] < rows["float"]["bytes"] / 8
    assert "| micro |" in (folder / "report.md").read_text()


def test_bad_formats_fail_before_work(tmp_path):
    proc = run_export("--model", "wrn_20_1", "--formats", "float,int3", "--out", str(tmp_path))
    assert proc.returncode == 1
    assert "Unknown formats ['int3']" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_fails_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_export("--model", "wrn_20_1", "--out", str(blocker / "export"))
    assert proc.returncode == 1
    assert "Cannot create output directory" in proc.stderr
    assert "loading" not in proc.stdout
