"""The models shipped in pretrained/: each loads from its shipped files
(sha256 checked) and re-measures the accuracy its model card states."""

import functools
import json
import os

import pytest

from keras_onebit import data as datasets
from keras_onebit import hub
from keras_onebit.hub import folders as registry
from keras_onebit.training.loop import evaluate

SHIPPED = sorted(p.parent.name for p in registry.PRETRAINED.glob("*/config.json"))


def test_the_default_model_is_shipped():
    assert hub.default_model_id() in SHIPPED


def shipped_config(model_id):
    return json.loads((registry.PRETRAINED / model_id / "config.json").read_text())


# A card's accuracy on all 10,000 CIFAR-10 test images (most of them JPEG copies) is re-measured
# with KERAS_ONEBIT_SLOW_TESTS=1 (about 75 s a model on an AVX2 CPU); the 1000 exact images always.
ALL_IMAGES = bool(os.environ.get("KERAS_ONEBIT_SLOW_TESTS"))


@functools.cache
def measure(model_id):
    """Accuracy of the shipped files, measured once per test session: on the
    exact test images only where the data set marks them (unless ALL_IMAGES)."""
    data = datasets.load_dataset(shipped_config(model_id)["dataset"])
    if "test_exact_mask" in data and not ALL_IMAGES:
        exact = data.pop("test_exact_mask")
        data.update(x_test=data["x_test"][exact], y_test=data["y_test"][exact],
                    test_exact_mask=exact[exact])
    return evaluate(hub.load(model_id), data)


@pytest.mark.parametrize("model_id", SHIPPED)
def test_shipped_model_reproduces_its_card(model_id):
    config = shipped_config(model_id)
    card = (registry.PRETRAINED / model_id / "MODEL_CARD.md").read_text()
    assert config["weights_sha256"] in card
    measured = measure(model_id)
    stated = config["metrics"]
    subset = "exact_test_images" in stated and not ALL_IMAGES
    assert measured["test_images"] == stated["exact_test_images" if subset else "test_images"]
    keys = ["exact_test_accuracy"] if subset else ["test_accuracy", "exact_test_accuracy"]
    for key in (key for key in keys if key in stated):
        assert measured[key] == pytest.approx(stated[key], abs=0.002), key


def test_default_cifar10_one_bit_model_meets_the_zoo_targets():
    """Issues 5 and 15, on the 1000 exact CIFAR-10 test images: the default one-bit
    model reaches 90% and stays within 1.5 points of its float twin."""
    model_id = hub.default_model_id()
    assert model_id.endswith("-cifar10-1bit")
    one_bit = measure(model_id)["exact_test_accuracy"]
    float_twin = measure(model_id.replace("-1bit", "-float"))["exact_test_accuracy"]
    assert one_bit >= 0.90
    assert float_twin - one_bit <= 0.015


def test_eval_prints_the_cards_accuracy_for_the_default():
    """What `python -m keras_onebit eval` prints for the shipped default is its card's
    exact-test accuracy (the command of its config's metrics)."""
    import os
    import subprocess
    import sys

    model_id = hub.default_model_id()
    stated = shipped_config(model_id)["metrics"]["exact_test_accuracy"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "keras_onebit", "eval", "--model", model_id,
                           "--dataset", "cifar10", "--exact_only"], capture_output=True,
                          text=True, env=env, timeout=600, cwd=registry.PROJECT_ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    error = 100.0 * (1.0 - stated)
    assert (f"top-1 error, all 1000 evaluated test images (1000 exact): {error:.2f}% "
            f"(accuracy {100 - error:.2f}%)") in proc.stdout, proc.stdout
