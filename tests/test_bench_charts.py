"""bench/charts.py (issue 14 §4): a PNG per benchmark table from made-up result
files in a temporary directory, the same bytes on a second run, and result
files that are absent (peers.json) or hold nothing to plot skipped."""

import json

import pytest

from tests.conftest import load_bench_module

pytest.importorskip("matplotlib")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


charts = load_bench_module("charts")


def export_row(fmt, size, ratio, ms=None):
    row = {"format": fmt, "bytes": size, "ratio_to_limit": ratio, "argmax_agreement": None}
    for t in ("1", "2"):
        row[f"ms_{t}t"] = None if ms is None else ms * int(t)
        row[f"vs_float_{t}t"] = None if ms is None else ms / 10.0
    return row


RESULTS = {
    "train_step": {"threads": 2, "rows": [
        {"model": "m", "policy": p, "batch": 8, "one_bit_s": s * 1.02, "float_s": s,
         "ratio": 1.02} for p, s in (("float32", 0.2), ("mixed_bfloat16", 0.1))]},
    "input_pipeline": {"model": "m", "batch": 8, "pipeline_images_per_s": 1000.0,
                       "training_images_per_s": 50.0, "ratio": 20.0},
    "export": {"date": "2000-01-01", "threads": ["1", "2"], "models": [
        {"model": "wrn_16_4", "onebit_limit_bytes": 1000, "rows": [
            export_row("archive", 1010, 1.01), export_row("float", 30000, 30.0, 10.0),
            export_row("packed", 1080, 1.08, 25.0)]}]},
    "stochastic_storage": {"model": "m", "batch": 8,
                           "gradient_error": {"max": {"cosine": 0.5, "relative_l2_error": 1.5},
                                              "p99": {"cosine": 0.8, "relative_l2_error": 0.7}},
                           "memory": {"batch_norm": {
                               "exact": {"peak_step_mb": [10.0, 11.0], "step_s": 0.5},
                               "stochastic_1bit": {"peak_step_mb": [5.0, 5.5], "step_s": 0.9},
                               "worst_stochastic_over_best_exact": 0.55}}},
    "iterative": {"epochs": 2, "epochs_per_layer": 1, "variants": {
        "float": {"mean": 1.5, "test_error_percent": [1.4, 1.6]},
        "forward": {"mean": 2.5, "test_error_percent": [2.4, 2.6]}}},
}
PNGS = {"train_step", "input_pipeline", "export_size", "export_latency", "stochastic_memory",
        "stochastic_gradient", "iterative"}


def write_results(directory, results):
    for name, data in results.items():
        (directory / f"{name}.json").write_text(json.dumps(data))


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.suffix != ".json"}


def test_a_png_per_table_the_same_bytes_twice_and_absent_peers_skipped(tmp_path):
    write_results(tmp_path, RESULTS)
    written = charts.write_all(tmp_path)
    assert {p.name for p in written} == {f"{name}.png" for name in PNGS}
    first = snapshot(tmp_path)
    assert set(first) == {f"{name}.png" for name in PNGS}  # no temporary file left, no peers.png
    for name, data in first.items():
        assert data.startswith(PNG_SIGNATURE), name
        assert len(data) > 5000, name
        assert b"matplotlib" not in data, name  # no software version in the file
    charts.main(["--results", str(tmp_path)])
    assert snapshot(tmp_path) == first


def test_peers_plots_the_keys_present_and_skips_rows_without_numbers(tmp_path):
    rows = [{"variant": "larq", "format": "float", "bytes": 40000, "x_limit": 40.0},
            {"variant": "ours", "bytes": 1100, "x_limit": 1.1, "ms": 3.0},
            {"format": "int8", "ms": None}]
    write_results(tmp_path, {"peers": {"model": "m", "rows": rows}})
    (png,) = charts.write_all(tmp_path)
    assert png.name == "peers.png" and png.read_bytes().startswith(PNG_SIGNATURE)

    write_results(tmp_path, {"peers": {"rows": [{"variant": "larq", "note": "not run"}]}})
    png.unlink()
    assert charts.write_all(tmp_path) == []
    assert not png.exists()


def test_peers_reads_the_rows_of_each_variant_and_latency_per_thread_count():
    files = [{"variant": "weights", "side": side, "format": "f", "bytes": 1000 * k, "ms_1t": k,
              "ms_2t": None} for k, side in ((1, "keras_onebit"), (2, "larq"))]
    data = {"variants": [{"variant": "weights", "files": files}, "not a variant"]}
    assert len(charts.peer_rows(data)) == 2
    assert [key for key, *_ in charts.peer_panels(charts.peer_rows(data))] == ["bytes", "ms_1t"]
    fig = charts.peers(data)
    assert fig is not None
    charts.plt.close(fig)
