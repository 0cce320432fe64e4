"""Real data (slow; skipped when absent)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from cifar_automl.data import (
    cifar,
    idx,
    load_dataset,
    make_splits,
)

REPO = Path(__file__).resolve().parents[2]
REAL_ARCHIVE = REPO.parent / "shared/datasets/cifar10-train-jpeg.tar.gz"


@pytest.mark.slow
def test_real_cifar10_jpeg_archive(tmp_path: Path) -> None:
    if not REAL_ARCHIVE.is_file():
        pytest.skip(f"{REAL_ARCHIVE.name} not present")
    start = time.perf_counter()
    ds = load_dataset("cifar10", REAL_ARCHIVE, cache_dir=tmp_path)
    uncached = time.perf_counter() - start
    start = time.perf_counter()
    again = load_dataset("cifar10", REAL_ARCHIVE, cache_dir=tmp_path)
    cached = time.perf_counter() - start
    print(f"\n50,000 JPEGs: first load {uncached:.1f} s, cached load {cached:.2f} s")
    assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test is None and ds.skipped_files == 0
    assert ds.class_names == cifar.CIFAR10_CLASSES
    assert np.bincount(ds.y_train).tolist() == [5000] * 10
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    assert cached < uncached
    s = make_splits(ds)
    assert (s.info["n_test"], s.info["n_val"], s.info["n_train"]) == (10000, 4000, 36000)


@pytest.mark.slow
def test_real_debian_fashion_mnist(tmp_path: Path) -> None:
    if idx.idx_paths(idx.DEBIAN_FASHION_MNIST) is None:
        pytest.skip("dataset-fashion-mnist is not installed")
    ds = load_dataset("fashion_mnist", cache_dir=tmp_path)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test is not None and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
