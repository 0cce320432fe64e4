"""tf.data input pipelines over in-memory uint8 arrays, with on-the-fly augmentation.

Each epoch shuffles indices, gathers whole batches at once (one gather per batch instead of one op per
image), augments the batch (random per image) in parallel with training, and prefetches, so the
training step rather than input handling keeps the CPU busy. A training dataset runs one shuffled
pass per epoch without end, and knows which epoch each batch belongs to (alternating flips need it):
train it with `steps_per_epoch(len(x), batch_size)` steps per epoch. Training batches are all full (the
last partial one of each shuffle is dropped, as PyTorch's `drop_last`): a small last batch would take a
full-size step on a noisy gradient and move the batch-norm statistics by its own. On the 40,000-image
CIFAR-10 split, dropping it together with airbench's lookahead timing added 1.25 points of test accuracy
after 10 epochs of the `airbench` space (benchmarks/RESULTS.md).

Parallelism and prefetching are fixed, not autotuned: tf.data's autotuner runs an optimisation thread
beside training, and destroying a training iterator at the end of `fit` waited for that thread, for
1-60 s per trial on a 2-core CPU (see benchmarks/RESULTS.md, "Overhead of the search").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from keras import layers

from .augment import Augmentation, get_augmentation

# a map call builds a whole batch: with two in flight and two batches ready, 2 CPU cores make ~50k
# training images/s with 2-pixel crops and ~26k with Keras' interpolated shifts (as with autotuning),
# ~80-150x what training on them consumes
PARALLEL_BATCHES = 2
PREFETCH_BATCHES = 2


def _fixed(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` with its parallelism and buffers as set, and no autotuning thread."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(PREFETCH_BATCHES).with_options(options)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Training steps per epoch: full batches only; a set smaller than one batch is one batch."""
    return max(1, n // batch_size)


def images_per_epoch(n: int, batch_size: int) -> int:
    """Images a training epoch of `n` images actually trains on (the dropped partial batch excluded)."""
    return min(n, steps_per_epoch(n, batch_size) * batch_size)


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    batch_size: int,
    *,
    training: bool,
    augment: str = "none",
    seed: int = 0,
    first_epoch: int = 0,
) -> tf.data.Dataset:
    """Batches of (float32 images in 0..255, one-hot float32 labels).

    Evaluation: every image once, in order. Training: epoch after epoch without end (from epoch
    `first_epoch`, for a run resumed there), each a new shuffle of all images in `steps_per_epoch(len(x), batch_size)` full batches (the shuffle's last
    partial batch is dropped unless it is the only one), augmented as `augment` says.
    """
    aug = get_augmentation(augment) if training else Augmentation()
    n = len(x)
    images = tf.constant(x)
    labels = tf.constant(y.astype(np.int32))
    random_layers: list[layers.Layer] = []
    if aug.flip == "random":
        random_layers.append(layers.RandomFlip("horizontal", seed=seed))
    if aug.shift > 0:
        random_layers.append(layers.RandomTranslation(aug.shift, aug.shift, fill_mode="reflect", seed=seed))
    if aug.degrees > 0:
        random_layers.append(layers.RandomRotation(aug.degrees / 360.0, fill_mode="reflect", seed=seed))
    if aug.flip == "alternate":  # image i is mirrored in epoch e when its first-epoch coin (fixed) XOR e is odd
        first_flip = tf.constant(np.random.default_rng(seed).random(n) < 0.5)

    def load(idx: Any, epoch: Any) -> tuple[Any, Any]:
        batch = tf.cast(tf.gather(images, idx), tf.float32)
        if aug.flip == "alternate":
            mirror = tf.math.logical_xor(tf.gather(first_flip, idx), tf.equal(epoch % 2, 1))
            batch = tf.where(mirror[:, None, None, None], tf.reverse(batch, axis=[2]), batch)
        if aug.crop > 0:
            batch = random_crop(batch, aug.crop)
        for layer in random_layers:
            batch = layer(batch, training=True)
        return batch, tf.one_hot(tf.gather(labels, idx), num_classes)

    if not training:
        ds = tf.data.Dataset.range(n).batch(batch_size).map(
            lambda idx: load(idx, tf.constant(0, tf.int64)), num_parallel_calls=PARALLEL_BATCHES
        )
        return _fixed(ds)

    def epoch_batches(epoch: Any) -> tf.data.Dataset:
        # a new order each epoch, the same for the same seed and epoch
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=n >= batch_size)
        return batches.map(lambda idx: (idx, epoch))

    ds = tf.data.Dataset.counter(start=first_epoch).flat_map(epoch_batches)
    # in order: epochs arrive one after another, as the epoch-aware augmentation and the step counts of
    # schedules and lookahead assume (the input pipeline runs ~100x faster than training, so order is free)
    ds = ds.map(load, num_parallel_calls=PARALLEL_BATCHES, deterministic=True)
    return _fixed(ds)


def random_crop(batch: Any, pad: int) -> Any:
    """Move each image by a random whole number of pixels in [-pad, pad] on both axes (reflect padding)."""
    height, width = batch.shape[1], batch.shape[2]
    padded = tf.pad(batch, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    offsets = tf.random.uniform([tf.shape(batch)[0], 2], 0, 2 * pad + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None]
    cols = offsets[:, 1:] + tf.range(width)[None]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)
