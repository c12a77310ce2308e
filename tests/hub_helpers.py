"""Helpers of the hub tests: small synthetic .mat files in both of the authors' layouts."""

import math

import numpy as np
import scipy.io

EPS = 1e-5


def randomize_bn(model, seed=0):
    """Gives every BN of `model` random moving statistics (and scale/offset)."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            values = []
            for w in layer.weights:
                shape = tuple(w.shape)
                if "variance" in w.path:
                    values.append(rng.uniform(0.5, 2.0, shape).astype("float32"))
                elif "mean" in w.path:
                    values.append(rng.normal(0, 0.5, shape).astype("float32"))
                else:
                    values.append(rng.uniform(0.5, 1.5, shape).astype("float32"))
            layer.set_weights(values)
    return model


def _ordered(model):
    from keras_onebit.hub.mcdonnell import conv_and_bn_names

    depth = sum(1 for layer in model.layers if hasattr(layer, "kernel_quantizer"))
    convs, bns = conv_and_bn_names(depth)
    return [model.get_layer(n) for n in convs], [model.get_layer(n) for n in bns]


def keras_layout_dict(model, first_conv=40, first_bn=105):
    convs, bns = _ordered(model)
    d = {}
    for i, layer in enumerate(convs):
        key = "conv2d" if first_conv + i == 0 else f"conv2d_{first_conv + i}"
        d[key] = (layer.kernel.numpy() >= 0).astype(np.uint8)[None]
    for i, layer in enumerate(bns):
        d[f"batch_normalization_v1_{first_bn + i}"] = np.stack(
            [w.numpy() for w in layer.weights]).astype(np.float32)
    return d


def _cells(arrays, shape):
    cells = np.empty(shape, dtype=object)
    for i, a in enumerate(arrays):
        cells.flat[i] = a
    return cells


def matlab_layout_dict(model):
    convs, bns = _ordered(model)
    kernels = [(c.kernel.numpy() >= 0).astype(np.uint8) for c in convs]
    moments, gammas, betas = [], [], []
    for i, layer in enumerate(bns):
        w = [v.numpy() for v in layer.weights]
        mean, var = w[-2], w[-1]
        moments.append(np.stack([mean, np.sqrt(var.astype(np.float64) + EPS)], 1)
                       .astype(np.float32))
        gammas.append((w[0] if i == 0 else np.ones_like(mean))[:, None])
        betas.append((w[1] if i == 0 else np.zeros_like(mean))[:, None])
    n = len(kernels)
    blocks = (n - 2) // 6
    return {
        "BinaryWeights": _cells(kernels, (1, n)),
        "Moments": _cells(moments, (n + 1, 1)),
        "BNG": _cells(gammas, (n + 1, 1)),
        "BNB": _cells(betas, (n + 1, 1)),
        "LayerWeights": np.array([[math.sqrt(2.0 / math.prod(k.shape[:3]))] for k in kernels],
                                 np.float32),
        "Stride": np.array([[2 if i in (1 + 2 * blocks, 1 + 4 * blocks) else 1
                             for i in range(n)]], np.uint8),
    }


def save_mat(path, d):
    scipy.io.savemat(str(path), d, do_compression=True)
    return path
