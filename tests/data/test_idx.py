"""IDX files (MNIST, Fashion-MNIST)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from cifar_automl.data import (
    load_dataset,
)
from cifar_automl.errors import DataError

from .files import idx_arrays, write_idx_dir

REPO = Path(__file__).resolve().parents[2]
REAL_ARCHIVE = REPO.parent / "shared/datasets/cifar10-train-jpeg.tar.gz"


def test_idx_gzip_files(tmp_path: Path) -> None:
    arrays = idx_arrays()
    write_idx_dir(tmp_path, arrays)
    ds = load_dataset("fashion_mnist", tmp_path, use_cache=False)
    assert ds.x_train.shape == (6, 28, 28, 1) and ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays[0])
    np.testing.assert_array_equal(ds.y_train, arrays[1])
    assert ds.x_test is not None and ds.y_test is not None and ds.y_test.dtype == np.int64
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays[2])
    np.testing.assert_array_equal(ds.y_test, arrays[3])
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_idx_uncompressed_mnist_and_resize(tmp_path: Path) -> None:
    write_idx_dir(tmp_path, idx_arrays(), compress=False)
    ds = load_dataset("mnist", tmp_path, image_size=32, use_cache=False)
    assert ds.class_names == tuple("0123456789")
    assert ds.x_train.shape == (6, 32, 32, 1) and ds.x_test is not None and ds.x_test.shape == (4, 32, 32, 1)


def test_idx_truncated_or_missing(tmp_path: Path) -> None:
    write_idx_dir(tmp_path, idx_arrays())
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is truncated"):
        load_dataset("mnist", tmp_path, use_cache=False)
    path.write_bytes(path.read_bytes()[:30])  # a cut gzip stream
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", tmp_path, use_cache=False)
    path.unlink()
    with pytest.raises(DataError, match="no mnist IDX files"):
        load_dataset("mnist", tmp_path, use_cache=False)
