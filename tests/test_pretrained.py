"""The models shipped in pretrained/: each loads from its shipped files
(sha256 checked) and re-measures the accuracy its model card states."""

import json

import numpy as np
import pytest

from keras_onebit import data as datasets
from keras_onebit import hub
from keras_onebit.hub import registry
from keras_onebit.training.loop import evaluate

SHIPPED = sorted(p.parent.name for p in registry.PRETRAINED.glob("*/config.json"))


def test_the_default_model_is_shipped():
    assert hub.default_model_id() in SHIPPED


@pytest.mark.parametrize("model_id", SHIPPED)
def test_shipped_model_reproduces_its_card(model_id):
    folder = registry.PRETRAINED / model_id
    config = json.loads((folder / "config.json").read_text())
    assert config["weights_sha256"] in (folder / "MODEL_CARD.md").read_text()
    model = hub.load(model_id)
    data = datasets.load_dataset(config["dataset"])
    measured = evaluate(model, data)
    stated = config["metrics"]
    for key in ("test_accuracy", "exact_test_accuracy"):
        if key in stated:
            assert measured[key] == pytest.approx(stated[key], abs=0.002), key
    assert np.isfinite(measured["test_accuracy"])
