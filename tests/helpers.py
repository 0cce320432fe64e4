"""Tiny synthetic data shared by the tests: learnable (class = colour pattern), fast to train."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cifar_automl.data import Dataset, Splits, make_splits


def synthetic_dataset(n_per_class: int = 40, classes: int = 3, size: int = 12, channels: int = 3,
                      seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        base = np.zeros((size, size, channels), np.float32)
        base[..., c % channels] = 180.0  # class c is bright in one channel
        base[: size // 2] += 40.0 * (c // channels)  # and, past the channel count, in the top half
        noise = rng.normal(0, 30, (n_per_class, size, size, channels))
        xs.append(np.clip(base + noise + 30, 0, 255).astype(np.uint8))
        ys.append(np.full(n_per_class, c, np.int64))
    return Dataset(
        name="synthetic",
        x_train=np.concatenate(xs),
        y_train=np.concatenate(ys),
        x_test=None,
        y_test=None,
        class_names=tuple(f"class{c}" for c in range(classes)),
        source="synthetic",
    )


def synthetic_splits(**kwargs) -> Splits:
    return make_splits(synthetic_dataset(**kwargs), val_fraction=0.25, seed=0, test_fraction=0.2)


def write_image_tree(root: Path, n_per_class: int = 12, classes: int = 3, size: int = 12) -> Path:
    """ROOT/train/<class>/<i>.png from the synthetic data set."""
    from PIL import Image

    ds = synthetic_dataset(n_per_class=n_per_class, classes=classes, size=size)
    for i, (x, y) in enumerate(zip(ds.x_train, ds.y_train)):
        folder = root / "train" / ds.class_names[y]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x).save(folder / f"{i:04d}.png")
    return root
