"""Latent kernels from stored sign bits and scales: the inverse of a
one-bit layer's forward pass, used when weights are loaded from a packed
archive and when a trained model's weights are set to +-alpha."""

import keras
import numpy as np


def restore_kernel(layer, signs, alpha):
    """A latent kernel with these signs whose scale is exactly `alpha`.

    A per-layer scale is a constant of the layer, so +-|alpha| is exact (a
    zero scale keeps the signs as +-1). A per-channel mean |W| of equal float32
    values is summed with rounding error, so it can miss `alpha` by many ulps:
    the common magnitude is found by bisection on its float32 bit pattern (the
    mean is monotone in it), then the last weight of each channel alone, until
    the mean is `alpha` exactly.

    Args:
        layer: a built one-bit layer (`BinaryConv2D` / `BinaryDense`) with a
            kernel quantizer; its `kernel.shape` and quantizer's scale are used.
        signs: a float32 array of +-1, the kernel's signs (any shape holding
            the kernel's elements, row-major).
        alpha: the scale: a scalar, or one value per output channel for a
            per-channel (`"mean_abs"`) quantizer.

    Returns:
        A float32 NumPy array, the latent kernel whose quantized forward
        kernel is `alpha * signs` (of the kernel's shape for a per-channel
        scale, of `signs`' shape otherwise).
    """
    alpha = np.asarray(alpha, np.float32)
    if not layer.kernel_quantizer.per_channel:
        return signs * (np.abs(alpha) if alpha != 0 else np.float32(1.0))
    shape = tuple(layer.kernel.shape)
    signs = signs.reshape(-1, shape[-1])

    def scale_of(magnitude):
        got = layer.kernel_quantizer.alpha((signs * magnitude).reshape(shape))
        return np.asarray(keras.ops.convert_to_numpy(got), np.float32)

    def bisect(make, center, span):
        """Smallest float (as bits, per channel) whose mean is >= alpha."""
        bits = center.view(np.int32).astype(np.int64)
        lo, hi = np.maximum(bits - span, 1), bits + span
        while (hi > lo).any():
            mid = (lo + hi) // 2
            high = scale_of(make(mid.astype(np.int32).view(np.float32))) >= alpha
            hi, lo = np.where(high, mid, hi), np.where(high, lo, mid + 1)
        return lo.astype(np.int32).view(np.float32)

    # A first guess for a scale that is proportional to the magnitudes (mean |W|:
    # alpha itself; a user's quantizer may scale it), then bisection around it.
    guess = alpha * alpha / np.maximum(scale_of(np.broadcast_to(alpha, signs.shape)),
                                       np.finfo(np.float32).tiny)
    guess = np.where(np.isfinite(guess) & (guess > 0), guess, alpha).astype(np.float32)
    common = bisect(lambda v: np.broadcast_to(v, signs.shape), guess, 1 << 16)
    base = np.broadcast_to(common, signs.shape).astype(np.float32)

    def with_last(v):
        magnitude = base.copy()
        magnitude[-1] = v
        return magnitude

    last = bisect(with_last, common, 1 << 22)
    return (signs * with_last(last)).reshape(shape)
