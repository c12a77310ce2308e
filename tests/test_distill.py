"""Knowledge distillation (keras_onebit.training.distill, train --teacher):
the loss against a hand computation, the teacher's flip average, the checks
of a teacher file, and a run that switches to distillation at a warm restart,
also when resumed across the switch."""

import keras
import numpy as np
import pytest

from keras_onebit import data as datasets
from keras_onebit.errors import ConfigError
from keras_onebit.training import WarmRestartCosine
from keras_onebit.training.distill import (
    DistillationLoss,
    LabelAccuracy,
    teacher_probabilities,
    with_teacher,
)
from keras_onebit.training.loop import RunConfig, curve_marks, load_teacher, phases, train
from tests.conftest import slow


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_loss_is_the_mix_of_cross_entropy_and_tempered_kl():
    rng = np.random.default_rng(0)
    student, teacher = softmax(rng.normal(size=(4, 5))), softmax(rng.normal(size=(4, 5)))
    labels = np.array([0, 3, 1, 4])
    t, w = 2.0, 0.3
    ce = -np.log(student[np.arange(4), labels])
    p_t, q_t = softmax(np.log(student) / t), softmax(np.log(teacher) / t)
    kl = (q_t * (np.log(q_t) - np.log(p_t))).sum(-1)
    expected = np.mean((1 - w) * ce + w * t * t * kl)
    loss = DistillationLoss(temperature=t, weight=w)
    got = float(loss(with_teacher(labels, teacher), student.astype(np.float32)))
    assert got == pytest.approx(expected, rel=1e-5)
    # labels only (the validation data): the cross-entropy
    assert float(loss(labels, student.astype(np.float32))) == pytest.approx(ce.mean(), rel=1e-5)
    # with w = 1, predicting the teacher's own distribution costs nothing
    pure = DistillationLoss(1.0, 1.0)(with_teacher(labels, teacher), teacher.astype(np.float32))
    assert float(pure) == pytest.approx(0, abs=1e-5)
    accuracy = LabelAccuracy()
    accuracy.update_state(with_teacher(labels, teacher), student)
    assert float(accuracy.result()) == np.mean(student.argmax(1) == labels)


@pytest.mark.parametrize("kwargs", [{"temperature": 0}, {"weight": 1.5}])
def test_bad_settings_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        DistillationLoss(**kwargs)


def test_teacher_probabilities_average_the_image_and_its_mirror():
    images = np.random.default_rng(1).integers(0, 256, (7, 4, 4, 3)).astype(np.uint8)

    def predict(batch):  # depends on the left column, so the mirror differs
        left = batch[:, :, 0, 0].mean(1) / 255
        return np.stack([left, 1 - left], axis=1)

    probs = teacher_probabilities(predict, images, batch_size=3, verbose=0)
    left, right = images[:, :, 0, 0].mean(1) / 255, images[:, :, -1, 0].mean(1) / 255
    np.testing.assert_allclose(probs[:, 0], (left + right) / 2, rtol=1e-6)
    assert probs.dtype == np.float32 and probs.shape == (7, 2)
    with pytest.raises(ConfigError, match="one probability distribution per image"):
        teacher_probabilities(lambda b: np.ones((len(b), 2)), images, verbose=0)


def test_teacher_file_is_checked_before_it_is_read(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, softmax(np.zeros((6, 10))).astype(np.float32))
    assert load_teacher(good, (6, 6), 10).shape == (6, 10)
    with pytest.raises(ConfigError, match=r"shape \(6, 10\), expected \(8, 10\)"):
        load_teacher(good, (8, 4), 10)
    lying = tmp_path / "lying.npy"  # a header claiming 10^12 rows, a file of a few bytes
    raw = good.read_bytes().replace(b"(6, 10)", b"(1000000000000, 10)")
    lying.write_bytes(raw)
    with pytest.raises(ConfigError, match="cannot read teacher probabilities"):
        load_teacher(lying, (6, 6), 10)
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ConfigError, match="cannot read teacher probabilities"):
        load_teacher(pickled, (1, 1), 10)
    np.save(tmp_path / "bad.npy", np.full((6, 10), 0.5, np.float32))
    with pytest.raises(ConfigError, match="probability distribution"):
        load_teacher(tmp_path / "bad.npy", (6, 6), 10)


def test_switch_epoch_must_be_a_warm_restart():
    config = RunConfig(teacher="t.npy", epochs=30, distill_from_epoch=14)
    config.check_distillation()
    assert phases(config, 0) == [(0, 14, False), (14, 30, True)]
    assert phases(config, 20) == [(20, 30, True)]
    assert phases(RunConfig(epochs=6), 2) == [(2, 6, False)]
    config.distill_from_epoch = 10
    with pytest.raises(ConfigError, match="end of a warm-restart cycle"):
        config.check_distillation()


def test_curves_mark_the_switch_to_distillation():
    assert curve_marks(RunConfig(teacher="t.npy", epochs=30, distill_from_epoch=14)) == [
        (14, "distillation from epoch 15")]
    assert curve_marks(RunConfig(teacher="t.npy", epochs=30, distill_from_epoch=0)) == []
    assert curve_marks(RunConfig(epochs=30, distill_from_epoch=14)) == []


@slow  # 39 s; docs/TRAINING.md runs a distillation
def test_run_switches_to_distillation_at_a_restart_also_when_resumed(tmp_path):
    labels = datasets.load_dataset("cifar10")["y_train"][:100]
    teacher = tmp_path / "teacher.npy"
    np.save(teacher, (0.9 * np.eye(10)[labels] + 0.01).astype(np.float32))
    config = RunConfig(model="wrn_20_1", dataset="cifar10", epochs=1, batch_size=50,
                       train_limit=100, out_dir=str(tmp_path / "run"), verbose=0, first_cycle=1,
                       teacher=str(teacher), distill_from_epoch=1)
    model, _ = train(config)  # epoch 1 only: plain cross-entropy
    assert not isinstance(model.loss, DistillationLoss)
    config.epochs = 3  # resumed: the switch at epoch 1 happens now
    train(config, resume=True)
    checkpoint = keras.models.load_model(tmp_path / "run" / "checkpoint.keras")
    assert isinstance(checkpoint.loss, DistillationLoss)
    assert int(checkpoint.optimizer.iterations.numpy()) == 6
    schedule = WarmRestartCosine(2, first_cycle=1)
    assert float(checkpoint.optimizer.learning_rate) == pytest.approx(float(schedule(6)))
    log = (tmp_path / "run" / "log.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["0", "1", "2"]
