"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017),
as McDonnell (ICLR 2018) uses it: updated every batch, from 0.1 down to
1e-5, cycles of 2, 4, 8, 16, ... epochs, so runs end at 2, 6, 14, 30, 62,
126 or 254 epochs.
"""

import math

import keras
import tensorflow as tf


def restart_epochs(first_cycle=2, t_mul=2, count=7):
    """Epochs at which cycles end: [2, 6, 14, 30, 62, 126, 254] by default."""
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

    def cycle(self, step):
        """(steps into the current cycle, its length in steps), float64."""
        step = tf.cast(step, tf.float64)
        first = float(self.first_cycle * self.steps_per_epoch)
        if self.t_mul == 1:
            k = tf.floor(step / first)
        else:
            k = tf.floor(tf.math.log1p(step * (self.t_mul - 1) / first) / math.log(self.t_mul))
        start = self._cycle_start(k, first)
        # Guard the float log at cycle boundaries.
        k = tf.where(step < start, k - 1, k)
        k = tf.where(step >= self._cycle_start(k + 1, first), k + 1, k)
        start = self._cycle_start(k, first)
        return step - start, first * tf.pow(tf.constant(self.t_mul, tf.float64), k)

    def _cycle_start(self, k, first):
        if self.t_mul == 1:
            return first * k
        return first * (tf.pow(tf.constant(self.t_mul, tf.float64), k) - 1) / (self.t_mul - 1)

    def __call__(self, step):
        t, length = self.cycle(step)
        cosine = 0.5 * (1 + tf.cos(math.pi * t / length))
        lr = self.min_lr + (self.max_lr - self.min_lr) * cosine
        return tf.cast(lr, tf.float32)

    def get_config(self):
        return {"steps_per_epoch": self.steps_per_epoch, "max_lr": self.max_lr,
                "min_lr": self.min_lr, "first_cycle": self.first_cycle, "t_mul": self.t_mul}


class ZeroMomentumAtRestart(keras.callbacks.Callback):
    """Zeroes the optimizer's momentum buffers when a warm restart begins,
    as the authors' MATLAB code does. Cycles span whole epochs, so a restart
    is the start of an epoch listed by `restart_epochs`."""

    def __init__(self, first_cycle=2, t_mul=2):
        super().__init__()
        self.restarts = set(restart_epochs(first_cycle, t_mul, count=16))

    def on_epoch_begin(self, epoch, logs=None):
        if epoch in self.restarts:
            for variable in getattr(self.model.optimizer, "momentums", []):
                variable.assign(tf.zeros_like(variable))
