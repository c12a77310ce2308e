"""keras.applications conventions of the factories (issue 10 §3), weights by
factory and built once (issue 16 §3), no import circle models -> hub (§5)."""

import ast
import inspect
import warnings

import keras
import numpy as np
import pytest

import keras_onebit as kob
from keras_onebit import hub, pretrained_weights
from keras_onebit.errors import ConfigError
from keras_onebit.models import registry
from tests.conftest import ROOT

KERAS_ARGS = ("include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
              "classifier_activation", "name")
WRN_ONEBIT_ARGS = ("binary", "scale", "gradient", "weight_decay", "learn_bn", "batch_norm",
                   "switchable", "input_storage", "temperature", "stem_relu", "padding")
HUB_ID = "wrn_20_2-cifar10-1bit"


@pytest.fixture(scope="module")
def images(cifar10):
    return cifar10["x_test"][:8].astype("float32")


@pytest.fixture(scope="module")
def hub_model():
    return hub.load(HUB_ID)


def weights_of(model):
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def assert_same_weights(got, expected_model):
    expected = weights_of(expected_model)
    assert got, "no weights compared"
    for name, values in got.items():
        assert len(values) == len(expected[name]), name
        for a, b in zip(values, expected[name], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


# --------------------------------------------------------------- signatures, arguments


@pytest.mark.parametrize("name", sorted(kob.models.list_models()))
def test_named_factories_have_explicit_keras_signatures(name):
    factory = kob.models.get_factory(name)
    params = inspect.signature(factory).parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()), name
    assert set(KERAS_ARGS) <= set(params), set(KERAS_ARGS) - set(params)
    assert {"binary", "scale", "gradient"} <= set(params)
    if name.startswith("wrn_"):
        assert set(WRN_ONEBIT_ARGS) <= set(params), set(WRN_ONEBIT_ARGS) - set(params)
    doc = inspect.getdoc(factory)
    assert "Args:" in doc and "Returns:" in doc and "Raises:" in doc


def test_wrn_20_2_signature_and_generic_factories():
    params = inspect.signature(kob.models.wrn_20_2).parameters
    assert {"include_top", "pooling", "input_tensor"} <= set(params)
    assert params["include_top"].default is True and params["pooling"].default is None
    for factory in (kob.models.wrn, kob.models.bireal_net):
        params = inspect.signature(factory).parameters
        assert set(KERAS_ARGS) <= set(params), factory.__name__
        assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@pytest.mark.parametrize("kwargs, message", [
    ({"include_top": False, "pooling": "mean"}, 'pooling must be None, "avg" or "max"'),
    ({"include_top": "no"}, "include_top must be True or False"),
    ({"classes": 0}, "classes must be a positive integer"),
    ({"weights": 3}, "weights must be None"),
    ({"input_shape": (32, 32)}, "input_shape must be"),
    ({"input_tensor": np.zeros((1, 32, 32, 3), "float32")}, "input_tensor must be a Keras"),
    ({"input_tensor": keras.Input((28, 28, 3)), "input_shape": (32, 32, 3)},
     "does not match the shape"),
    ({"weights": "cifar10", "classifier_activation": "sigmoid"},
     "classifier_activation must be None or 'softmax'"),
])
def test_bad_arguments_are_one_line_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message) as e:
        kob.models.wrn_20_1(**kwargs)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------- include_top, pooling


@pytest.mark.parametrize("pooling, shape", [(None, (None, 8, 8, 64)), ("avg", (None, 64)),
                                            ("max", (None, 64))])
def test_wrn_backbone_shapes(pooling, shape):
    model = kob.models.wrn_20_1(include_top=False, pooling=pooling)
    assert model.output_shape == shape
    names = [layer.name for layer in model.layers]
    assert "head_conv" not in names and "predictions" not in names
    assert names[-1] == {None: "head_relu", "avg": "avg_pool", "max": "max_pool"}[pooling]


def test_wrn_backbone_without_batch_norm_ends_with_shifted_relu():
    model = kob.models.wrn_20_1(include_top=False, batch_norm=False)
    assert model.layers[-1].name == "head_srelu" and model.output_shape == (None, 8, 8, 64)


def test_pooling_is_ignored_with_the_top():
    model = kob.models.wrn_20_1(pooling="max", classes=7)
    assert model.output_shape == (None, 7) and "max_pool" not in [x.name for x in model.layers]


@pytest.mark.parametrize("pooling, shape", [(None, (None, 2, 2, 512)), ("avg", (None, 512)),
                                            ("max", (None, 512))])
def test_bireal_backbone_shapes(pooling, shape):
    model = kob.models.bireal_18(include_top=False, pooling=pooling, input_shape=(64, 64, 3))
    assert model.output_shape == shape
    assert "fc" not in [layer.name for layer in model.layers]


def test_bireal_top_and_classes():
    model = kob.models.bireal_net((1, 1), classes=7, input_shape=(32, 32, 3), widths=(16, 32))
    assert model.output_shape == (None, 7) and model.get_layer("fc").units == 7


# ---------------------------------------------------------------------- input_tensor


def test_input_tensor_is_the_models_input():
    tensor = keras.Input((32, 32, 3), name="images")
    model = kob.models.wrn_20_1(input_tensor=tensor)
    assert model.inputs[0] is tensor and model.output_shape == (None, 10)


def test_input_tensor_after_other_layers_uses_their_source():
    source = keras.Input((40, 40, 3))
    cropped = keras.layers.CenterCrop(32, 32)(source)
    model = kob.models.wrn_20_1(input_tensor=cropped, include_top=False, pooling="avg")
    assert model.inputs[0] is source and model.input_shape == (None, 40, 40, 3)
    out = model.predict(np.zeros((2, 40, 40, 3), "float32"), verbose=0)
    assert out.shape == (2, 64)
    # Pretrained weights go into the factory's layers; the caller's crop stays its own.
    reference = hub.load(HUB_ID)
    hub_features = keras.Model(reference.inputs, reference.get_layer("pool").output)
    model = kob.models.wrn_20_2(input_tensor=cropped, weights="cifar10",
                                classifier_activation=None)
    assert model.inputs[0] is source
    x = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  hub_features.predict(x[:, 4:36, 4:36], verbose=0))
    # Bi-Real shares the tensor too, and takes its shape from it.
    tensor = keras.Input((64, 64, 3))
    bireal = kob.models.bireal_18(input_tensor=tensor, include_top=False)
    assert bireal.inputs[0] is tensor and bireal.output_shape == (None, 2, 2, 512)


# ----------------------------------------------------------- weights by factory, once


def test_weights_by_factory_whatever_the_name(images, hub_model, monkeypatch):
    # Built once: the archive's tensors go into the factory's model, no second model.
    def no_second_model(*args, **kwargs):
        raise AssertionError("weights= built a second model from the archive")

    monkeypatch.setattr(hub.loading, "load_packed_file", no_second_model)
    model = kob.models.wrn_20_2(weights="cifar10", name="x")
    assert model.name == "x"
    np.testing.assert_array_equal(model.predict(images, verbose=0),
                                  hub_model.predict(images, verbose=0))
    assert_same_weights(weights_of(model), hub_model)


@pytest.mark.parametrize("classes", [10, 100])
def test_backbone_weights_from_the_hub(images, hub_model, classes):
    backbone = kob.models.wrn_20_2(include_top=False, weights="cifar10", classes=classes,
                                   name="features")
    assert_same_weights(weights_of(backbone), hub_model)
    features = keras.Model(hub_model.inputs, hub_model.get_layer("head_relu").output)
    np.testing.assert_array_equal(backbone.predict(images, verbose=0),
                                  features.predict(images, verbose=0))
    pooled = kob.models.wrn_20_2(include_top=False, pooling="avg", weights=HUB_ID,
                                 classes=classes)
    np.testing.assert_allclose(pooled.predict(images, verbose=0),
                               features.predict(images, verbose=0).mean(axis=(1, 2)),
                               rtol=1e-5, atol=1e-5)


def test_top_with_other_classes_names_both_counts():
    with pytest.raises(hub.HubError, match="weights classify 10 classes, the model 100") as e:
        kob.models.wrn_20_2(weights="cifar10", classes=100)
    assert "include_top=False" in str(e.value) and "\n" not in str(e.value)


def test_backbone_of_another_architecture_is_refused():
    with pytest.raises(hub.ArchitectureMismatchError, match="stem_relu"):
        kob.models.wrn_20_1(include_top=False, stem_relu=True, weights="cifar10")
    with pytest.raises(hub.ArchitectureMismatchError, match="stem_conv"):
        kob.models.wrn_20_2(include_top=False, weights="wrn_20_1-cifar10-1bit")


def test_bireal_per_channel_scale_archive_loads_exactly(tmp_path):
    # Per-channel mean |W| scales: the latent kernel is rebuilt to give exactly
    # the stored scale, so outputs match the saved model bit for bit.
    keras.utils.set_random_seed(3)
    kwargs = {"stages": (1, 1), "widths": (16, 32), "input_shape": (32, 32, 3)}
    source = kob.models.bireal_net(classes=5, classifier_activation=None, **kwargs)
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            mean, var = layer.moving_mean, layer.moving_variance
            mean.assign(np.random.default_rng(0).normal(0, 0.5, mean.shape))
            var.assign(np.random.default_rng(1).uniform(0.5, 2, var.shape))
    path = tmp_path / "bireal.onebit"
    kob.export.save_packed(source, path)
    x = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model = kob.models.bireal_net(classes=5, classifier_activation=None, weights=path,
                                  name="mine", **kwargs)
    np.testing.assert_array_equal(model.predict(x, verbose=0), source.predict(x, verbose=0))
    backbone = kob.models.bireal_net(classes=3, include_top=False, pooling="avg", weights=path,
                                     **kwargs)
    features = keras.Model(source.inputs, source.get_layer("pool").output)
    np.testing.assert_array_equal(backbone.predict(x, verbose=0),
                                  features.predict(x, verbose=0))
    with pytest.raises(hub.HubError, match="5 classes, the model 3"):
        kob.models.bireal_net(classes=3, weights=path, **kwargs)


def test_the_resolver_is_registered_by_the_hub(monkeypatch):
    assert pretrained_weights.registered_loader() is hub.load_weights_into
    monkeypatch.setattr(pretrained_weights, "_loader", None)
    with pytest.raises(ConfigError, match="needs the hub"):
        kob.models.wrn(8, 1, weights="cifar10")


# -------------------------------------------------------------------- registry, layers


def test_registering_a_name_twice_warns():
    def dup_test_model():
        return None

    first = dup_test_model

    def dup_test_model():  # noqa: F811 - the clash under test
        return None

    try:
        registry.register_model(first)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            registry.register_model(first)  # the same function again: no warning
        with pytest.warns(UserWarning, match="'dup_test_model' is registered already"):
            registry.register_model(dup_test_model)
        assert kob.models.get_factory("dup_test_model") is dup_test_model
    finally:
        registry._FACTORIES.pop("dup_test_model", None)


HIGHER = ("keras_onebit.hub", "keras_onebit.export", "keras_onebit.cli")


def imported_modules(path, package=None):
    """Every module a file imports, at any depth (inside functions too): for
    `import a.b` "a.b", for `from a import b` "a.b" (relative imports resolved
    against `package`, by default the file's own)."""
    if package is None:
        package = ["keras_onebit", *path.parent.relative_to(ROOT / "keras_onebit").parts]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


def forbidden(names):
    """The higher parts among `names`; `import keras_onebit` itself imports them all."""
    return [n for n in names if n.startswith(HIGHER) or n == "keras_onebit"]


def test_import_walk_finds_lazy_and_relative_imports(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("import keras\nfrom keras_onebit import errors\n\n\ndef f():\n"
                    "    from keras_onebit import hub\n    from ..export import packed\n"
                    "    import keras_onebit.cli.train\n")
    names = imported_modules(path, package=["keras_onebit", "models"])
    assert forbidden(names) == ["keras_onebit.hub", "keras_onebit.export.packed",
                                "keras_onebit.cli.train"], names


@pytest.mark.parametrize("path", sorted((ROOT / "keras_onebit" / "models").glob("*.py"))
                         + [ROOT / "keras_onebit" / "pretrained_weights.py"],
                         ids=lambda p: p.name)
def test_models_never_import_hub_export_or_cli(path):
    names = imported_modules(path)
    assert any(n.startswith("keras_onebit.") for n in names), names  # the walk sees them
    assert not forbidden(names), f"{path.name} imports {forbidden(names)}"
