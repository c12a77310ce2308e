"""tf.data input pipelines: shuffled, batched, augmented on the batch."""

import tensorflow as tf

from keras_onebit.errors import ConfigError
from keras_onebit.training.augment import augment


def train_dataset(x, y, batch_size, seed=0, augmentation="flip_crop", start_step=0):
    """An endless dataset of augmented (float32 images, labels) batches.

    `augmentation`: "none", "flip_crop" or "flip_crop_cutout". Batch i uses
    the seed (seed, i), so a run is reproducible and a resumed run passes
    `start_step` to continue the sequence of augmentation seeds.
    """
    if augmentation not in ("none", "flip_crop", "flip_crop_cutout"):
        raise ConfigError(f"Unknown augmentation {augmentation!r}.")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=True).enumerate(start=start_step)

    def prepare(step, batch):
        images, labels = batch
        images = tf.cast(images, tf.float32)
        if augmentation != "none":
            images = augment(images, tf.stack([tf.cast(seed, tf.int64), step]),
                             use_cutout=augmentation == "flip_crop_cutout")
        return images, labels

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def eval_dataset(x, y, batch_size=500):
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    return ds.map(lambda a, b: (tf.cast(a, tf.float32), b)).prefetch(tf.data.AUTOTUNE)
