"""Importer for the authors' published one-bit WRN models (McDonnell, ICLR 2018).

Two layouts (SPEC section 2), both read with `scipy.io.loadmat`:

- Keras `*_allparams.mat`: `conv2d[_i]` uint8 0/1 (1, kh, kw, C_in, C_out);
  `batch_normalization_v1_i`: the input BN (4, 3) = gamma, beta, mean,
  variance, every other (2, C) = mean, variance. Order = numeric suffix.
  Trained with TF "same" padding and no ReLU after the input BN.
- MATLAB `TrainedWideResNet20-10_*.mat` (MatConvNet): `BinaryWeights` (cells
  HWIO 0/1), `LayerWeights` (alphas), `BNG` / `BNB` (gamma / beta, only the
  first learned), `Moments` (C x 2 = mean, sigma), `Stride`. A ReLU follows
  the input BN; BN is (x - mean) / sigma * gamma + beta with the stored sigma,
  reproduced in Keras by moving_variance = sigma^2 - epsilon; MatConvNet pads
  symmetrically and its average pool does not count padded cells, hence
  `padding="symmetric"` in the factory.

Bit b becomes the latent weight 2b - 1, so the layer's forward kernel is
(2b - 1) * sqrt(2 / fan_in), the authors' scale.
"""

import math
import pathlib
import re

import numpy as np

from keras_onebit import data
from keras_onebit.errors import ConfigError, one_line
from keras_onebit.fileio import regular_file
from keras_onebit.hub.checksum import sha256_file
from keras_onebit.hub.errors import MatFormatError

UPSTREAM = "https://raw.githubusercontent.com/McDonnell-Lab/1-bit-per-weight"
LAYOUTS = ("auto", "keras", "matlab")
MATLAB_FIELDS = ("BinaryWeights", "Moments", "BNG", "BNB")
MAX_WEIGHTS_MAT_BYTES = 1 << 30  # the published files are 4 MB

# The published files, by sha256 of the copies in ../shared/reference (MIT licence).
KNOWN_FILES = {
    "c1b73fa8820cfe2cc23e0728f7aebbfb02c49c68608da28c96aa78e554acc1f2": {
        "file": "CIFAR10_allparams.mat", "layout": "keras", "dataset": "cifar10",
        "published_accuracy": 96.25,
        "url": f"{UPSTREAM}/2627dcb8091dc8dcbe78af64bd3aeb72521a72f7/"
               "TrainedModels/Tensorflow.keras/CIFAR10_allparams.mat"},
    "285b1b89fe2c4b87606d31e60faa822681c5bb2394ec5aeef50c3d125050a798": {
        "file": "CIFAR100_allparams.mat", "layout": "keras", "dataset": "cifar100",
        "published_accuracy": 81.83,
        "url": f"{UPSTREAM}/2627dcb8091dc8dcbe78af64bd3aeb72521a72f7/"
               "TrainedModels/Tensorflow.keras/CIFAR100_allparams.mat"},
    "c8b0c1e3452f2b275b8eafea2e925e67f3c554a5aa90778fe7adbb54ab32d38e": {
        "file": "TrainedWideResNet20-10_CIFAR10_1-bit-per-weight-4MB.mat", "layout": "matlab",
        "dataset": "cifar10", "published_accuracy": 96.18,
        "url": f"{UPSTREAM}/9ec7b2a70e9ea88688d533ff852a1fe2b5c21c49/TrainedModels/Matlab/"
               "TrainedWideResNet20-10_CIFAR10_1-bit-per-weight-4MB.mat"},
    "18c83e38a7632a06aca2d6f0279d9606c4ecc6f2f14d8c2305d035f391d98688": {
        "file": "TrainedWideResNet20-10_CIFAR100_1-bit-per-weight-4MB.mat", "layout": "matlab",
        "dataset": "cifar100", "published_accuracy": 82.09,
        "url": f"{UPSTREAM}/a77b6728662a925072cea481072a4f993b0b8510/TrainedModels/Matlab/"
               "TrainedWideResNet20-10_CIFAR100_1-bit-per-weight-4MB.mat"},
}

EVAL = ("KERAS_ONEBIT_HUB=<hub folder> python -m keras_onebit eval --model {id} --dataset cifar10 "
        "--data-dir ../shared/data")


def _measured(model_id, exact, full):
    return {"exact_test_accuracy_percent": exact, "exact_test_images": 1000,
            "full_test_accuracy_percent": full, "full_test_images": 10000,
            "data": "this project's CIFAR-10 copy: test[0:1000] exact, the rest from a JPEG "
                    "(quality 75) copy (SPEC section 7)",
            "command": EVAL.format(id=model_id)}


def _agreement(model_id, other):
    return {"cifar100_test_set": "not available here: no CIFAR-100 accuracy measured",
            "top1_agreement_with_other_layout_percent": 59.0,
            "agreement_images": "the 1000 exact CIFAR-10 test images",
            "command": EVAL.format(id=model_id).replace(
                "--dataset", f"--agree_with {other} --exact_only --dataset")}


# Measured here on 2026-11-22 (docs/HUB.md); they go into the model cards of the conversions.
MEASURED = {
    "CIFAR10_allparams.mat": _measured("wrn_20_10-cifar10-1bit", 96.30, 87.19),
    "TrainedWideResNet20-10_CIFAR10_1-bit-per-weight-4MB.mat":
        _measured("wrn_20_10-cifar10-1bit-matlab", 96.20, 86.74),
    "CIFAR100_allparams.mat": _agreement("wrn_20_10-cifar100-1bit",
                                         "wrn_20_10-cifar100-1bit-matlab"),
    "TrainedWideResNet20-10_CIFAR100_1-bit-per-weight-4MB.mat":
        _agreement("wrn_20_10-cifar100-1bit-matlab", "wrn_20_10-cifar100-1bit"),
}

FACTORY_KWARGS = {"keras": {}, "matlab": {"stem_relu": True, "padding": "symmetric"}}


def mcdonnell_model_id(classes, layout, depth=20, width=10):
    suffix = "-matlab" if layout == "matlab" else ""
    return f"wrn_{depth}_{width}-cifar{classes}-1bit{suffix}"


# ----------------------------------------------------------------------------- reading


def _loadmat(path):
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such .mat file.")
    regular_file(path, "a .mat file of the authors' weights", MatFormatError)
    scipy_io = data.scipy_io()  # without scipy: MissingDependencyError naming the extra
    try:
        data.check_mat_sizes(path, MatFormatError, MAX_WEIGHTS_MAT_BYTES, "the authors' WRN files")
        return scipy_io.loadmat(str(path))
    except MatFormatError:
        raise
    except NotImplementedError as e:  # v7.3 (HDF5) files
        raise MatFormatError(f"{path}: unsupported .mat version ({one_line(e)}).") from e
    except Exception as e:  # scipy raises ValueError, TypeError, OSError, zlib.error...
        raise MatFormatError(
            f"{path}: not a readable .mat file, corrupt or truncated ({type(e).__name__}: "
            f"{one_line(e)})."
        ) from e


def _floats(array, where, dtype=np.float32):
    """`array` as `dtype` if it is numeric and every value is finite, else a
    MatFormatError naming `where` (the file and key) and the first bad element."""
    try:
        array = np.asarray(array).astype(dtype)
    except (TypeError, ValueError) as e:
        raise MatFormatError(f"{where} is not numeric ({one_line(e)}).") from e
    finite = np.isfinite(array)
    if not finite.all():
        first = int(np.argmin(finite.reshape(-1)))
        raise MatFormatError(f"{where} holds {array.reshape(-1)[first]} at element {first}: "
                             "values must be finite.")
    return array


def _non_negative(array, where, what):
    if array.size and array.min() < 0:
        first = int(np.argmax(array.reshape(-1) < 0))
        raise MatFormatError(f"{where} holds the negative {what} {array.reshape(-1)[first]} at "
                             f"element {first}: a {what} must be >= 0.")
    return array


def detect_layout(mat, path="<mat>"):
    keys = {k for k in mat if not k.startswith("__")}
    if any(k in keys for k in MATLAB_FIELDS):
        return "matlab"
    if any(k.startswith("conv2d") for k in keys) or any(
            k.startswith("batch_normalization") for k in keys):
        return "keras"
    raise MatFormatError(
        f"{path}: neither layout of the authors' WRN files: expected the Keras keys conv2d*, "
        f"batch_normalization* or the MATLAB fields {', '.join(MATLAB_FIELDS)}; found "
        f"{', '.join(sorted(keys)) or 'no variables'}."
    )


def _numbered(mat, bases, path):
    """Keys `<base>` and `<base>_<i>` sorted by i (no suffix = 0), for the first
    base present; raises on a gap in the numbering (a deleted key)."""
    for base in bases:
        keys = [k for k in mat if re.fullmatch(rf"{re.escape(base)}(_\d+)?", k)]
        if keys:
            break
    else:
        return []

    def number(key):
        return int(key[len(base) + 1:]) if len(key) > len(base) else 0

    keys.sort(key=number)
    numbers = [number(k) for k in keys]
    gaps = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if gaps:
        raise MatFormatError(
            f"{path}: missing keys {', '.join(f'{base}_{n}' if n else base for n in gaps)} among "
            f"the {base} keys ({keys[0]} .. {keys[-1]})."
        )
    return keys


def _bits(array, where):
    array = np.asarray(array)
    if array.dtype.kind not in "uib" or array.size == 0:
        raise MatFormatError(f"{where}: expected 0/1 integers, got {array.dtype} {array.shape}.")
    if array.max() > 1 or array.min() < 0:
        raise MatFormatError(f"{where}: expected bits 0/1, found values {np.unique(array)[:5]}.")
    return array.astype(np.uint8)


def read_keras_layout(mat, path="<mat>"):
    """{"kernels": [HWIO uint8], "bn": [dict], "layout": "keras"} from `*_allparams.mat`."""
    convs = _numbered(mat, ["conv2d"], path)
    bns = _numbered(mat, ["batch_normalization_v1", "batch_normalization"], path)
    if not convs or not bns:
        missing = [n for n, ks in (("conv2d*", convs), ("batch_normalization*", bns)) if not ks]
        raise MatFormatError(f"{path}: missing keys {', '.join(missing)} (Keras layout).")
    if len(bns) != len(convs) + 1:
        raise MatFormatError(
            f"{path}: {len(convs)} conv2d keys need {len(convs) + 1} batch_normalization keys "
            f"(one before each conv and one after the head), found {len(bns)}: the file "
            "is missing keys."
        )
    kernels = []
    for key in convs:
        k = np.asarray(mat[key])
        if k.ndim != 5 or k.shape[0] != 1:
            raise MatFormatError(f"{path}: {key} has shape {k.shape}, expected (1, kh, kw, C_in, "
                                 "C_out).")
        kernels.append(_bits(k[0], f"{path}: {key}"))
    layers = []
    for i, key in enumerate(bns):
        b = _floats(mat[key], f"{path}: {key}")
        rows = 4 if i == 0 else 2
        if b.ndim != 2 or b.shape[0] != rows:
            raise MatFormatError(
                f"{path}: {key} has shape {b.shape}, expected ({rows}, C) "
                f"({'gamma, beta, mean, variance' if i == 0 else 'mean, variance'})."
            )
        _non_negative(b[rows - 1], f"{path}: {key} (variance row)", "variance")
        if i == 0:
            layers.append({"gamma": b[0], "beta": b[1], "mean": b[2], "variance": b[3]})
        else:
            layers.append({"mean": b[0], "variance": b[1]})
    return {"layout": "keras", "kernels": kernels, "bn": layers, "keys": convs + bns}


def _cells(mat, field, path):
    cells = np.asarray(mat[field])
    if cells.dtype != object:
        raise MatFormatError(f"{path}: field {field} should be a cell array, got {cells.dtype}.")
    return [np.asarray(c) for c in cells.reshape(-1)]


def read_matlab_layout(mat, path="<mat>", epsilon=1e-5):
    """Same dict as `read_keras_layout` from `TrainedWideResNet20-10_*.mat`."""
    missing = [f for f in MATLAB_FIELDS if f not in mat]
    if missing:
        raise MatFormatError(f"{path}: missing keys {', '.join(missing)} (MATLAB layout needs "
                             f"{', '.join(MATLAB_FIELDS)}).")
    kernels = [_bits(k, f"{path}: BinaryWeights{{{i + 1}}}")
               for i, k in enumerate(_cells(mat, "BinaryWeights", path))]
    kernels = [k[:, :, None, None] if k.ndim == 2 else k for k in kernels]  # squeezed 1x1
    moments = _cells(mat, "Moments", path)
    gammas = _cells(mat, "BNG", path)
    betas = _cells(mat, "BNB", path)
    if not (len(moments) == len(gammas) == len(betas) == len(kernels) + 1):
        raise MatFormatError(
            f"{path}: {len(kernels)} BinaryWeights need {len(kernels) + 1} cells in Moments, BNG "
            f"and BNB; found {len(moments)}, {len(gammas)}, {len(betas)}."
        )
    layers = []
    for i, (m, g, b) in enumerate(zip(moments, gammas, betas, strict=True)):
        m = _floats(m, f"{path}: Moments{{{i + 1}}}", np.float64)
        g = _floats(g, f"{path}: BNG{{{i + 1}}}")
        b = _floats(b, f"{path}: BNB{{{i + 1}}}")
        if m.ndim != 2 or m.shape[1] != 2:
            raise MatFormatError(f"{path}: Moments{{{i + 1}}} has shape {m.shape}, expected "
                                 "(C, 2) = mean, sigma.")
        sigma = _non_negative(m[:, 1], f"{path}: Moments{{{i + 1}}} (sigma column)", "sigma")
        if np.any(sigma**2 <= epsilon):
            raise MatFormatError(f"{path}: Moments{{{i + 1}}} has sigma^2 <= epsilon {epsilon}; "
                                 "Keras BN cannot reproduce it.")
        bn = {"mean": m[:, 0].astype(np.float32),
              "variance": (sigma**2 - epsilon).astype(np.float32)}
        g, b = g.astype(np.float32).reshape(-1), b.astype(np.float32).reshape(-1)
        if i == 0:
            bn.update(gamma=g, beta=b)
        elif not (np.all(g == 1) and np.all(b == 0)):
            raise MatFormatError(f"{path}: BNG/BNB{{{i + 1}}} are learned (not 1/0); the WRN "
                                 "factory learns scale/offset only in the input BN.")
        layers.append(bn)
    info = {"layout": "matlab", "kernels": kernels, "bn": layers, "keys": list(MATLAB_FIELDS)}
    if "LayerWeights" in mat:
        alphas = _floats(mat["LayerWeights"], f"{path}: LayerWeights", np.float64).reshape(-1)
        he = [math.sqrt(2.0 / math.prod(k.shape[:3])) for k in kernels]
        if len(alphas) != len(kernels) or not np.allclose(alphas, he, rtol=1e-5):
            raise MatFormatError(f"{path}: LayerWeights {alphas[:4]}... are not sqrt(2 / fan_in) "
                                 f"{np.asarray(he[:4])}...; the factory's scale cannot match.")
    if "Stride" in mat:
        strides = _floats(mat["Stride"], f"{path}: Stride", np.float64).reshape(-1)
        info["strides"] = [int(s) for s in strides]
    return info


def read_mat(path, layout="auto"):
    """Reads either layout; returns the dict of `read_*_layout` plus depth,
    width, classes and the file's sha256."""
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    mat = _loadmat(path)
    found = detect_layout(mat, path)
    layout = found if layout == "auto" else layout
    info = read_keras_layout(mat, path) if layout == "keras" else read_matlab_layout(mat, path)
    kernels = info["kernels"]
    n, extra = divmod(len(kernels) - 2, 6)
    if extra or n < 1:
        raise MatFormatError(f"{path}: {len(kernels)} conv layers is not a WRN depth 6n + 2.")
    stem_out = kernels[0].shape[-1]
    if stem_out % 16:
        raise MatFormatError(f"{path}: stem conv has {stem_out} filters, not 16 * width.")
    info.update(depth=len(kernels), width=stem_out // 16, classes=int(kernels[-1].shape[-1]),
                sha256=sha256_file(path), path=str(path))
    if "strides" in info:
        expected = [2 if i in (1 + 2 * n, 1 + 4 * n) else 1 for i in range(len(kernels))]
        if info["strides"] != expected:
            raise MatFormatError(f"{path}: Stride {info['strides']} is not the WRN pattern "
                                 f"{expected}.")
    return info


# ---------------------------------------------------------------------------- building


def conv_and_bn_names(depth):
    """Layer names of the factory in the order of the authors' files."""
    n = (depth - 2) // 6
    convs, bns = ["stem_conv"], ["stem_bn"]
    for s in range(1, 4):
        for b in range(1, n + 1):
            convs += [f"stage{s}_block{b}_conv1", f"stage{s}_block{b}_conv2"]
            bns += [f"stage{s}_block{b}_1_bn", f"stage{s}_block{b}_2_bn"]
    return convs + ["head_conv"], bns + ["head_bn", "head_bn_out"]


def factory_spec(info):
    """(factory name, factory kwargs) that build the network of `info`."""
    factory = f"wrn_{info['depth']}_{info['width']}"
    return factory, {"classes": info["classes"], "binary": True,
                     **FACTORY_KWARGS[info["layout"]]}


def build_model(info, classifier_activation="softmax"):
    """The factory model with the weights of `info` (from `read_mat`)."""
    from keras_onebit import models

    factory, kwargs = factory_spec(info)
    if factory in models.list_models():
        model = models.get(factory, classifier_activation=classifier_activation, **kwargs)
    else:
        model = models.wrn(info["depth"], info["width"],
                           classifier_activation=classifier_activation, **kwargs)
    convs, bns = conv_and_bn_names(info["depth"])
    where = f"{info['path']} ({info['layout']} layout)"
    for i, (name, bits) in enumerate(zip(convs, info["kernels"], strict=True)):
        layer = model.get_layer(name)
        if tuple(layer.kernel.shape) != bits.shape:
            raise MatFormatError(f"{where}: conv {i} has shape {bits.shape}, the factory's "
                                 f"{name} needs {tuple(layer.kernel.shape)}.")
        layer.kernel.assign(bits.astype(np.float32) * 2.0 - 1.0)
    for i, (name, bn) in enumerate(zip(bns, info["bn"], strict=True)):
        layer = model.get_layer(name)
        values = [bn[k] for k in ("gamma", "beta", "mean", "variance") if k in bn]
        shapes = [tuple(w.shape) for w in layer.weights]
        if shapes != [v.shape for v in values]:
            raise MatFormatError(f"{where}: BN {i} has shapes {[v.shape for v in values]}, the "
                                 f"factory's {name} needs {shapes}.")
        layer.set_weights(values)
    return model


def source_info(info):
    known = KNOWN_FILES.get(info["sha256"], {})
    source = {"authors": "M. D. McDonnell, ICLR 2018 (McDonnell-Lab/1-bit-per-weight, MIT)",
              "layout": info["layout"], "file": pathlib.Path(info["path"]).name,
              "sha256": info["sha256"]}
    for key in ("url", "published_accuracy"):
        if key in known:
            source[key] = known[key]
    return source


def import_mcdonnell(mat_path, out_dir, layout="auto", model_id=None, metrics=None):
    """Converts one of the authors' .mat files into the hub entry
    `<out_dir>/<model_id>/` (default id e.g. "wrn_20_10-cifar10-1bit", with a
    "-matlab" suffix for the MATLAB layout).

    Args:
        mat_path: one of McDonnell's published WRN .mat files (needs scipy,
            the "mat" extra).
        out_dir: the hub folder (or the entry folder itself), as in
            `save_entry`.
        layout: "auto" (default: detected from the variables), "keras" or
            "matlab".
        model_id: the hub id; default from the classes, layout, depth and
            width.
        metrics: a dict for the model card; default this project's
            measurements when the file is a known one and the id the default.

    Returns:
        The entry folder, a `pathlib.Path` (what `save_entry` returns).

    Raises:
        ConfigError: an unknown `layout`.
        FileNotFoundError: there is no file at `mat_path`.
        MatFormatError: a file that is too large, unreadable or not one of
            the authors' two WRN layouts (names what is missing).
        HubError: as `save_entry` (an invalid `model_id`, a manifest that
            cannot be updated).
    """
    from keras_onebit.hub.entry import save_entry

    info = read_mat(mat_path, layout)
    model = build_model(info)
    factory, kwargs = factory_spec(info)
    model_id = model_id or mcdonnell_model_id(info["classes"], info["layout"], info["depth"],
                                            info["width"])
    source = source_info(info)
    known = KNOWN_FILES.get(info["sha256"])
    default_id = mcdonnell_model_id(info["classes"], info["layout"])
    if metrics is None and known and model_id == default_id:
        metrics = dict(MEASURED[known["file"]])
    notes = (
        "Converted from the authors' published weights by `keras_onebit.hub.import_mcdonnell`"
        f" ({info['layout']} layout). "
        + ("MATLAB layout: ReLU after the input BN, BN with the stored sigma (moving_variance = "
           "sigma^2 - 1e-5), MatConvNet symmetric padding for the stride-2 convs and the "
           "shortcut average pools (padded cells not counted). "
           if info["layout"] == "matlab" else "Keras layout: TF \"same\" padding. ")
        + "Published accuracy is the authors'; accuracy measured by this project: docs/HUB.md."
    )
    return save_entry(model, out_dir, model_id, factory, kwargs,
                      dataset=f"cifar{info['classes']}", metrics=metrics,
                      training_command=None, licence="MIT (McDonnell-Lab)", notes=notes,
                      source=source)
