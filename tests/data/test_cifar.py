"""CIFAR python archives."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from cifar_automl.data import (
    cifar,
    load_dataset,
    make_splits,
)
from cifar_automl.errors import DataError

from .files import cifar10_files, cifar_rows, write_class_tree, write_tar

REPO = Path(__file__).resolve().parents[2]
REAL_ARCHIVE = REPO.parent / "shared/datasets/cifar10-train-jpeg.tar.gz"


def test_cifar10_tarball_file_and_parent_dir(tmp_path: Path) -> None:
    files, images, labels, names = cifar10_files()
    tarball = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    for where in (tarball, tmp_path):
        ds = load_dataset("cifar10", where, use_cache=False)
        assert ds.class_names == names and ds.source == str(tarball.resolve())
        assert ds.x_train.shape == (20, 32, 32, 3) and ds.y_train.dtype == np.int64
        np.testing.assert_array_equal(ds.x_train, images[:20])
        np.testing.assert_array_equal(ds.y_train, labels[:20])
        assert ds.x_test is not None and ds.y_test is not None
        np.testing.assert_array_equal(ds.x_test, images[20:])
        np.testing.assert_array_equal(ds.y_test, labels[20:])
        assert make_splits(ds).info["test_source"] == "official"


def test_cifar10_extracted_batches_dir(tmp_path: Path) -> None:
    files, images, labels, names = cifar10_files()
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for fname, payload in files.items():
        (folder / fname).write_bytes(payload)
    for where in (folder, tmp_path):
        ds = load_dataset("cifar10", where, use_cache=False)
        assert ds.class_names == names
        np.testing.assert_array_equal(ds.x_train, images[:20])
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_dataset("cifar10", folder, use_cache=False)


def test_cifar100_tarball(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    fine = [5, 99, 0, 42, 7, 1, 2]
    train = {b"data": cifar_rows(images[:5]), b"fine_labels": fine[:5], b"coarse_labels": [0] * 5}
    test = {b"data": cifar_rows(images[5:]), b"fine_labels": fine[5:], b"coarse_labels": [0] * 2}
    meta = {b"fine_label_names": [n.encode() for n in cifar.CIFAR100_CLASSES], b"coarse_label_names": []}
    files = {k: pickle.dumps(v, protocol=2) for k, v in {"train": train, "test": test, "meta": meta}.items()}
    tarball = write_tar(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", files)
    ds = load_dataset("cifar100", tarball, use_cache=False)
    assert len(ds.class_names) == 100 and ds.class_names == cifar.CIFAR100_CLASSES
    np.testing.assert_array_equal(ds.x_train, images[:5])
    assert ds.y_train.tolist() == fine[:5] and ds.y_test is not None and ds.y_test.tolist() == fine[5:]
    with pytest.raises(DataError, match="--dataset cifar100"):
        load_dataset("cifar10", tarball, use_cache=False)


def test_cifar_pickle_cannot_run_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (os.getcwd, ())

    files, *_ = cifar10_files()
    files["data_batch_1"] = pickle.dumps({b"data": Evil()}, protocol=2)
    tarball = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    with pytest.raises(DataError, match="cannot parse data_batch_1"):
        load_dataset("cifar10", tarball, use_cache=False)


def test_cifar10_accepts_image_tree_and_reports_bad_dirs(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "tree" / "train", {"cat": 2, "dog": 2})
    ds = load_dataset("cifar10", tmp_path / "tree", use_cache=False)
    assert ds.name == "cifar10" and ds.class_names == ("cat", "dog")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="cifar-10-python.tar.gz, its extracted cifar-10-batches-py/"):
        load_dataset("cifar10", tmp_path / "nothing", use_cache=False)
