"""tf.data input pipelines: shuffled, batched, augmented on the batch."""

from keras_onebit.errors import ConfigError
from keras_onebit.lazy import tensorflow as tf
from keras_onebit.training.augment import augment


def train_dataset(x, y, batch_size, seed=0, augmentation="flip_crop", start_step=0):
    """An endless dataset of augmented (float32 images, labels) batches.

    `augmentation`: "none", "flip_crop" or "flip_crop_cutout". Batch i uses
    the seed (seed, i), so a run is reproducible and a resumed run passes
    `start_step` to continue the sequence of augmentation seeds.

    Args:
        x: the training images, uint8 or float (N, H, W, C), raw pixels.
        y: the labels (N,).
        batch_size: images per batch; the last partial batch of each pass is
            dropped.
        seed: the shuffle and augmentation seed.
        augmentation: "none", "flip_crop" (default) or "flip_crop_cutout".
        start_step: the index of the first batch (a resumed run's step).

    Returns:
        A `tf.data.Dataset` of (float32 images, labels) batches, repeated
        without end and reshuffled each pass.

    Raises:
        ConfigError: an unknown augmentation.
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
    """The evaluation batches, in order, not augmented.

    Args:
        x: the images (N, H, W, C), raw pixels.
        y: the labels (N,).
        batch_size: images per batch (default 500; the last may be smaller).

    Returns:
        A `tf.data.Dataset` of (float32 images, labels) batches, one pass.
    """
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    return ds.map(lambda a, b: (tf.cast(a, tf.float32), b)).prefetch(tf.data.AUTOTUNE)
