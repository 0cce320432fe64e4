"""The registry of data sources, Keras downloads (faked: no network in tests), names and paths."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from cifar_automl.data import cifar as cifar_source
from cifar_automl.data import dataset_names, idx, load_dataset
from cifar_automl.errors import DataError, UserError

from .files import idx_arrays, write_idx_dir

REPO = Path(__file__).resolve().parents[2]
REAL_ARCHIVE = REPO.parent / "shared/datasets/cifar10-train-jpeg.tar.gz"


def _fake_keras(monkeypatch: pytest.MonkeyPatch, **loaders: object) -> None:
    datasets = types.SimpleNamespace(**{k: types.SimpleNamespace(load_data=v) for k, v in loaders.items()})
    monkeypatch.setitem(sys.modules, "keras", types.SimpleNamespace(datasets=datasets))


def test_keras_download_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    def cifar(label_mode: str = "fine") -> tuple:
        x = np.zeros((4, 32, 32, 3), dtype=np.uint8)
        return (x, np.array([[1], [2], [3], [4]], dtype=np.uint8)), (x[:2], np.array([[0], [9]], dtype=np.uint8))

    def mnist() -> tuple:
        x = np.zeros((3, 28, 28), dtype=np.uint8)
        return (x, np.array([1, 2, 3], dtype=np.uint8)), (x, np.array([4, 5, 6], dtype=np.uint8))

    _fake_keras(monkeypatch, cifar10=cifar, cifar100=cifar, mnist=mnist)
    ds = load_dataset("cifar10")
    assert ds.source == "keras download" and ds.class_names == cifar_source.CIFAR10_CLASSES
    assert ds.y_train.shape == (4,) and ds.y_train.dtype == np.int64 and ds.y_train.tolist() == [1, 2, 3, 4]
    assert load_dataset("cifar100").class_names == cifar_source.CIFAR100_CLASSES
    mn = load_dataset("mnist", image_size=8)
    assert mn.x_train.shape == (3, 8, 8, 1) and mn.x_test is not None and mn.x_test.shape == (3, 8, 8, 1)


def test_keras_download_failure_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def offline(**kwargs: object) -> tuple:
        raise Exception("URL fetch failure on https://example.invalid: None -- [Errno -2] Name or service not known")

    _fake_keras(monkeypatch, cifar10=offline, fashion_mnist=offline, mnist=offline)
    monkeypatch.setattr(idx, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
    with pytest.raises(DataError, match=r"cannot download cifar10 \(offline\?\)") as err:
        load_dataset("cifar10")
    assert "\n" not in str(err.value) and "cifar-10-python.tar.gz" in str(err.value)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist")


def test_fashion_mnist_prefers_debian_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_idx_dir(tmp_path / "debian", idx_arrays())
    monkeypatch.setattr(idx, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    _fake_keras(monkeypatch)  # any keras use would fail
    ds = load_dataset("fashion_mnist", cache_dir=tmp_path / "cache")
    assert ds.x_train.shape == (6, 28, 28, 1) and ds.source == str(tmp_path / "debian")


def test_unknown_dataset_and_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*cifar10, cifar100"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="data dir not found"):
        load_dataset("folder", tmp_path / "nope")
    assert issubclass(DataError, UserError) and "folder" in dataset_names()


def test_import_does_not_load_tensorflow() -> None:
    code = "import sys, cifar_automl.data; print('keras' in sys.modules or 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
