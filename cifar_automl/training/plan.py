"""Which images form each training batch, and every random choice of their augmentation (mirror or
not, the crop's offset): one plan drawn with NumPy from the seed and the epoch, which both input feeds
(`pipeline.ArrayBatches`, `tfdata.tf_dataset`) carry out, so that they give the same batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .augment import Augmentation


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Training steps per epoch: full batches only; a set smaller than one batch is one batch."""
    return max(1, n // batch_size)


def images_per_epoch(n: int, batch_size: int) -> int:
    """Images a training epoch of `n` images actually trains on (the dropped partial batch excluded)."""
    return min(n, steps_per_epoch(n, batch_size) * batch_size)


@dataclass(frozen=True)
class Batch:
    """What one training batch is: the images (indices), which of them are mirrored, and each one's
    crop offset in pixels of the padded image (None without crops)."""

    index: np.ndarray
    mirror: np.ndarray
    offsets: np.ndarray | None


class BatchPlan:
    """Every training batch as a function of its number: batch `i` is batch `i % steps` of epoch
    `i // steps`. Each epoch is a new shuffle of all images, the same for the same seed and epoch.

    Flips: `random` mirrors each image with probability 1/2 in every epoch; `alternate` mirrors it in
    the first epoch by a coin fixed per image and the other way in every epoch after (airbench)."""

    def __init__(self, n: int, batch_size: int, aug: Augmentation, seed: int) -> None:
        self.n, self.batch_size, self.aug, self.seed = n, batch_size, aug, seed
        self.steps = steps_per_epoch(n, batch_size)
        self.first_flip = np.random.default_rng([seed, 1]).random(n) < 0.5
        self._epoch: tuple[int, np.ndarray, np.ndarray, np.ndarray | None] | None = None

    def _draws(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, 0, epoch])
            order = rng.permutation(self.n)
            if self.aug.flip == "random":
                mirror = rng.random(self.n) < 0.5
            elif self.aug.flip == "alternate":
                mirror = self.first_flip ^ bool(epoch % 2)
            else:
                mirror = np.zeros(self.n, bool)
            offsets = rng.integers(0, 2 * self.aug.crop + 1, (self.n, 2)) if self.aug.crop else None
            self._epoch = (epoch, order, mirror, offsets)
        return self._epoch[1:]

    def epoch_of(self, i: int) -> int:
        return i // self.steps

    def __call__(self, i: int) -> Batch:
        order, mirror, offsets = self._draws(i // self.steps)
        start = (i % self.steps) * self.batch_size
        index = order[start:start + self.batch_size]
        return Batch(index, mirror[index], None if offsets is None else offsets[index])
