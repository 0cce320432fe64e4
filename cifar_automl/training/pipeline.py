"""Input pipelines over in-memory uint8 arrays, with on-the-fly augmentation, on any Keras backend.

Which images form each batch, and every random choice of the augmentation (mirror or not, the crop's
offset), come from one plan (`BatchPlan`) drawn with NumPy from the seed and the epoch. Two feeds
carry that plan out and give the same batches (tests/training/test_pipeline.py compares them):

- `arrays`: a `keras.utils.PyDataset` doing the work in NumPy, for every backend (JAX, PyTorch,
  TensorFlow);
- `tf.data` (`tfdata.py`): the same work in a tf.data graph that gathers and augments whole batches in
  parallel with training. It is the default on TensorFlow, where it measures faster
  (benchmarks/RESULTS.md, "Input feeds per backend").

Interpolated shifts and rotations (`flip_shift`, `classic`, ...) are Keras' own preprocessing layers,
applied to the batch after the plan's flips and crops; their draws are the layers' own.

A training feed runs one shuffled pass per epoch without end: train it with
`steps_per_epoch(len(x), batch_size)` steps per epoch. Training batches are all full (the last
partial one of each shuffle is dropped, as PyTorch's `drop_last`): a small last batch would take a
full-size step on a noisy gradient and move the batch-norm statistics by its own. On the 40,000-image
CIFAR-10 split, dropping it together with airbench's lookahead timing added 1.25 points of test accuracy
after 10 epochs of the `airbench` space (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import keras
import numpy as np
from keras import layers

from .augment import Augmentation, get_augmentation
from .plan import BatchPlan

FEEDS = ("tf.data", "arrays")


def default_feed() -> str:
    """tf.data on TensorFlow (faster there), NumPy batches on every other backend."""
    return "tf.data" if keras.backend.backend() == "tensorflow" else "arrays"


def interpolating_layers(aug: Augmentation, seed: int) -> list[layers.Layer]:
    """Keras' preprocessing layers for the interpolated moves of `aug` (applied after flips and crops)."""
    out: list[layers.Layer] = []
    if aug.shift > 0:
        out.append(layers.RandomTranslation(aug.shift, aug.shift, fill_mode="reflect", seed=seed))
    if aug.degrees > 0:
        out.append(layers.RandomRotation(aug.degrees / 360.0, fill_mode="reflect", seed=seed))
    return out


def crop(batch: np.ndarray, offsets: np.ndarray, pad: int) -> np.ndarray:
    """Each image moved by whole pixels: reflect-padded by `pad`, then cut at its (row, column) offset."""
    height, width = batch.shape[1:3]
    padded = np.pad(batch, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    rows = offsets[:, :1] + np.arange(height)[None]
    cols = offsets[:, 1:] + np.arange(width)[None]
    return padded[np.arange(len(batch))[:, None, None], rows[:, :, None], cols[:, None, :]]


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


class ArrayBatches(keras.utils.PyDataset):
    """Batches of (float32 images in 0..255, one-hot float32 labels) made in NumPy: the feed of every
    backend. Training: without end, batch `i` as `BatchPlan` says; evaluation: every image once, in order."""

    def __init__(self, x: np.ndarray, y: np.ndarray, num_classes: int, batch_size: int, *, training: bool,
                 aug: Augmentation, seed: int, first_epoch: int) -> None:
        super().__init__()
        self.x, self.y, self.num_classes, self.batch_size = x, y.astype(np.int64), num_classes, batch_size
        self.training, self.aug = training, aug
        self.plan = BatchPlan(len(x), batch_size, aug, seed) if training else None
        self.first = first_epoch * self.plan.steps if training else 0
        self.moves = interpolating_layers(aug, seed) if training else []

    @property
    def num_batches(self) -> int | None:
        return None if self.training else math.ceil(len(self.x) / self.batch_size)

    def __len__(self) -> int:  # Keras asks for it only of a finite dataset
        return self.num_batches or 0

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.training:
            part = slice(i * self.batch_size, (i + 1) * self.batch_size)
            return self.x[part].astype(np.float32), one_hot(self.y[part], self.num_classes)
        batch = self.plan(self.first + i)
        images = self.x[batch.index].astype(np.float32)
        images = np.where(batch.mirror[:, None, None, None], images[:, :, ::-1], images)
        if batch.offsets is not None:
            images = crop(images, batch.offsets, self.aug.crop)
        for layer in self.moves:
            images = keras.ops.convert_to_numpy(layer(images, training=True))
        return images, one_hot(self.y[batch.index], self.num_classes)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        i = 0
        while self.num_batches is None or i < self.num_batches:
            yield self[i]
            i += 1


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
    feed: str | None = None,
) -> Any:
    """Batches of (float32 images in 0..255, one-hot float32 labels), for `model.fit` and iteration.

    Evaluation: every image once, in order. Training: epoch after epoch without end (from epoch
    `first_epoch`, for a run resumed there), each a new shuffle of all images in
    `steps_per_epoch(len(x), batch_size)` full batches (the shuffle's last partial batch is dropped
    unless it is the only one), augmented as `augment` says. `feed` is `tf.data` or `arrays` (default:
    `default_feed()`); both give the same batches.
    """
    aug = get_augmentation(augment) if training else Augmentation()
    feed = feed or default_feed()
    if feed not in FEEDS:
        raise ValueError(f"unknown feed '{feed}' (known: {', '.join(FEEDS)})")
    if feed == "arrays":
        return ArrayBatches(x, y, num_classes, batch_size, training=training, aug=aug, seed=seed,
                            first_epoch=first_epoch)
    from .tfdata import tf_dataset  # TensorFlow only where its feed is asked for

    plan = BatchPlan(len(x), batch_size, aug, seed) if training else None
    return tf_dataset(x, y, num_classes, batch_size, plan=plan, first_epoch=first_epoch,
                      moves=interpolating_layers(aug, seed) if training else [])


def take(dataset: Any, batches: int) -> Iterator[tuple[Any, Any]]:
    """The first `batches` batches of a dataset made here, whichever its feed."""
    it = iter(dataset)
    for _ in range(batches):
        try:
            yield next(it)
        except StopIteration:
            return

