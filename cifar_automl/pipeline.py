"""tf.data input pipelines over in-memory uint8 arrays, with on-the-fly augmentation.

Each epoch shuffles indices, gathers whole batches at once (one gather per batch instead of one op per
image), applies Keras preprocessing layers to the batch (random per image) in parallel with training,
and prefetches, so the training step rather than input handling keeps the CPU busy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from keras import layers

# name -> (horizontal flip, max shift as a fraction of the size, max rotation in degrees)
AUGMENTATIONS: dict[str, tuple[bool, float, float]] = {
    "none": (False, 0.0, 0.0),
    "flip": (True, 0.0, 0.0),
    "flip_shift": (True, 0.125, 0.0),  # 4 pixels on 32x32, as in the classic CIFAR recipe
    "flip_shift2": (True, 0.0625, 0.0),  # 2 pixels on 32x32, as in the fast (airbench) CIFAR recipes
    "flip_shift_rotate": (True, 0.125, 15.0),
    "classic": (True, 0.1, 15.0),  # the common Keras CIFAR-10 recipe: flips, 10% shifts, 15 degrees
}


def augmentation_layers(name: str, seed: int | None = None) -> list[layers.Layer]:
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation '{name}' (known: {', '.join(AUGMENTATIONS)})")
    flip, shift, degrees = AUGMENTATIONS[name]
    out: list[layers.Layer] = []
    if flip:
        out.append(layers.RandomFlip("horizontal", seed=seed))
    if shift > 0:
        out.append(layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seed))
    if degrees > 0:
        out.append(layers.RandomRotation(degrees / 360.0, fill_mode="reflect", seed=seed))
    return out


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    batch_size: int,
    *,
    training: bool,
    augment: str = "none",
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of (float32 images in 0..255, one-hot float32 labels)."""
    n = len(x)
    images = tf.constant(x)
    labels = tf.constant(y.astype(np.int32))
    indices = tf.data.Dataset.range(n)
    if training:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = indices.batch(batch_size, drop_remainder=False)
    aug = augmentation_layers(augment, seed=seed) if training else []

    def load(idx: Any) -> tuple[Any, Any]:
        batch = tf.cast(tf.gather(images, idx), tf.float32)
        for layer in aug:
            batch = layer(batch, training=True)
        return batch, tf.one_hot(tf.gather(labels, idx), num_classes)

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    return ds.prefetch(tf.data.AUTOTUNE)
