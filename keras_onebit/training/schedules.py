"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017),
as McDonnell (ICLR 2018) uses it: updated every batch, from 0.1 down to
1e-5, cycles of 2, 4, 8, 16, ... epochs, so runs end at 2, 6, 14, 30, 62,
126 or 254 epochs.
"""

import math

import keras
from keras import ops


def restart_epochs(first_cycle=2, t_mul=2, count=7):
    """Epochs at which cycles end: [2, 6, 14, 30, 62, 126, 254] by default.

    Args:
        first_cycle: the length in epochs of the first cycle.
        t_mul: the factor by which each cycle is longer than the last.
        count: how many cycle ends to list.

    Returns:
        A list of `count` ints, the cumulative cycle lengths (the epoch, 0-based,
        at which the next cycle starts).
    """
    ends, length, total = [], first_cycle, 0
    for _ in range(count):
        total += length
        ends.append(total)
        length *= t_mul
    return ends


@keras.saving.register_keras_serializable(package="keras_onebit")
class WarmRestartCosine(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = min + (max - min) * (1 + cos(pi * t / T)) / 2, where T is the
    length in steps of the current cycle and t the steps into it.

    Written with `keras.ops` in float32, so it runs on every backend. It is
    Keras' `CosineDecayRestarts(max_lr, first_cycle * steps_per_epoch, t_mul,
    m_mul=1, alpha=min_lr / max_lr)` (equal to 3e-8, tested), computed as
    min + (max - min) * sin^2(pi/2 * (T - t) / T) instead: near a cycle's end
    1 + cos(.) cancels in float32, and Keras' value there is off by up to
    2e-5 of itself, while T - t is an exact integer and the sine keeps the
    relative error near 1e-7 (the paper's code computes in float64).

    Args:
        steps_per_epoch: batches per epoch.
        max_lr, min_lr: the bounds (0.1 and 1e-5 in the paper's code).
        first_cycle: epochs in the first cycle (2).
        t_mul: each cycle is `t_mul` times the previous one (2).
    """

    def __init__(self, steps_per_epoch, max_lr=0.1, min_lr=1e-5, first_cycle=2, t_mul=2):
        self.steps_per_epoch = int(steps_per_epoch)
        self.max_lr = float(max_lr)
        self.min_lr = float(min_lr)
        self.first_cycle = int(first_cycle)
        self.t_mul = int(t_mul)

    def _cycle_start(self, k, first):
        if self.t_mul == 1:
            return first * k
        return first * (ops.power(float(self.t_mul), k) - 1.0) / (self.t_mul - 1)

    def cycle(self, step):
        """(the current cycle's first step, its length in steps), float32; exact
        integers below 2**24 steps."""
        step = ops.cast(step, "float32")
        first = float(self.first_cycle * self.steps_per_epoch)
        if self.t_mul == 1:
            k = ops.floor(step / first)
        else:
            k = ops.floor(ops.log(1.0 + step * (self.t_mul - 1) / first) / math.log(self.t_mul))
        # The float log can miss a cycle boundary by one step: correct k exactly.
        k = ops.where(step < self._cycle_start(k, first), k - 1.0, k)
        k = ops.where(step >= self._cycle_start(k + 1.0, first), k + 1.0, k)
        return self._cycle_start(k, first), first * ops.power(float(self.t_mul), k)

    def __call__(self, step):
        start, length = self.cycle(step)
        remaining = start + length - ops.cast(step, "float32")
        rise = ops.sin((math.pi / 2) * remaining / length)
        return self.min_lr + (self.max_lr - self.min_lr) * rise * rise

    def get_config(self):
        return {"steps_per_epoch": self.steps_per_epoch, "max_lr": self.max_lr,
                "min_lr": self.min_lr, "first_cycle": self.first_cycle, "t_mul": self.t_mul}


class ZeroMomentumAtRestart(keras.callbacks.Callback):
    """Zeroes the optimizer's momentum buffers when a warm restart begins,
    as the authors' MATLAB code does. Cycles span whole epochs, so a restart
    is the start of an epoch listed by `restart_epochs`.

    Args:
        first_cycle: the length in epochs of the first cycle (default 2).
        t_mul: the factor by which each cycle is longer than the last
            (default 2); the first 16 restarts are watched.
    """

    def __init__(self, first_cycle=2, t_mul=2):
        super().__init__()
        self.restarts = set(restart_epochs(first_cycle, t_mul, count=16))

    def on_epoch_begin(self, epoch, logs=None):
        if epoch in self.restarts:
            for variable in getattr(self.model.optimizer, "momentums", []):
                variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
