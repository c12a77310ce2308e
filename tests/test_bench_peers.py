"""bench/peers_report.py (issue 14 §3): the Peers section of bench/README.md
states the numbers of bench/results/peers.json, or the install error."""

import json
import pathlib

from tests.conftest import load_bench_module

HEADING = "## Peers"
report = load_bench_module("peers_report")


def result(**extra):
    row = {"variant": "binary", "side": "larq", "format": "lce", "bytes": 393_680,
           "x_limit": 1.1042, "ops": {"LceBconv2d": 12, "CONV_2D": 2},
           "argmax_agreement": 0.998, "max_rel_diff": 1e-6,
           "ms_1t": 38.48, "vs_float_1t": 2.06}
    variant = {"variant": "binary", "onebit_limit_bytes": 356_530, "images": 500,
               "larq_vs_keras_onebit": {"images": 500, "max_rel_diff": 2.8e-7,
                                        "argmax_agreement": 1.0},
               "files": [row], "train_step_s": {"keras_onebit": 0.5, "larq": 0.4},
               "train_ratio": 1.25}
    return {"date": "2026-12-02", "threads": ["1"], "rounds": 8, "repeats": 3, "steps": 3,
            "batch": 64, "conditions": "quiet", "install_error": None,
            "versions": {"larq": "0.13.3"}, "variants": [variant], **extra}


def test_tables_hold_the_measured_numbers():
    text = report.markdown(HEADING, result())
    assert text.startswith(HEADING + "\n")
    assert "| binary | larq + LCE | lce | 393,680 | 1.104 | 0.998 | 38.48 | 2.06 |" in text
    assert "| binary | larq + LCE | lce | LceBconv2d 12, CONV_2D 2 |" in text
    assert "| binary | 500.0 | 400.0 | 1.250 |" in text
    assert "| 500 | 2.8e-07 | 1.000 |" in text
    assert "larq 0.13.3" in text


def test_install_error_is_reported_instead_of_tables():
    error = "ERROR: No matching distribution found for larq-compute-engine==0.13.0"
    text = report.markdown(HEADING, result(install_error=error, variants=[]))
    assert error in text and "did not install" in text and "| variant |" not in text


def test_notes_state_the_committed_run():
    """The prose under the tables reads its numbers from the results (no figure
    of an older run survives a new one), and is left out when a compared row
    is missing."""
    path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "results" / "peers.json"
    data = json.loads(path.read_text())
    binary = next(v for v in data["variants"] if v["variant"] == "binary")
    lce = next(r for r in binary["files"] if r["format"] == "lce")
    text = report.notes(data)
    assert f"LceBconv2d) is {lce['x_limit']:.3f}x the limit" in text
    speed = report.speed_lines(data)
    assert speed and all(line in text for line in speed)
    ours, ms, _, lce_ms, ratio = report.speed(binary, data["threads"][0])
    assert ratio == ms / lce_ms and f"{ratio:.2f}x" in text
    assert f"{binary['train_ratio']:.2f}x (fully binary)" in text
    assert report.notes(result()) is None  # one variant only


def test_speed_compares_our_fastest_matching_format_with_lces_fastest_setting():
    """A fast format that does not match Keras (agreement < 0.995) is not ours to
    quote; every LCE setting counts."""
    rows = [{"side": "keras_onebit", "format": "float", "argmax_agreement": 1.0, "ms_1t": 10.0},
            {"side": "keras_onebit", "format": "int8", "argmax_agreement": 0.996, "ms_1t": 4.0},
            {"side": "keras_onebit", "format": "fast", "argmax_agreement": 0.99, "ms_1t": 1.0},
            {"side": "larq", "format": "lce", "argmax_agreement": 0.99, "ms_1t": 12.0},
            {"side": "larq", "format": "lce+indirect", "argmax_agreement": 0.99, "ms_1t": 5.0}]
    assert report.speed({"files": rows}, "1") == ("int8", 4.0, "lce+indirect", 5.0, 0.8)
    assert report.speed({"files": rows[2:]}, "1") is None
