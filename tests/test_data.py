"""Tests for cifar_automl.data: loaders, cache and splits, on tiny synthetic data built in tmp_path."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_automl import data
from cifar_automl.data import (
    DATASETS,
    Dataset,
    default_cache_dir,
    load_dataset,
    make_splits,
    parse_subset,
)
from cifar_automl.errors import DataError, UserError

REPO = Path(__file__).resolve().parents[1]
REAL_ARCHIVE = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-train-jpeg.tar.gz"


# --------------------------------------------------------------------------------------------------
# Helpers


def _pixels(value: int, size: tuple[int, int] = (6, 8), channels: int = 3) -> np.ndarray:
    """A constant (H, W, C) uint8 image; channels == 1 gives a 2-D grayscale image."""
    shape = size if channels == 1 else (*size, channels)
    return np.full(shape, value, dtype=np.uint8)


def _write_class_tree(
    root: Path, counts: dict[str, int], size: tuple[int, int] = (6, 8), mode: str = "RGB", ext: str = "png"
) -> dict[str, list[int]]:
    """root/<class>/<i>.<ext>, each image filled with a distinct value; returns the values per class."""
    values: dict[str, list[int]] = {}
    for c, (cls, n) in enumerate(sorted(counts.items())):
        (root / cls).mkdir(parents=True, exist_ok=True)
        values[cls] = []
        for i in range(n):
            value = 40 * c + 3 * i + 1
            img = Image.fromarray(_pixels(value, size, 1 if mode == "L" else 3))
            img.save(root / cls / f"{i:03d}.{ext}")
            values[cls].append(value)
    return values


def _jpeg_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_pixels(value)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _tar_dir(src: Path, dest: Path, arcname: str) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(src, arcname=arcname)
    return dest


def _write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes((0, 0, 0x08, array.ndim)) + np.array(array.shape, dtype=">u4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def _idx_arrays(n_train: int = 6, n_test: int = 4) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(1)
    return (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        np.arange(n_train, dtype=np.uint8) % 10,
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        (np.arange(n_test, dtype=np.uint8) + 3) % 10,
    )


def _write_idx_dir(folder: Path, arrays: tuple[np.ndarray, ...], compress: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(data.IDX_FILES, arrays):
        _write_idx(folder / (name if compress else name.removesuffix(".gz")), array, compress)


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) HWC images -> the official (N, 3072) CHW rows."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def _cifar10_files(rows_per_batch: int = 4) -> tuple[dict[str, bytes], np.ndarray, np.ndarray, tuple[str, ...]]:
    """Pickled CIFAR-10 batch files as in the official archive (bytes keys, protocol 2)."""
    rng = np.random.default_rng(2)
    n = 6 * rows_per_batch
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    names = tuple(f"Class{i}" for i in range(10))
    files = {}
    batch_names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, fname in enumerate(batch_names):
        part = slice(b * rows_per_batch, (b + 1) * rows_per_batch)
        batch = {b"batch_label": fname.encode(), b"labels": labels[part].tolist(), b"data": _cifar_rows(images[part])}
        files[fname] = pickle.dumps(batch, protocol=2)
    files["batches.meta"] = pickle.dumps({b"label_names": [n.encode() for n in names]}, protocol=2)
    return files, images, labels, names


def _write_tar(dest: Path, folder: str, files: dict[str, bytes]) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
        for fname, payload in files.items():
            info = tarfile.TarInfo(f"{folder}/{fname}")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return dest


def _index_dataset(per_class: tuple[int, ...] = (50, 50, 50), with_test: bool = False) -> Dataset:
    """Images whose first pixels encode their index, so split membership can be read back."""
    y = np.repeat(np.arange(len(per_class)), per_class).astype(np.int64)
    x = np.zeros((len(y), 4, 4, 3), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(len(y)) % 256
    x[:, 0, 0, 1] = np.arange(len(y)) // 256
    x_test = np.full((9, 4, 4, 3), 255, dtype=np.uint8) if with_test else None
    y_test = (np.arange(9) % len(per_class)).astype(np.int64) if with_test else None
    names = tuple(f"c{i}" for i in range(len(per_class)))
    return Dataset("folder", x, y, x_test, y_test, names, "memory")


def _ids(x: np.ndarray) -> np.ndarray:
    return x[:, 0, 0, 0].astype(np.int64) + 256 * x[:, 0, 0, 1].astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Folder trees


def test_folder_train_and_test(tmp_path: Path) -> None:
    train = _write_class_tree(tmp_path / "train", {"dog": 3, "cat": 2})
    test = _write_class_tree(tmp_path / "test", {"dog": 1, "cat": 2})
    ds = load_dataset("folder", tmp_path, use_cache=False)
    assert ds.name == "folder" and ds.class_names == ("cat", "dog")
    assert ds.x_train.shape == (5, 6, 8, 3) and ds.x_train.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and ds.y_train.tolist() == [0, 0, 1, 1, 1]
    assert ds.x_train[:, 0, 0, 0].tolist() == train["cat"] + train["dog"]
    assert ds.x_test is not None and ds.y_test is not None
    assert ds.x_test[:, 0, 0, 0].tolist() == test["cat"] + test["dog"]
    assert ds.y_test.tolist() == [0, 0, 1]
    assert ds.skipped_files == 0 and ds.source == str(tmp_path.resolve())


def test_folder_flat_root_has_no_test_split(tmp_path: Path) -> None:
    _write_class_tree(tmp_path, {"a": 2, "b": 2, "c": 1}, ext="JPG")
    ds = load_dataset("folder", tmp_path, use_cache=False)
    assert ds.class_names == ("a", "b", "c") and ds.y_train.tolist() == [0, 0, 1, 1, 2]
    assert ds.x_test is None and ds.y_test is None


def test_folder_nested_single_subdir_ignores_hidden_entries(tmp_path: Path) -> None:
    _write_class_tree(tmp_path / "unpacked" / "my-images" / "train", {"x": 2, "y": 2})
    _write_class_tree(tmp_path / "unpacked" / "__MACOSX" / "my-images" / "train", {"x": 1, "y": 1, "z": 1})
    _write_class_tree(tmp_path / "unpacked" / "my-images" / "train" / ".thumbs", {"q": 1})
    (tmp_path / "unpacked" / "README.txt").write_text("notes")
    ds = load_dataset("folder", tmp_path / "unpacked", use_cache=False)
    assert ds.class_names == ("x", "y") and len(ds.x_train) == 4 and ds.x_test is None


def test_folder_tar_archive_matches_directory(tmp_path: Path) -> None:
    _write_class_tree(tmp_path / "tree" / "train", {"cat": 3, "dog": 2})
    _write_class_tree(tmp_path / "tree" / "test", {"cat": 1, "dog": 1})
    archive = _tar_dir(tmp_path / "tree", tmp_path / "images.tgz", "images")
    from_dir = load_dataset("folder", tmp_path / "tree", use_cache=False)
    from_tar = load_dataset("folder", archive, use_cache=False)
    assert from_tar.class_names == from_dir.class_names
    np.testing.assert_array_equal(from_tar.x_train, from_dir.x_train)
    np.testing.assert_array_equal(from_tar.y_train, from_dir.y_train)
    assert from_tar.x_test is not None and from_dir.x_test is not None
    np.testing.assert_array_equal(from_tar.x_test, from_dir.x_test)


def test_mixed_sizes_take_most_common_unless_image_size_given(tmp_path: Path) -> None:
    _write_class_tree(tmp_path, {"a": 2, "b": 2}, size=(6, 8))
    Image.fromarray(_pixels(9, (10, 10))).save(tmp_path / "b" / "odd.png")
    assert load_dataset("folder", tmp_path, use_cache=False).x_train.shape == (5, 6, 8, 3)
    assert load_dataset("folder", tmp_path, image_size=5, use_cache=False).x_train.shape == (5, 5, 5, 3)
    assert load_dataset("folder", tmp_path, image_size=(4, 7), use_cache=False).x_train.shape == (5, 4, 7, 3)
    with pytest.raises(DataError, match="image size"):
        load_dataset("folder", tmp_path, image_size=0, use_cache=False)


def test_most_common_size_beyond_the_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "_MODE_SAMPLE", 1)  # the sample is the first image only: a 5x5 one
    _write_class_tree(tmp_path, {"a": 2, "b": 4}, size=(6, 8))
    for i in range(3):
        Image.fromarray(_pixels(200 + i, (5, 5))).save(tmp_path / "a" / f"0{i}.png")
    ds = load_dataset("folder", tmp_path, use_cache=False)
    assert ds.x_train.shape == (9, 6, 8, 3)


def test_grayscale_folder_gives_one_channel(tmp_path: Path) -> None:
    values = _write_class_tree(tmp_path, {"a": 2, "b": 2}, mode="L")
    ds = load_dataset("folder", tmp_path, use_cache=False)
    assert ds.x_train.shape == (4, 6, 8, 1)
    assert ds.x_train[:, 0, 0, 0].tolist() == values["a"] + values["b"]


def test_corrupt_images_are_skipped_and_counted(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(4):
            (tmp_path / cls / f"{i}.jpg").write_bytes(_jpeg_bytes(50 * i))
    (tmp_path / "a" / "garbage.jpg").write_bytes(b"not an image at all")
    (tmp_path / "b" / "truncated.jpeg").write_bytes(_jpeg_bytes(7)[:200])
    ds = load_dataset("folder", tmp_path, use_cache=False)
    assert ds.skipped_files == 2 and len(ds.x_train) == 8 and ds.y_train.tolist() == [0] * 4 + [1] * 4


def test_all_corrupt_images_raise(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            (tmp_path / cls / f"{i}.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="corrupt"):
        load_dataset("folder", tmp_path, use_cache=False)


def test_mostly_corrupt_images_raise(tmp_path: Path) -> None:
    _write_class_tree(tmp_path, {"a": 1, "b": 1})
    for i in range(3):
        (tmp_path / "b" / f"bad{i}.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="3 of 5 images"):
        load_dataset("folder", tmp_path, use_cache=False)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs --data-dir"):
        load_dataset("folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_dataset("folder", tmp_path / "empty", use_cache=False)
    _write_class_tree(tmp_path / "one", {"only": 2, "empty": 0})
    with pytest.raises(DataError, match="at least 2 classes"):
        load_dataset("folder", tmp_path / "one", use_cache=False)
    _write_class_tree(tmp_path / "mismatch" / "train", {"a": 1, "b": 1})
    _write_class_tree(tmp_path / "mismatch" / "test", {"a": 1, "c": 1})
    with pytest.raises(DataError, match="test classes"):
        load_dataset("folder", tmp_path / "mismatch", use_cache=False)
    (tmp_path / "file.zip").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="neither a directory nor a tar"):
        load_dataset("folder", tmp_path / "file.zip", use_cache=False)


def test_empty_class_folders_are_ignored(tmp_path: Path) -> None:
    _write_class_tree(tmp_path, {"a": 2, "b": 1, "c": 0})
    ds = load_dataset("folder", tmp_path, use_cache=False)
    assert ds.class_names == ("a", "b")


# --------------------------------------------------------------------------------------------------
# IDX files


def test_idx_gzip_files(tmp_path: Path) -> None:
    arrays = _idx_arrays()
    _write_idx_dir(tmp_path, arrays)
    ds = load_dataset("fashion_mnist", tmp_path, use_cache=False)
    assert ds.x_train.shape == (6, 28, 28, 1) and ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays[0])
    np.testing.assert_array_equal(ds.y_train, arrays[1])
    assert ds.x_test is not None and ds.y_test is not None and ds.y_test.dtype == np.int64
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays[2])
    np.testing.assert_array_equal(ds.y_test, arrays[3])
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_idx_uncompressed_mnist_and_resize(tmp_path: Path) -> None:
    _write_idx_dir(tmp_path, _idx_arrays(), compress=False)
    ds = load_dataset("mnist", tmp_path, image_size=32, use_cache=False)
    assert ds.class_names == tuple("0123456789")
    assert ds.x_train.shape == (6, 32, 32, 1) and ds.x_test is not None and ds.x_test.shape == (4, 32, 32, 1)


def test_idx_truncated_or_missing(tmp_path: Path) -> None:
    _write_idx_dir(tmp_path, _idx_arrays())
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


# --------------------------------------------------------------------------------------------------
# CIFAR python archives


def test_cifar10_tarball_file_and_parent_dir(tmp_path: Path) -> None:
    files, images, labels, names = _cifar10_files()
    tarball = _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
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
    files, images, labels, names = _cifar10_files()
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
    train = {b"data": _cifar_rows(images[:5]), b"fine_labels": fine[:5], b"coarse_labels": [0] * 5}
    test = {b"data": _cifar_rows(images[5:]), b"fine_labels": fine[5:], b"coarse_labels": [0] * 2}
    meta = {b"fine_label_names": [n.encode() for n in data.CIFAR100_CLASSES], b"coarse_label_names": []}
    files = {k: pickle.dumps(v, protocol=2) for k, v in {"train": train, "test": test, "meta": meta}.items()}
    tarball = _write_tar(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", files)
    ds = load_dataset("cifar100", tarball, use_cache=False)
    assert len(ds.class_names) == 100 and ds.class_names == data.CIFAR100_CLASSES
    np.testing.assert_array_equal(ds.x_train, images[:5])
    assert ds.y_train.tolist() == fine[:5] and ds.y_test is not None and ds.y_test.tolist() == fine[5:]
    with pytest.raises(DataError, match="--dataset cifar100"):
        load_dataset("cifar10", tarball, use_cache=False)


def test_cifar_pickle_cannot_run_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (os.getcwd, ())

    files, *_ = _cifar10_files()
    files["data_batch_1"] = pickle.dumps({b"data": Evil()}, protocol=2)
    tarball = _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    with pytest.raises(DataError, match="cannot parse data_batch_1"):
        load_dataset("cifar10", tarball, use_cache=False)


def test_cifar10_accepts_image_tree_and_reports_bad_dirs(tmp_path: Path) -> None:
    _write_class_tree(tmp_path / "tree" / "train", {"cat": 2, "dog": 2})
    ds = load_dataset("cifar10", tmp_path / "tree", use_cache=False)
    assert ds.name == "cifar10" and ds.class_names == ("cat", "dog")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="cifar-10-python.tar.gz, its extracted cifar-10-batches-py/"):
        load_dataset("cifar10", tmp_path / "nothing", use_cache=False)


# --------------------------------------------------------------------------------------------------
# Keras downloads (faked: no network in tests), names and paths


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
    assert ds.source == "keras download" and ds.class_names == data.CIFAR10_CLASSES
    assert ds.y_train.shape == (4,) and ds.y_train.dtype == np.int64 and ds.y_train.tolist() == [1, 2, 3, 4]
    assert load_dataset("cifar100").class_names == data.CIFAR100_CLASSES
    mn = load_dataset("mnist", image_size=8)
    assert mn.x_train.shape == (3, 8, 8, 1) and mn.x_test is not None and mn.x_test.shape == (3, 8, 8, 1)


def test_keras_download_failure_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def offline(**kwargs: object) -> tuple:
        raise Exception("URL fetch failure on https://example.invalid: None -- [Errno -2] Name or service not known")

    _fake_keras(monkeypatch, cifar10=offline, fashion_mnist=offline, mnist=offline)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
    with pytest.raises(DataError, match=r"cannot download cifar10 \(offline\?\)") as err:
        load_dataset("cifar10")
    assert "\n" not in str(err.value) and "cifar-10-python.tar.gz" in str(err.value)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist")


def test_fashion_mnist_prefers_debian_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _write_idx_dir(tmp_path / "debian", _idx_arrays())
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    _fake_keras(monkeypatch)  # any keras use would fail
    ds = load_dataset("fashion_mnist", cache_dir=tmp_path / "cache")
    assert ds.x_train.shape == (6, 28, 28, 1) and ds.source == str(tmp_path / "debian")


def test_unknown_dataset_and_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*cifar10, cifar100"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="data dir not found"):
        load_dataset("folder", tmp_path / "nope")
    assert issubclass(DataError, UserError) and "folder" in DATASETS


def test_import_does_not_load_tensorflow() -> None:
    code = "import sys, cifar_automl.data; print('keras' in sys.modules or 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------------
# Cache


def test_cache_hit_skips_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_class_tree(tmp_path / "imgs" / "train", {"a": 2, "b": 3})
    _write_class_tree(tmp_path / "imgs" / "test", {"a": 1, "b": 1})
    cache = tmp_path / "cache"
    first = load_dataset("folder", tmp_path / "imgs", cache_dir=cache)
    assert [p.name.startswith("folder-") and p.suffix == ".npz" for p in cache.iterdir()] == [True]

    def no_decode(*args: object) -> None:
        raise AssertionError("decoded despite the cache")

    monkeypatch.setattr(data, "_decode_image", no_decode)
    second = load_dataset("folder", tmp_path / "imgs", cache_dir=cache)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_train, second.y_train)
    assert second.x_test is not None and first.x_test is not None
    np.testing.assert_array_equal(first.x_test, second.x_test)
    assert second.class_names == first.class_names and second.source == first.source


def test_cache_key_changes_with_files_and_size(tmp_path: Path) -> None:
    _write_class_tree(tmp_path / "imgs", {"a": 2, "b": 2})
    cache = tmp_path / "cache"
    assert len(load_dataset("folder", tmp_path / "imgs", cache_dir=cache).x_train) == 4
    Image.fromarray(_pixels(3)).save(tmp_path / "imgs" / "b" / "new.png")
    assert len(load_dataset("folder", tmp_path / "imgs", cache_dir=cache).x_train) == 5
    assert load_dataset("folder", tmp_path / "imgs", image_size=3, cache_dir=cache).x_train.shape[1:3] == (3, 3)
    assert len(list(cache.glob("*.npz"))) == 3


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    _write_idx_dir(tmp_path / "idx", _idx_arrays())
    cache = tmp_path / "cache"
    first = load_dataset("mnist", tmp_path / "idx", cache_dir=cache)
    (cache_file,) = cache.glob("mnist-*.npz")
    cache_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="ignoring unreadable cache file"):
        second = load_dataset("mnist", tmp_path / "idx", cache_dir=cache)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    with np.load(cache_file) as npz:  # rewritten and valid again
        assert npz["x_train"].shape == (6, 28, 28, 1)
    assert not list(cache.glob("*.tmp"))


def test_unwritable_cache_dir_only_warns(tmp_path: Path) -> None:
    _write_class_tree(tmp_path / "imgs", {"a": 1, "b": 1})
    (tmp_path / "blocker").write_text("a file where the cache dir should be")
    with pytest.warns(UserWarning, match="cannot write data cache"):
        ds = load_dataset("folder", tmp_path / "imgs", cache_dir=tmp_path / "blocker" / "cache")
    assert len(ds.x_train) == 2


def test_use_cache_false_writes_nothing(tmp_path: Path) -> None:
    _write_class_tree(tmp_path / "imgs", {"a": 1, "b": 1})
    load_dataset("folder", tmp_path / "imgs", cache_dir=tmp_path / "cache", use_cache=False)
    assert not (tmp_path / "cache").exists()


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIFAR_AUTOML_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CIFAR_AUTOML_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "cifar-automl"


# --------------------------------------------------------------------------------------------------
# Splits


def test_carved_splits_are_stratified_and_disjoint() -> None:
    ds = _index_dataset((50, 50, 50))
    s = make_splits(ds, val_fraction=0.1, seed=1)
    info = s.info
    assert info["test_source"] == "carved"
    assert info["class_counts"] == {"train": [36] * 3, "val": [4] * 3, "test": [10] * 3}
    assert (info["n_train"], info["n_val"], info["n_test"]) == (108, 12, 30)
    ids = [_ids(s.x_train), _ids(s.x_val), _ids(s.x_test)]
    assert sorted(np.concatenate(ids).tolist()) == list(range(150))
    for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
        np.testing.assert_array_equal(y, ds.y_train[_ids(x)])
        assert x.flags.c_contiguous and y.dtype == np.int64


def test_carved_test_split_ignores_seed_subset_and_val_fraction() -> None:
    ds = _index_dataset((40, 25, 35))
    runs = [
        make_splits(ds),
        make_splits(ds, val_fraction=0.3, seed=5, subset=0.5),
        make_splits(ds, val_fraction=0.2, seed=9, subset=30),
    ]
    for s in runs[1:]:
        np.testing.assert_array_equal(_ids(s.x_test), _ids(runs[0].x_test))
        assert not set(_ids(s.x_test)) & (set(_ids(s.x_train)) | set(_ids(s.x_val)))


def test_official_test_split_is_used_and_copied() -> None:
    ds = _index_dataset((10, 10, 10), with_test=True)
    s = make_splits(ds, val_fraction=0.2)
    assert s.info["test_source"] == "official" and s.info["test_fraction"] is None
    assert s.info["n_train"] + s.info["n_val"] == 30 and s.info["n_test"] == 9
    assert ds.x_test is not None
    np.testing.assert_array_equal(s.x_test, ds.x_test)
    assert not np.shares_memory(s.x_test, ds.x_test)


def test_subset_fraction_and_count() -> None:
    ds = _index_dataset((60, 30, 30))
    half = make_splits(ds, subset=0.5, val_fraction=0.2, test_fraction=0.5)
    per_class = np.add(half.info["class_counts"]["train"], half.info["class_counts"]["val"])
    assert per_class.tolist() == [15, 8, 8]  # half of (30, 15, 15), rounded half to even
    counted = make_splits(ds, subset=31, val_fraction=0.2, test_fraction=0.5)
    per_class = np.add(counted.info["class_counts"]["train"], counted.info["class_counts"]["val"])
    assert per_class.sum() == 31 and per_class.min() >= 7
    smallest = make_splits(_index_dataset((20, 4, 6)), subset=6, val_fraction=0.5)
    assert min(np.add(smallest.info["class_counts"]["train"], smallest.info["class_counts"]["val"])) >= 1
    assert make_splits(ds, subset=1.0).info["n_train"] == make_splits(ds).info["n_train"]


def test_every_class_keeps_train_and_val_images() -> None:
    s = make_splits(_index_dataset((40, 3, 4)), val_fraction=0.05, test_fraction=0.1)
    assert min(s.info["class_counts"]["val"]) >= 1 and min(s.info["class_counts"]["train"]) >= 1


def test_splits_are_deterministic_per_seed() -> None:
    ds = _index_dataset()
    a, b, c = make_splits(ds, seed=3), make_splits(ds, seed=3), make_splits(ds, seed=4)
    np.testing.assert_array_equal(_ids(a.x_val), _ids(b.x_val))
    np.testing.assert_array_equal(_ids(a.x_train), _ids(b.x_train))
    assert set(_ids(a.x_val)) != set(_ids(c.x_val))


@pytest.mark.parametrize("subset", [0.0, 1.5, -1, 2, 10**6, True, "0.2", float("nan")])
def test_bad_subset_raises(subset: object) -> None:
    with pytest.raises(DataError, match="subset"):
        make_splits(_index_dataset(), subset=subset)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"val_fraction": 0.0}, {"val_fraction": 1.0}, {"test_fraction": 1.2}])
def test_bad_fractions_raise(kwargs: dict) -> None:
    with pytest.raises(DataError, match="fraction"):
        make_splits(_index_dataset(), **kwargs)


def test_too_small_to_split_raises() -> None:
    with pytest.raises(DataError, match="too few images"):
        make_splits(_index_dataset((1, 1)), val_fraction=0.5)


def test_info_is_json_serialisable() -> None:
    ds = _index_dataset()
    info = make_splits(ds, subset=np.int64(60), seed=2).info
    assert json.loads(json.dumps(info)) == info
    expected = {"dataset", "source", "image_shape", "n_train", "n_val", "n_test", "class_counts", "test_source"}
    assert expected <= set(info) and {"val_fraction", "subset", "seed", "test_fraction", "skipped_files"} <= set(info)
    assert info["image_shape"] == [4, 4, 3] and info["subset"] == 60 and info["test_fraction"] == 0.2


def test_parse_subset() -> None:
    assert parse_subset("0.2") == 0.2 and isinstance(parse_subset("0.2"), float)
    assert parse_subset(" 5000 ") == 5000 and isinstance(parse_subset("5000"), int)
    assert parse_subset("1.0") == 1.0
    for bad in ("", "abc", "0", "0.0", "-3", "1.5", "nan", "inf", "2e3"):
        with pytest.raises(DataError, match="bad subset"):
            parse_subset(bad)


# --------------------------------------------------------------------------------------------------
# Real data (slow; skipped when absent)


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
    assert ds.class_names == data.CIFAR10_CLASSES
    assert np.bincount(ds.y_train).tolist() == [5000] * 10
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    assert cached < uncached
    s = make_splits(ds)
    assert (s.info["n_test"], s.info["n_val"], s.info["n_train"]) == (10000, 4000, 36000)


@pytest.mark.slow
def test_real_debian_fashion_mnist(tmp_path: Path) -> None:
    if data._idx_paths(data.DEBIAN_FASHION_MNIST) is None:
        pytest.skip("dataset-fashion-mnist is not installed")
    ds = load_dataset("fashion_mnist", cache_dir=tmp_path)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test is not None and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
