"""Constraints on latent weights."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_onebit")
class WeightClip(keras.constraints.Constraint):
    """Clips latent weights to [-limit, limit] after each update (larq's
    `weight_clip`). Under the clipped and magnitude-aware gradients a latent
    weight past +-1 gets zero gradient, so without the clip it could never
    change sign again.

    Args:
        limit: the bound (1.0).
    """

    def __init__(self, limit=1.0):
        self.limit = float(limit)

    def __call__(self, w):
        return ops.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}
