"""What every data source produces: a whole data set in memory, and the splits made from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole data set in memory: uint8 images (N, H, W, C) and int64 labels (N,).

    `x_test`/`y_test` hold the official test split, or None when the source has none (then
    `make_splits` carves one with a fixed seed)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: tuple[str, ...]
    source: str
    skipped_files: int = 0


@dataclass(frozen=True, eq=False)
class Splits:
    """Train/validation/test arrays plus a JSON-serialisable description of how they were made."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    info: dict

    def final_training(
        self, early_stopping: bool
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """(x, y, validation) for a final training run: with early stopping, the training images and
        the validation slice it watches; without, train + validation together and no validation (a run
        that decides nothing on the validation slice learns from it)."""
        if early_stopping:
            return self.x_train, self.y_train, (self.x_val, self.y_val)
        return np.concatenate([self.x_train, self.x_val]), np.concatenate([self.y_train, self.y_val]), None


def as_images(x: np.ndarray) -> np.ndarray:
    """uint8, contiguous, always 4-D (grayscale gets a channel axis)."""
    x = np.ascontiguousarray(x, dtype=np.uint8)
    return x[..., None] if x.ndim == 3 else x
