"""Splitting a data set: a held-out test split (official, or carved with a fixed seed), a stratified
subset of the rest for the search, and a stratified validation share of it."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .dataset import Dataset, Splits

_TEST_SPLIT_SEED = 0  # fixed: the carved test split must not depend on the search settings


def parse_subset(text: str) -> float | int:
    """Parse a --subset value: "0.2" is a fraction in (0, 1], "5000" an image count."""
    value = text.strip()
    try:
        if value.isdigit():
            count = int(value)
            if count >= 1:
                return count
        else:
            fraction = float(value)
            if 0.0 < fraction <= 1.0:
                return fraction
    except ValueError:
        pass
    raise DataError(f"bad subset {text!r}: pass a fraction in (0, 1] such as 0.2, or an image count such as 5000")


def channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images, in [0, 1] units (for normalisation)."""
    axes = tuple(range(x.ndim - 1))
    mean = np.zeros(x.shape[-1])
    sq = np.zeros(x.shape[-1])
    for start in range(0, len(x), 4096):  # in chunks: no float copy of the whole data set
        chunk = x[start : start + 4096].astype(np.float64) / 255.0
        mean += chunk.sum(axis=axes)
        sq += (chunk**2).sum(axis=axes)
    count = np.prod([x.shape[a] for a in axes])
    mean /= count
    std = np.sqrt(np.maximum(sq / count - mean**2, 0.0))
    return mean.tolist(), np.maximum(std, 1e-3).tolist()


def make_splits(
    ds: Dataset,
    val_fraction: float = 0.1,
    subset: float | int | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    max_images: int | None = None,
) -> Splits:
    """Split a Dataset into train/val/test, stratified by class and deterministic.

    1. test: the official test split if there is one, else a stratified `test_fraction` carved with a
       fixed seed (independent of seed, subset and val_fraction);
    2. subset of the rest: None/1.0 = all (at most `max_images`, when given), a float in (0, 1] = fraction,
       an int >= #classes = number
       of train+val images;
    3. validation: a stratified `val_fraction` of what is left. Steps 2 and 3 use `seed`.
    """
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    n_classes = len(ds.class_names)
    y = ds.y_train
    if ds.x_test is not None and ds.y_test is not None:
        pool = np.arange(len(y))
        x_test, y_test = ds.x_test.copy(), ds.y_test.astype(np.int64)
        test_source = "official"
    else:
        rng = np.random.default_rng(_TEST_SPLIT_SEED)
        test_idx, pool = _stratified_take(y, np.arange(len(y)), _fraction_counts(y, test_fraction, n_classes), rng)
        x_test, y_test = ds.x_train[test_idx], y[test_idx]
        test_source = "carved"

    rng = np.random.default_rng(seed)
    if subset is None and max_images is not None and max_images < len(pool):
        subset = max_images
    pool = _subset(y, pool, subset, n_classes, rng)
    val_idx, train_idx = _stratified_take(y, pool, _fraction_counts(y[pool], val_fraction, n_classes), rng)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DataError(
            f"too few images to split ({len(pool)} left for train+val): pass a larger subset or more data"
        )

    def counts(labels: np.ndarray) -> list[int]:
        return np.bincount(labels, minlength=n_classes).tolist()

    info = {
        "dataset": ds.name,
        "source": ds.source,
        "image_shape": [int(d) for d in ds.x_train.shape[1:]],
        "num_classes": n_classes,
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "n_test": int(len(y_test)),
        "class_counts": {"train": counts(y[train_idx]), "val": counts(y[val_idx]), "test": counts(y_test)},
        "test_source": test_source,
        "val_fraction": float(val_fraction),
        "subset": None if subset is None else _plain(subset),
        "seed": int(seed),
        "test_fraction": float(test_fraction) if test_source == "carved" else None,
        "skipped_files": int(ds.skipped_files),
    }
    return Splits(
        x_train=ds.x_train[train_idx],
        y_train=y[train_idx],
        x_val=ds.x_train[val_idx],
        y_val=y[val_idx],
        x_test=x_test,
        y_test=y_test,
        class_names=ds.class_names,
        info=info,
    )


def _plain(value: float | int) -> float | int:
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def _check_fraction(label: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 < value < 1.0:
        raise DataError(f"bad {label} {value!r}: pass a fraction strictly between 0 and 1, such as 0.1")


def _fraction_counts(labels: np.ndarray, fraction: float, n_classes: int) -> np.ndarray:
    """Per-class counts to take: round(n * fraction), but at least 1 taken and 1 left when n >= 2."""
    sizes = np.bincount(labels, minlength=n_classes)
    take = np.rint(sizes * fraction).astype(np.int64)
    return np.where(sizes >= 2, np.clip(take, 1, sizes - 1), 0)


def _subset(
    y: np.ndarray, pool: np.ndarray, subset: float | int | None, n_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """The stratified subset of `pool` selected by `subset` (see make_splits)."""
    if subset is None:
        return pool
    sizes = np.bincount(y[pool], minlength=n_classes)
    present = int((sizes > 0).sum())
    hint = "pass a fraction in (0, 1] such as 0.2, or an image count such as 5000"
    if isinstance(subset, (int, np.integer)) and not isinstance(subset, bool):
        if not present <= subset <= len(pool):
            raise DataError(
                f"bad subset {subset}: pass an image count between {present} (classes) and {len(pool)} (images)"
            )
        counts = _count_per_class(sizes, int(subset))
    elif isinstance(subset, (float, np.floating)) and 0.0 < subset <= 1.0:
        if subset == 1.0:
            return pool
        counts = np.where(sizes > 0, np.clip(np.rint(sizes * subset), 1, sizes), 0).astype(np.int64)
    else:
        raise DataError(f"bad subset {subset!r}: {hint}")
    taken, _ = _stratified_take(y, pool, counts, rng)
    return taken


def _count_per_class(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split `total` (<= sizes.sum()) over classes in proportion to `sizes`, >= 1 per present class."""
    exact = sizes * (total / sizes.sum())
    counts = np.minimum(np.where(sizes > 0, np.maximum(np.floor(exact), 1), 0), sizes).astype(np.int64)
    by_remainder = [int(c) for c in np.argsort(np.floor(exact) - exact, kind="stable")]
    while counts.sum() < total:  # hand out the rest, largest fractional part first
        for c in by_remainder:
            if counts.sum() < total and counts[c] < sizes[c]:
                counts[c] += 1
    while counts.sum() > total:  # the floor of 1 per class overshot: take back from the largest
        counts[int(np.argmax(counts))] -= 1
    return counts


def _stratified_take(
    y: np.ndarray, pool: np.ndarray, counts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Randomly take counts[c] indices of each class c from pool; returns (taken, rest), each shuffled."""
    taken, rest = [], []
    labels = y[pool]
    for c, k in enumerate(counts):
        members = rng.permutation(pool[labels == c])
        taken.append(members[:k])
        rest.append(members[k:])
    return _shuffled(taken, rng), _shuffled(rest, rng)


def _shuffled(parts: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    joined = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return rng.permutation(joined)
