"""The hub with small models: entries, checksums, resolution, errors, weights=, CLI."""

import json
import shutil
import types

import keras
import numpy as np
import pytest
from hub_helpers import keras_layout_dict, matlab_layout_dict, randomize_bn, save_mat

import keras_onebit as kob
from keras_onebit import data as datasets
from keras_onebit import hub
from keras_onebit.hub import folders as registry
from tests.conftest import ROOT


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated hub: a mirror ($KERAS_ONEBIT_HUB), a fake project pretrained/, a cache."""
    ns = types.SimpleNamespace(mirror=tmp_path / "mirror", pretrained=tmp_path / "pretrained",
                               cache=tmp_path / "cache", tmp=tmp_path)
    for d in (ns.mirror, ns.pretrained):
        d.mkdir()
    monkeypatch.setenv("KERAS_ONEBIT_HUB", str(ns.mirror))
    monkeypatch.setenv("KERAS_ONEBIT_CACHE", str(ns.cache))
    monkeypatch.setattr(registry, "PRETRAINED", ns.pretrained)
    return ns


def small(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    kwargs.setdefault("classifier_activation", None)  # logits: softmax saturates
    return randomize_bn(kob.models.wrn_20_1(**kwargs), seed)


def images(n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


def run(model, n=4):
    """Pre-softmax outputs (the global average pool) on `n` random images."""
    logits = keras.Model(model.input, model.get_layer("pool").output)
    return logits.predict(images(n), verbose=0)


def save_small(root, model_id="wrn_20_1-cifar10-1bit", seed=0, **kwargs):
    model = small(seed, **kwargs)
    folder = hub.save_entry(model, root, model_id, "wrn_20_1",
                            {"classes": 10, "binary": model_is_binary(kwargs)}, "cifar10",
                            metrics={"exact_error": 12.5, "command": "python -m keras_onebit eval"},
                            training_command="python -m keras_onebit train --model wrn_20_1")
    return model, folder


def model_is_binary(kwargs):
    return kwargs.get("binary", True)


def test_save_entry_writes_complete_entry_and_project_manifest(env):
    model, folder = save_small(env.pretrained)
    assert folder == env.pretrained / "wrn_20_1-cifar10-1bit"
    config = json.loads((folder / "config.json").read_text())
    weights = folder / config["weights"]
    assert config["weights_sha256"] == hub.sha256_file(weights)
    assert config["weights_bytes"] == weights.stat().st_size
    assert config["factory"] == "wrn_20_1" and config["classes"] == 10
    assert config["input_shape"] == [32, 32, 3] and "0..255" in config["preprocessing"]
    card = (folder / "MODEL_CARD.md").read_text()
    for text in (config["weights_sha256"], "python -m keras_onebit eval", "Apache-2.0",
                 "python -m keras_onebit train --model wrn_20_1", "exact_error: 12.5"):
        assert text in card
    manifest = json.loads((env.pretrained / "index.json").read_text())
    (entry,) = manifest["models"]
    assert entry["id"] == "wrn_20_1-cifar10-1bit" and entry["path"] == "wrn_20_1-cifar10-1bit"
    assert entry["sha256"] == config["weights_sha256"]
    assert not list(env.pretrained.glob(".*"))  # no temp folders left
    hub.save_entry(model, env.pretrained, "wrn_20_1-cifar10-1bit", "wrn_20_1", {}, "cifar10",
                   notes="replaced")  # over an existing entry
    assert "replaced" in (folder / "MODEL_CARD.md").read_text()
    assert len(registry.manifest_entries()) == 1 and not list(env.pretrained.glob(".*"))
    loaded = hub.load("wrn_20_1-cifar10-1bit")
    np.testing.assert_allclose(run(loaded),
                               run(model), rtol=1e-5, atol=1e-5)


def test_save_entry_to_entry_folder_outside_project_leaves_manifest_alone(env):
    _, folder = save_small(env.mirror / "wrn_20_1-cifar10-1bit")
    assert folder == env.mirror / "wrn_20_1-cifar10-1bit"
    assert (folder / "config.json").is_file()
    assert not (env.mirror / "index.json").exists()
    assert not (env.pretrained / "index.json").exists()


def test_default_model_id(env):
    assert hub.default_model_id() == "wrn_20_1-cifar10-1bit"  # fallback, no folder needed
    model = small()
    hub.save_entry(model, env.pretrained, "other-id", "wrn_20_1", {}, "cifar10", default=True)
    assert hub.default_model_id() == "other-id"
    hub.save_entry(model, env.pretrained, "third-id", "wrn_20_1", {}, "cifar10", default=True)
    entries = registry.manifest_entries()
    assert hub.default_model_id() == "third-id" and "default" not in entries["other-id"]


def test_default_model_missing_raises_file_not_found(env):
    with pytest.raises(FileNotFoundError):
        hub.load(hub.default_model_id())


def test_project_manifest_is_valid_and_has_upstream_entries():
    entries = registry.manifest_entries(ROOT / "pretrained")
    for model_id in ("wrn_20_10-cifar10-1bit", "wrn_20_10-cifar100-1bit",
                     "wrn_20_10-cifar10-1bit-matlab", "wrn_20_10-cifar100-1bit-matlab"):
        entry = entries[model_id]
        assert entry["url"].startswith("https://raw.githubusercontent.com/McDonnell-Lab/")
        assert len(entry["sha256"]) == 64 and entry["source_format"].startswith("mcdonnell-")
        assert "path" not in entry


def test_resolution_order_env_then_pretrained_then_cache(env):
    ids = "local-only"  # not in the project manifest: copies may differ
    a, _ = save_small(env.cache, ids, seed=3)
    assert hub.resolve(ids) == ("entry", env.cache / ids)
    b, _ = save_small(env.tmp / "other", ids, seed=2)
    shutil.copytree(env.tmp / "other" / ids, env.pretrained / ids)
    assert hub.resolve(ids) == ("entry", env.pretrained / ids)
    c, _ = save_small(env.mirror, ids, seed=1)
    assert hub.resolve(ids) == ("entry", env.mirror / ids)
    out = run(hub.load(ids))
    np.testing.assert_allclose(out, run(c), rtol=1e-5, atol=1e-5)
    assert not np.allclose(out, run(b), atol=1e-3)
    # An explicit path wins over everything.
    out = run(hub.load(env.pretrained / ids))
    np.testing.assert_allclose(out, run(b), rtol=1e-5, atol=1e-5)
    # A project entry mirrored with the same file: the mirror is used.
    save_small(env.pretrained, seed=4)
    shutil.copytree(env.pretrained / "wrn_20_1-cifar10-1bit", env.mirror / "wrn_20_1-cifar10-1bit")
    assert hub.resolve("wrn_20_1-cifar10-1bit")[1] == env.mirror / "wrn_20_1-cifar10-1bit"
    hub.load("wrn_20_1-cifar10-1bit")


def test_mirror_copy_must_match_project_manifest_sha(env):
    save_small(env.pretrained, seed=0)
    save_small(env.mirror, seed=1)  # different weights under the same id
    with pytest.raises(hub.ChecksumError, match="manifest expects"):
        hub.load("wrn_20_1-cifar10-1bit")


def test_unknown_name_lists_known_ones(env):
    save_small(env.mirror, "my-model")
    with pytest.raises(hub.UnknownModelError) as e:
        hub.load("no-such-model")
    assert "no-such-model" in str(e.value) and "my-model" in str(e.value)
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    assert "my-model" in hub.list()


def test_checksum_mismatch_names_file_expected_and_actual(env):
    _, folder = save_small(env.mirror)
    weights = folder / "weights.onebit"
    expected = hub.sha256_file(weights)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    actual = hub.sha256_file(weights)
    with pytest.raises(hub.ChecksumError) as e:
        hub.load("wrn_20_1-cifar10-1bit")
    message = str(e.value)
    assert str(weights) in message and expected in message and actual in message


def test_truncated_file(env):
    _, folder = save_small(env.mirror)
    weights = folder / "weights.onebit"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(hub.TruncatedFileError, match=f"truncated.*{size // 2} bytes.*{size}"):
        hub.load("wrn_20_1-cifar10-1bit")
    # The bare file without its config: the packed reader reports the truncation.
    lone = env.tmp / "lone.onebit"
    shutil.copy(weights, lone)
    with pytest.raises(hub.HubError, match="truncated"):
        hub.load(lone)


def test_weights_for_another_architecture_name_layer_and_shapes(env):
    _, folder = save_small(env.mirror)
    with pytest.raises(hub.ArchitectureMismatchError) as e:
        kob.models.wrn_20_2(weights=str(folder))
    message = str(e.value)
    assert "stem_conv" in message and "(3, 3, 3, 32)" in message and "(3, 3, 3, 16)" in message
    with pytest.raises(hub.ArchitectureMismatchError, match="stem_relu"):
        kob.models.wrn_20_1(stem_relu=True, weights=str(folder))
    with pytest.raises(hub.ArchitectureMismatchError, match="head_conv.*10.*100|100.*10"):
        kob.models.wrn_20_1(classes=100, weights=str(folder))


def test_weights_by_dataset_id_and_path_and_float_twin(env):
    model, folder = save_small(env.mirror)
    expected = run(model)
    for weights in ("cifar10", "wrn_20_1-cifar10-1bit", str(folder / "weights.onebit")):
        got = kob.models.wrn_20_1(classifier_activation=None, weights=weights)
        got = run(got)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=weights)
    # The float twin takes the one-bit weights as +-alpha kernels: same function.
    twin = kob.models.wrn_20_1(binary=False, classifier_activation=None,
                               weights="wrn_20_1-cifar10-1bit")
    np.testing.assert_allclose(run(twin), expected, rtol=1e-4,
                               atol=1e-4)
    with pytest.raises(hub.HubError, match="No float wrn_20_1 weights"):
        kob.models.wrn_20_1(binary=False, weights="cifar10")
    with pytest.raises(hub.HubError, match="No one-bit wrn_20_2 weights"):
        kob.models.wrn_20_2(weights="cifar10")


def test_download_from_url_verified_and_cached(env, monkeypatch):
    model, folder = save_small(env.tmp / "upstream")
    weights = folder / "weights.onebit"
    sha = hub.sha256_file(weights)
    entry = {"id": "remote-model", "factory": "wrn_20_1", "dataset": "cifar10", "binary": True,
             "url": weights.as_uri(), "sha256": sha}
    registry.update_manifest(entry)
    got = run(hub.load("remote-model"))
    np.testing.assert_allclose(got, run(model), rtol=1e-5, atol=1e-5)
    assert hub.resolve("remote-model")[1] == env.cache / "remote-model"
    registry.update_manifest({**entry, "id": "bad-remote", "sha256": "0" * 64})
    with pytest.raises(hub.ChecksumError, match="0{64}"):
        hub.load("bad-remote")
    assert not (env.cache / "bad-remote").exists()


@pytest.mark.parametrize("layout", ["keras", "matlab"])
def test_import_synthetic_mat_both_layouts(env, layout):
    kwargs = {"stem_relu": True, "padding": "symmetric"} if layout == "matlab" else {}
    keras.utils.set_random_seed(5)
    source = randomize_bn(kob.models.wrn(8, 1, classes=10, **kwargs), 5)
    d = keras_layout_dict(source) if layout == "keras" else matlab_layout_dict(source)
    mat = save_mat(env.tmp / f"{layout}.mat", d)
    folder = hub.import_mcdonnell(mat, env.mirror)
    assert folder.name == "wrn_8_1-cifar10-1bit" + ("-matlab" if layout == "matlab" else "")
    config = hub.read_config(folder)
    assert config["source"]["sha256"] == hub.sha256_file(mat)
    assert config["factory_kwargs"] == {"classes": 10, "binary": True, **kwargs}
    want = run(source, 8)
    np.testing.assert_allclose(run(hub.load(folder.name), 8), want,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(run(hub.load(mat), 8), want, rtol=1e-4, atol=1e-4)


def _source_dicts():
    keras.utils.set_random_seed(6)
    model = randomize_bn(kob.models.wrn(8, 1, classes=10), 6)
    return keras_layout_dict(model), matlab_layout_dict(model)


@pytest.mark.parametrize("layout, drop, match", [
    ("keras", "conv2d_43", "conv2d_43"),
    ("keras", "batch_normalization_v1_108", "batch_normalization_v1_108"),
    ("keras", "batch_normalization_v1_113", "batch_normalization"),  # the last one
    ("matlab", "Moments", "Moments"),
    ("matlab", "BinaryWeights", "BinaryWeights"),
])
def test_mat_with_missing_keys(env, layout, drop, match):
    keras_d, matlab_d = _source_dicts()
    d = dict(keras_d if layout == "keras" else matlab_d)
    assert drop in d
    del d[drop]
    mat = save_mat(env.tmp / "broken.mat", d)
    with pytest.raises(hub.MatFormatError, match=match) as e:
        hub.import_mcdonnell(mat, env.mirror)
    assert "broken.mat" in str(e.value) and "missing" in str(e.value)
    assert not list(env.mirror.iterdir())


def test_mat_not_a_wrn_file_and_truncated_mat(env):
    mat = save_mat(env.tmp / "other.mat", {"x": np.zeros(3)})
    with pytest.raises(hub.MatFormatError, match="conv2d.*BinaryWeights"):
        hub.import_mcdonnell(mat, env.mirror)
    keras_d, _ = _source_dicts()
    mat = save_mat(env.tmp / "cut.mat", keras_d)
    data = mat.read_bytes()
    mat.write_bytes(data[: len(data) // 2])
    with pytest.raises(hub.MatFormatError, match="cut.mat"):
        hub.import_mcdonnell(mat, env.mirror)


def test_load_then_export_tflite(env):
    export = pytest.importorskip("keras_onebit.export")
    if not hasattr(export, "export_tflite"):
        pytest.skip("export_tflite not available")
    model, _ = save_small(env.mirror)
    loaded = hub.load("wrn_20_1-cifar10-1bit")
    path = export.export_tflite(loaded, env.tmp / "m.tflite", format="float")
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    x = images(1)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    np.testing.assert_allclose(interp.get_tensor(out["index"]), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def _run(args, capsys):
    """`python -m keras_onebit ARGS` in this process: (exit code, stdout, stderr)."""
    from absl import flags

    from keras_onebit.__main__ import main

    flags.FLAGS.unparse_flags()
    capsys.readouterr()
    try:
        code = main(["keras_onebit", *args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code or 0, out.out, out.err


def test_cli_hub_import_list_and_eval(env, capsys):
    keras.utils.set_random_seed(7)
    source = randomize_bn(kob.models.wrn(8, 1, classes=10), 7)
    mat = save_mat(env.tmp / "CIFAR10_allparams.mat", keras_layout_dict(source))
    code, out, err = _run(["hub", "import-mcdonnell", "--mat", str(mat), "--out",
                           str(env.mirror), "--id", "tiny"], capsys)
    assert code == 0, err
    assert "tiny" in out and (env.mirror / "tiny" / "config.json").is_file()
    code, out, err = _run(["hub", "list"], capsys)
    assert code == 0 and "tiny" in out
    result_file = env.tmp / "eval.json"
    code, out, err = _run(["eval", "--model", "tiny", "--dataset", "cifar10", "--data-dir",
                           str(ROOT.parent / "shared" / "data"), "--limit", "1010",
                           "--batch_size", "505", "--json", str(result_file)], capsys)
    assert code == 0, err
    result = json.loads(result_file.read_text())
    assert result["test_images"] == 1010 and result["exact_images"] == 1000
    # the printed and written numbers are those of the same files loaded here
    d = datasets.load_dataset("cifar10")
    pred = hub.load("tiny").predict(d["x_test"][:1010].astype("float32"), verbose=0).argmax(1)
    wrong = pred != d["y_test"][:1010]
    exact_error = 100.0 * wrong[d["test_exact_mask"][:1010]].mean()
    assert result["exact_error"] == pytest.approx(exact_error)
    assert result["test_error"] == pytest.approx(100.0 * wrong.mean())
    assert f"top-1 error, 1000 exact test images: {exact_error:.2f}%" in out
    code, out, err = _run(["eval", "--model", "wrn_8_1", "--weights", "x"], capsys)
    assert code == 2 and "registered factory name" in err
    code, out, err = _run(["hub", "verify", "--entry", "tiny"], capsys)
    assert code == 0 and hub.read_config(env.mirror / "tiny")["weights_sha256"] in out
    shutil.copytree(env.mirror / "tiny", env.mirror / "tiny2")  # its config says "tiny"
    code, out, err = _run(["hub", "verify", "--entry", "tiny2"], capsys)
    assert code == 2 and "found as hub model 'tiny2'" in err and len(err.splitlines()) == 1
    code, out, err = _run(["hub", "verify", "--entry", str(env.mirror / "tiny2")], capsys)
    assert code == 0  # a folder given as a path claims no id
    code, out, err = _run(["eval", "--model", "nope"], capsys)
    assert code == 2 and "Known models" in err
    code, out, err = _run(["hub", "import-mcdonnell", "--mat", str(env.tmp / "none.mat"),
                           "--out", str(env.mirror)], capsys)
    assert code == 2 and "none.mat" in err


def test_factory_name_with_weights_in_eval(env, capsys):
    _, folder = save_small(env.mirror)
    code, out, err = _run(["eval", "--model", "wrn_20_1", "--weights", str(folder),
                           "--exact_only", "--limit", "20"], capsys)
    assert code == 0, err
    assert "20 exact test images" in out


def test_symmetric_padding_option():
    from keras_onebit.models.wrn import SymmetricAveragePooling2D

    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    y = SymmetricAveragePooling2D(3, 2)(x).numpy()[0, :, :, 0]
    # Windows start at row/col -1; padded cells are not counted.
    assert y.shape == (2, 2)
    assert y[0, 0] == pytest.approx(np.mean([0, 1, 4, 5]))
    assert y[1, 1] == pytest.approx(np.mean([5, 6, 7, 9, 10, 11, 13, 14, 15]))
    model = kob.models.wrn(8, 1, padding="symmetric")
    assert model.get_layer("stage2_block1_conv1").padding == "valid"
    assert model.get_layer("stage2_block1_conv1_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("stage2_block1_conv2").padding == "same"
    assert model.get_layer("stage2_block1_pool").output.shape == (None, 16, 16, 16)
    assert "stage2_block1_conv1_pad" not in [layer.name for layer in kob.models.wrn(8, 1).layers]
    with pytest.raises(ValueError, match="padding"):
        kob.models.wrn(8, 1, padding="reflect")


def test_download_of_authors_mat_is_converted_into_cache(env):
    keras.utils.set_random_seed(8)
    source = randomize_bn(kob.models.wrn(8, 1, classes=10), 8)
    mat = save_mat(env.tmp / "upstream.mat", keras_layout_dict(source))
    sha = hub.sha256_file(mat)
    registry.update_manifest({"id": "authors-tiny", "factory": "wrn_8_1", "dataset": "cifar10",
                              "binary": True, "url": mat.as_uri(), "sha256": sha,
                              "bytes": mat.stat().st_size,
                              "source_format": "mcdonnell-keras-mat"})
    np.testing.assert_allclose(run(hub.load("authors-tiny")), run(source), rtol=1e-4, atol=1e-4)
    folder = env.cache / "authors-tiny"
    assert hub.read_config(folder)["source"]["sha256"] == sha
    assert (env.cache / "downloads" / "upstream.mat").is_file()
    # A mirror converted from another file is refused.
    other = save_mat(env.tmp / "other.mat", keras_layout_dict(randomize_bn(source, 9)))
    hub.import_mcdonnell(other, env.mirror, model_id="authors-tiny")
    with pytest.raises(hub.ChecksumError, match=sha):
        hub.load("authors-tiny")


def test_cards_give_standard_errors_and_the_gap_to_the_twin(env):
    def save(model_id, binary, exact, test, notes):
        return hub.save_entry(small(0, binary=binary), env.mirror, model_id, "wrn_20_1",
                              {"classes": 10, "binary": binary}, "cifar10",
                              metrics={"exact_test_accuracy": exact, "exact_test_images": 1000,
                                       "test_accuracy": test, "test_images": 10000},
                              notes=notes)

    one_bit = save("wrn_20_1-cifar10-1bit", True, 0.86, 0.8394, "one-bit notes")
    card = (one_bit / "MODEL_CARD.md").read_text()
    assert "exact_test_accuracy: 0.86 (standard error 0.011, 1000 images)" in card
    assert "test_accuracy: 0.8394 (standard error 0.004, 10000 images)" in card
    assert "One-bit vs float" not in card  # no twin yet
    float_ = save("wrn_20_1-cifar10-float", False, 0.87, 0.8512, "float notes")
    row = "| exact_test_accuracy | 86.00% | 87.00% | +1.00 points |"
    for folder, notes in ((one_bit, "one-bit notes"), (float_, "float notes")):
        card = (folder / "MODEL_CARD.md").read_text()
        assert row in card and "| test_accuracy | 83.94% | 85.12% | +1.18 points |" in card
        assert card.rstrip().endswith(notes)  # the twin's card was rewritten, notes kept
    assert "`wrn_20_1-cifar10-float`" in (one_bit / "MODEL_CARD.md").read_text()
    assert hub.read_config(one_bit)["notes"] == "one-bit notes"
    assert "| epochs |" not in card and "same architecture and training" in card


def test_a_twin_of_another_training_length_is_labelled_so(env):
    def save(model_id, binary, epochs):
        return hub.save_entry(small(0, binary=binary), env.mirror, model_id, "wrn_20_1",
                              {"classes": 10, "binary": binary}, "cifar10",
                              metrics={"exact_test_accuracy": 0.6, "exact_test_images": 1000,
                                       "epochs": epochs})

    save("wrn_20_1-cifar10-float", False, 30)
    card = (save("wrn_20_1-cifar10-1bit", True, 62) / "MODEL_CARD.md").read_text()
    assert "| epochs | 62 | 30 | |" in card and "same architecture and recipe" in card
    assert "mixes precision with training length" in card


def test_extra_files_go_into_the_entry_and_the_card_shows_the_curves(env):
    log, curves = env.tmp / "log.csv", env.tmp / "curves.png"
    log.write_text("epoch,loss\n0,2.0\n")
    curves.write_bytes(b"\x89PNG fake")

    def save(model_id, binary, extra):
        return hub.save_entry(small(0, binary=binary), env.mirror, model_id, "wrn_20_1",
                              {"classes": 10, "binary": binary}, "cifar10",
                              training_command="python -m keras_onebit train", extra_files=extra)

    one_bit = save("wrn_20_1-cifar10-1bit", True, [log, curves])
    assert (one_bit / "log.csv").read_text() == log.read_text()
    assert (one_bit / "curves.png").read_bytes() == curves.read_bytes()
    assert "![training curves](curves.png)" in (one_bit / "MODEL_CARD.md").read_text()
    float_ = save("wrn_20_1-cifar10-float", False, [log])  # rewrites the twin's card
    assert "![training curves]" not in (float_ / "MODEL_CARD.md").read_text()
    assert "![training curves](curves.png)" in (one_bit / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("name", ["missing.csv", "config.json"])
def test_bad_extra_file_fails_before_any_work(env, name):
    path = env.tmp / name
    if name == "config.json":
        path.write_text("{}")
    with pytest.raises(hub.HubError, match=name):
        hub.save_entry(None, env.mirror, "wrn_20_1-cifar10-1bit", "wrn_20_1", {}, "cifar10",
                       extra_files=[path])
    assert not list(env.mirror.iterdir())
