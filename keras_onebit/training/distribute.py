"""tf.distribute strategies for the training command.

`default` runs on one device; `mirrored` replicates over local devices
(every GPU, or the given `devices`); `multi_worker` spans hosts described
by the TF_CONFIG environment variable (each host runs the same command).
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name, devices=()):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) or None)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multi_worker needs TF_CONFIG (cluster and task).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}: expected one of {STRATEGIES}.")


def _task():
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    return config.get("task", {})


def task_id():
    return int(_task().get("index", 0))


def is_chief():
    """True unless TF_CONFIG names this process a worker other than worker 0."""
    task = _task()
    return not task or task.get("type") == "chief" or (
        task.get("type") == "worker" and int(task.get("index", 0)) == 0)
