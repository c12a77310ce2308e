"""summary(): memory and MACs per precision, nested models, the papers' units
(issue 13 §2, issue 16 §2), and the public layer walk of keras_onebit.layer_walk."""

import math

import keras
import pytest

import keras_onebit as kob
from keras_onebit.layer_walk import iter_layers, named_layers, sublayers, weight_owners
from keras_onebit.summary import summary

TOTALS = ("binary_weights", "float_parameters", "binary_weight_bytes", "onebit_bytes",
          "float32_bytes", "real_params", "memory_mbit", "binary_macs", "binary_weight_macs",
          "float_macs", "binary_ops", "float_ops", "ops", "macs_unknown")


def quiet(model):
    return summary(model, print_fn=None)


def single(layer, input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, layer(inputs))


class Block(keras.layers.Layer):
    """A layer holding sub-layers (an attribute, a list, a private attribute)
    and a weight of its own."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = kob.BinaryConv2D(4, 3, padding="same", name="conv")
        self.parts = [keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(name="relu")]
        self._head = keras.layers.Dense(3, name="head")
        self.gain = self.add_weight(shape=(5,), initializer="ones", name="gain")

    def call(self, x):
        return self._head(self.parts[1](self.parts[0](self.conv(x))))


def test_nested_model_equals_flat():
    wrn = kob.models.wrn_20_1()
    flat, nested = quiet(wrn), quiet(keras.Sequential([wrn]))
    assert flat["binary_weights"] == 268_336 > 0
    assert {k: nested[k] for k in TOTALS} == {k: flat[k] for k in TOTALS}
    assert nested["layers"] == flat["layers"]
    assert [r["path"] for r in nested["profile"]] == [
        "wrn_20_1/" + r["path"] for r in flat["profile"]]
    # twice nested, and inside a functional model
    inputs = keras.Input((32, 32, 3))
    outer = keras.Model(inputs, keras.Sequential([wrn])(inputs))
    assert {k: quiet(outer)[k] for k in TOTALS} == {k: flat[k] for k in TOTALS}


def test_wrn_20_10_memory_as_in_spec():
    lines = []
    result = summary(kob.models.wrn_20_10(), print_fn=lines.append)
    assert result["binary_weights"] == 26_737_120
    assert result["binary_weight_bytes"] == 3_342_140  # 3.34 MB (3.19 MiB) at one bit
    assert "3.34 MB at one bit (float32: 106.9 MB)" in lines[0]
    # McDonnell: binary weights on real inputs everywhere, no binary ops
    assert result["binary_macs"] == result["binary_ops"] == result["float_macs"] == 0
    assert result["float_ops"] == result["ops"] == result["binary_weight_macs"] > 0
    # 20 he scales + 21 BN (2 per channel; the stem BN's 3 channels)
    bn_channels = 3 + sum(r["float_parameters"] // 2 for r in result["profile"]
                          if r["type"] == "BatchNormalization" and r["name"] != "stem_bn")
    assert result["real_params"] == 20 + 2 * bn_channels
    assert result["memory_mbit"] == pytest.approx(
        (26_737_120 + 32 * result["real_params"]) / 1e6)


@pytest.mark.parametrize("factory, ops, mbit", [
    (kob.models.bireal_18, 1.63e8, 33.6),
    (kob.models.bireal_34, 1.93e8, 43.7),
])
def test_bireal_ops_and_mbit_match_the_paper(factory, ops, mbit):
    lines = []
    result = summary(factory(), print_fn=lines.append)
    assert result["ops"] == pytest.approx(ops, rel=0.015)
    assert result["memory_mbit"] == pytest.approx(mbit, rel=0.015)
    assert result["ops"] == result["float_ops"] + result["binary_ops"] / 64
    assert result["binary_weight_macs"] == 0 and result["macs_unknown"] == []
    # float: the 7x7/2 stem on 224x224, three 1x1 projections, the dense layer
    stem = 112 * 112 * 64 * 7 * 7 * 3
    assert result["float_ops"] == stem + 3 * 6_422_528 + 512 * 1000
    assert f"{result['memory_mbit']:.2f} Mbit" in lines[0]
    assert f"OPs:              {result['ops']:.3g}" in lines[0]


def test_bireal_18_binary_macs_by_hand():
    result = quiet(kob.models.bireal_18())
    # every 3x3 binary conv: 56x56x64 ... 7x7x512 outputs; the first of stages 2-4 halves C_in
    full = 56 * 56 * 64 * 9 * 64
    assert result["binary_macs"] == 16 * full - 3 * full // 2
    assert result["binary_weights"] == 10_985_472


@pytest.mark.parametrize("kwargs, kind", [
    ({"input_quantizer": "approx_sign"}, "binary_macs"),  # Bi-Real: XNOR-popcount
    ({}, "binary_weight_macs"),  # McDonnell: +-alpha times real inputs
    ({"binary": False}, "float_macs"),
])
def test_conv_macs_by_hand(kwargs, kind):
    conv = kob.BinaryConv2D(8, 3, padding="same", **kwargs)
    result = quiet(single(conv, (8, 8, 4)))
    macs = 8 * 8 * 8 * (3 * 3 * 4)
    row = next(r for r in result["profile"] if r["type"] == "BinaryConv2D")
    assert row["macs"] == macs and row["mac_kind"] == kind
    assert {k: result[k] for k in ("binary_macs", "binary_weight_macs", "float_macs")} == {
        k: macs if k == kind else 0 for k in ("binary_macs", "binary_weight_macs", "float_macs")}
    binary = kwargs.get("binary", True)
    assert result["binary_weights"] == (288 if binary else 0)
    assert result["real_params"] == (1 if binary else 288)  # the he scale, or the float kernel
    assert result["ops"] == (macs / 64 if kind == "binary_macs" else macs)


def test_float_layer_macs_by_hand():
    L = keras.layers
    cases = [
        (L.Conv2D(8, 3, strides=2, padding="same", groups=2), (8, 8, 4), 4 * 4 * 8 * 3 * 3 * 2),
        (L.DepthwiseConv2D(3, depth_multiplier=2, padding="valid"), (8, 8, 4), 6 * 6 * 8 * 9),
        (L.SeparableConv2D(6, 3, padding="same"), (8, 8, 4), 8 * 8 * 4 * 9 + 8 * 8 * 4 * 6),
        (L.Conv2DTranspose(6, 3, strides=2, padding="same"), (4, 4, 4), 4 * 4 * 4 * 9 * 6),
        (L.Conv1D(5, 3), (10, 2), 8 * 5 * 3 * 2),
        (L.Dense(7), (3, 5), 3 * 7 * 5),
        (kob.BinaryDense(7, binary=False), (5,), 35),
    ]
    for layer, shape, macs in cases:
        result = quiet(single(layer, shape))
        assert result["float_macs"] == result["float_ops"] == result["ops"] == macs, layer


def test_scales_and_batch_norm_in_real_params():
    inputs = keras.Input((8, 8, 4))
    x = kob.BinaryConv2D(8, 3, scale="mean_abs", use_bias=True)(inputs)
    x = keras.layers.BatchNormalization(center=False, scale=False)(x)  # McDonnell's fixed BN
    x = keras.layers.BatchNormalization()(x)
    result = quiet(keras.Model(inputs, x))
    assert result["binary_weights"] == 288
    assert result["real_params"] == 8 + 8 + 2 * 8 + 2 * 8  # scales, bias, 2 BN x 2 per channel
    assert result["float_parameters"] == 8 + 8 + 2 * 8 + 4 * 8  # deployed: BN statistics too
    assert result["memory_mbit"] == (288 + 32 * 48) / 1e6


def test_switchable_layer_counts_as_float_until_switched():
    model = single(kob.BinaryConv2D(8, 3, padding="same", switchable=True), (8, 8, 4))
    before = quiet(model)
    assert before["binary_weights"] == 0 and before["float_macs"] == 8 * 8 * 8 * 36
    assert before["real_params"] == 288  # the boolean switch is no parameter
    model.layers[-1].set_binary(True)
    after = quiet(model)
    assert after["binary_weights"] == 288 and after["binary_weight_macs"] == 8 * 8 * 8 * 36
    assert after["real_params"] == 1


def test_layer_with_sub_layers():
    inputs = keras.Input((8, 8, 2), name="pixels")
    model = keras.Model(inputs, Block(name="block")(inputs))
    assert [p for p, _ in named_layers(model)] == [
        "pixels", "block/conv", "block/bn", "block/relu", "block/head"]
    assert [p for p, _ in named_layers(model, containers=True)][:2] == ["pixels", "block"]
    lines = []
    result = summary(model, print_fn=lines.append)
    by_path = {r["path"]: r for r in result["profile"]}
    assert by_path["block"]["float_parameters"] == 5  # its own weight, not its children's
    assert by_path["block/conv"]["binary_weights"] == 72
    assert result["float32_bytes"] == 4 * sum(math.prod(w.shape) for w in model.weights)
    assert 4 * (result["binary_weights"] + result["float_parameters"] - 1) == (
        result["float32_bytes"])  # every variable once (the he scale is no variable)
    # the sub-layers never ran in a functional graph: no shapes, MACs unknown, said so
    assert result["macs_unknown"] == ["block/conv", "block/head"]
    assert "MACs not counted (output shape unknown): block/conv, block/head" in lines[0]


def test_walk_visits_each_layer_once():
    wrn = kob.models.wrn(8, 1, input_shape=(32, 32, 3))
    inputs = keras.Input((32, 32, 3))
    shared = keras.layers.Dense(10)
    model = keras.Model(inputs, shared(shared(wrn(inputs))))
    layers = list(iter_layers(model, containers=True))
    assert len({id(layer) for layer in layers}) == len(layers)
    assert wrn in layers and shared in layers
    assert all(layer in layers for layer in wrn.layers)
    assert wrn not in list(iter_layers(model))  # leaves only by default
    # Keras' private walk finds the same layers
    private = model._flatten_layers(include_self=False, recursive=True)
    assert {id(layer) for layer in private} == {id(layer) for layer in layers}
    owners = weight_owners(model)
    assert all(owners[id(w)] is not wrn for w in wrn.weights)
    assert sublayers(keras.Sequential([wrn])) == [wrn]
    # the shared dense layer counts its weights once (and its first call's MACs)
    result = quiet(model)
    assert result["float32_bytes"] == 4 * sum(math.prod(w.shape) for w in model.weights)


def test_summary_of_a_single_layer():
    dense = kob.BinaryDense(4, name="dense")
    dense.build((None, 6))
    result = quiet(dense)
    assert result["binary_weights"] == 24 and result["real_params"] == 1
    assert result["macs_unknown"] == ["dense"]  # never called: no output shape
