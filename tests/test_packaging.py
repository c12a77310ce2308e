"""The package as users get it: a wheel built from this checkout, installed
into a fresh virtual environment outside the checkout (no editable install),
lists and loads the shipped hub models and runs its console script."""

import email.parser
import json
import os
import pathlib
import site
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out), str(ROOT)], check=True, timeout=600, cwd=out)
    (path,) = out.glob("keras_onebit-*.whl")
    return path


@pytest.fixture(scope="module")
def fresh_env(wheel, tmp_path_factory):
    """A new venv whose only keras_onebit is the wheel; its third-party
    dependencies come from the test environment's site-packages through a .pth
    line (no download), which does not run that environment's editable hook."""
    env = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=300)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], capture_output=True, text=True, check=True)
    (pathlib.Path(purelib.stdout.strip()) / "test_deps.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                    str(wheel)], check=True, timeout=300)
    return env


def run(env, code, tmp_path):
    result = subprocess.run([str(env / "bin" / "python"), "-c", code], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "KERAS_ONEBIT_CACHE": str(tmp_path / "cache"),
                                 "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_wheel_carries_every_hub_entry(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    manifest = json.loads((ROOT / "pretrained" / "index.json").read_text())
    shipped = [e["id"] for e in manifest["models"] if e.get("path")]
    assert shipped and "keras_onebit/_pretrained/index.json" in names
    for model_id in shipped:
        for name in ("config.json", "weights.onebit", "MODEL_CARD.md"):
            assert f"keras_onebit/_pretrained/{model_id}/{name}" in names


def wheel_metadata(wheel):
    """The wheel's METADATA as an email message."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(meta_name).decode())


def test_wheel_carries_its_licence(wheel):
    meta = wheel_metadata(wheel)
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    with zipfile.ZipFile(wheel) as zf:
        (licence,) = [n for n in zf.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert zf.read(licence) == (ROOT / "LICENSE").read_bytes()


def test_wheel_does_not_force_a_tensorflow_flavour(wheel):
    meta = wheel_metadata(wheel)
    requires = meta.get_all("Requires-Dist")
    unconditional = [r for r in requires if "extra ==" not in r]
    assert not any(r.lower().startswith(("tensorflow", "scipy", "matplotlib"))
                   for r in unconditional), unconditional
    extras = meta.get_all("Provides-Extra")
    assert {"tensorflow", "cpu", "and-cuda", "export", "micro", "mat", "plots", "jax"} <= set(
        extras)


def test_installed_wheel_lists_and_loads_hub_models(fresh_env, tmp_path):
    out = run(fresh_env, """
import json, numpy as np, keras_onebit as kob
from keras_onebit.hub import folders as registry
assert "site-packages" in kob.__file__, kob.__file__
ids = kob.hub.list()
model = kob.hub.load("wrn_20_1-mnist-1bit")
same = kob.models.wrn_20_1(weights="mnist", input_shape=(28, 28, 1))
x = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
print(json.dumps({"ids": ids, "root": str(registry.pretrained_dir()),
                  "equal": bool(np.array_equal(model.predict(x, verbose=0),
                                               same.predict(x, verbose=0)))}))
""", tmp_path)
    result = json.loads(out.strip().splitlines()[-1])
    assert {"wrn_20_1-mnist-1bit", "wrn_20_2-cifar10-1bit"} <= set(result["ids"])
    assert result["root"].endswith("keras_onebit/_pretrained")
    assert str(ROOT) not in result["root"]
    assert result["equal"]


def test_installed_console_script_lists_the_hub(fresh_env, tmp_path):
    result = subprocess.run([str(fresh_env / "bin" / "keras-onebit"), "hub", "list"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "KERAS_ONEBIT_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert "wrn_20_2-cifar10-1bit" in result.stdout
    assert result.stderr == ""  # the command line speaks only for itself


@pytest.mark.parametrize("module, extra, call", [
    ("scipy.io", "mat", lambda tmp: __import__("keras_onebit").hub.mcdonnell.read_mat(
        ROOT.parent / "shared/reference/mcdonnell-wrn-20-10/CIFAR10_allparams.mat")),
    ("matplotlib", "plots", lambda tmp: __import__("keras_onebit").training.plots.plot_curves(
        tmp / "log.csv", tmp / "curves.png")),
    ("ai_edge_litert.interpreter", "export",
     lambda tmp: __import__("keras_onebit").export.report.litert_interpreter(b"")),
])
def test_missing_optional_dependency_names_its_extra(module, extra, call, tmp_path,
                                                     monkeypatch):
    import keras_onebit as kob
    import keras_onebit.export.report  # noqa: F401
    import keras_onebit.training.plots  # noqa: F401

    (tmp_path / "log.csv").write_text("epoch,loss\n0,1.0\n")
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails
    with pytest.raises(kob.MissingDependencyError, match=rf"keras_onebit\[{extra}\]"):
        call(tmp_path)
