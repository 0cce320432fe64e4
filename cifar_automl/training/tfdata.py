"""The tf.data feed: `plan.BatchPlan` carried out in a TensorFlow graph (TensorFlow backend only).

A generator hands over each batch's plan (image indices, mirrors, crop offsets: a few hundred numbers);
a parallel map gathers the whole batch at once (one gather per batch instead of one op per image),
mirrors, crops and moves it, and prefetches, so the training step rather than input handling keeps
the CPU busy. It gives the same batches as the `arrays` feed.

Parallelism and prefetching are fixed, not autotuned: tf.data's autotuner runs an optimisation thread
beside training, and destroying a training iterator at the end of `fit` waited for that thread, for
1-60 s per trial on a 2-core CPU (see benchmarks/RESULTS.md, "Overhead of the search").
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator

import numpy as np
import tensorflow as tf
from keras import layers

from .plan import BatchPlan

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


def tf_dataset(x: np.ndarray, y: np.ndarray, num_classes: int, batch_size: int, *, plan: BatchPlan | None,
               first_epoch: int, moves: list[layers.Layer]) -> tf.data.Dataset:
    """Evaluation batches in order (`plan` None), or training batches without end as `plan` says."""
    images = tf.constant(x)
    labels = tf.constant(y.astype(np.int32))
    pad = plan.aug.crop if plan is not None else 0

    def load(index: Any, mirror: Any, offsets: Any) -> tuple[Any, Any]:
        batch = tf.cast(tf.gather(images, index), tf.float32)
        batch = tf.where(mirror[:, None, None, None], tf.reverse(batch, axis=[2]), batch)
        if pad:
            batch = crop(batch, offsets, pad)
        for layer in moves:
            batch = layer(batch, training=True)
        return batch, tf.one_hot(tf.gather(labels, index), num_classes)

    if plan is None:
        ds = tf.data.Dataset.range(len(x)).batch(batch_size).map(
            lambda index: (tf.cast(tf.gather(images, index), tf.float32), tf.one_hot(tf.gather(labels, index), num_classes)),
            num_parallel_calls=PARALLEL_BATCHES,
        )
        return _fixed(ds)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for i in itertools.count(first_epoch * plan.steps):
            b = plan(i)
            offsets = b.offsets if b.offsets is not None else np.zeros((len(b.index), 2), np.int64)
            yield b.index, b.mirror, offsets

    ds = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.bool), tf.TensorSpec([None, 2], tf.int64)))
    # in order: epochs arrive one after another, as the step counts of schedules and lookahead assume
    # (the input pipeline runs ~100x faster than training, so order is free)
    ds = ds.map(load, num_parallel_calls=PARALLEL_BATCHES, deterministic=True)
    return _fixed(ds)


def crop(batch: Any, offsets: Any, pad: int) -> Any:
    """Each image moved by whole pixels: reflect-padded by `pad`, then cut at its (row, column) offset."""
    height, width = batch.shape[1], batch.shape[2]
    padded = tf.pad(batch, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    offsets = tf.cast(offsets, tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None]
    cols = offsets[:, 1:] + tf.range(width)[None]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)
