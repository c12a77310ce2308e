"""CIFAR augmentation of McDonnell (ICLR 2018), vectorised over a batch.

- horizontal flip with p = 0.5;
- pad 4 pixels and crop a random 32x32 window, the padding filled with
  uniform random integers 0..255 (not zeros);
- optional cutout: an 18x18 patch centred anywhere (so the border may cut
  it), filled with uniform random integers 0..255.

Every op is stateless and takes a seed of shape (2,), so the same seed
gives the same batch. Input and output: float32 raw pixels (B, H, W, C).
"""

from keras_onebit.lazy import tensorflow as tf


def _split(seed, count):
    return tf.unstack(tf.random.experimental.stateless_split(seed, count))


def random_pixels(shape, seed):
    """Uniform random integers 0..255 as float32."""
    return tf.cast(tf.random.stateless_uniform(shape, seed, 0, 256, dtype=tf.int32), tf.float32)


def flip(images, seed):
    """Flips each image of the batch left-right with probability 0.5.

    Args:
        images: a float32 batch (B, H, W, C).
        seed: a stateless seed of shape (2,) (int32 / int64).

    Returns:
        A tensor of the shape and dtype of `images`.
    """
    batch = tf.shape(images)[0]
    coin = tf.random.stateless_uniform([batch, 1, 1, 1], seed) < 0.5
    return tf.where(coin, tf.reverse(images, axis=[2]), images)


def pad_crop(images, seed, pad=4):
    """Random crop of the image padded by `pad` random-valued pixels.

    Each image is padded by `pad` pixels of uniform random integers 0..255
    (not zeros) on every side, and an H x W window at a random offset is kept.

    Args:
        images: a float32 batch (B, H, W, C) of raw pixels.
        seed: a stateless seed of shape (2,).
        pad: the padding in pixels (default 4).

    Returns:
        A float32 tensor of the shape of `images`.
    """
    noise_seed, offset_seed = _split(seed, 2)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    inside = tf.pad(tf.ones_like(images[:1, :, :, :1]), [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    noise = random_pixels(tf.shape(padded), noise_seed)
    padded = inside * padded + (1 - inside) * noise
    offsets = tf.random.stateless_uniform([batch, 2], offset_seed, 0, 2 * pad + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None]
    cols = offsets[:, 1:] + tf.range(width)[None]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


def cutout(images, seed, size=18):
    """Replaces a size x size patch, centred anywhere, by random pixels.

    The centre is uniform over the image, so the border may cut the patch;
    the patch holds uniform random integers 0..255.

    Args:
        images: a float32 batch (B, H, W, C) of raw pixels.
        seed: a stateless seed of shape (2,).
        size: the side of the patch in pixels (default 18).

    Returns:
        A float32 tensor of the shape of `images`.
    """
    centre_seed, noise_seed = _split(seed, 2)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    dims = tf.cast(tf.stack([height, width]), tf.float32)
    centres = tf.cast(tf.random.stateless_uniform([batch, 2], centre_seed) * dims, tf.int32)
    start = centres - size // 2
    rows = tf.range(height)[None] - start[:, :1]
    cols = tf.range(width)[None] - start[:, 1:]
    in_rows = (rows >= 0) & (rows < size)
    in_cols = (cols >= 0) & (cols < size)
    patch = in_rows[:, :, None, None] & in_cols[:, None, :, None]
    return tf.where(patch, random_pixels(shape, noise_seed), images)


def augment(images, seed, use_cutout=False):
    """flip -> pad-4 random-fill crop -> (cutout), on a float32 batch.

    Args:
        images: a float32 batch (B, H, W, C) of raw pixels.
        seed: a stateless seed of shape (2,); split into one seed per step,
            so the same seed gives the same batch.
        use_cutout: also apply `cutout` (default False).

    Returns:
        The augmented float32 batch, of the shape of `images`.
    """
    flip_seed, crop_seed, cut_seed = _split(tf.convert_to_tensor(seed, tf.int64), 3)
    images = pad_crop(flip(images, flip_seed), crop_seed)
    if use_cutout:
        images = cutout(images, cut_seed)
    return images
