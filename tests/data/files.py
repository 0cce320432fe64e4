"""Tiny data files for the data tests: image trees, IDX files, CIFAR archives, all built in tmp_path."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_automl.data import (
    Dataset,
    idx,
)


def pixels(value: int, size: tuple[int, int] = (6, 8), channels: int = 3) -> np.ndarray:
    """A constant (H, W, C) uint8 image; channels == 1 gives a 2-D grayscale image."""
    shape = size if channels == 1 else (*size, channels)
    return np.full(shape, value, dtype=np.uint8)


def write_class_tree(
    root: Path, counts: dict[str, int], size: tuple[int, int] = (6, 8), mode: str = "RGB", ext: str = "png"
) -> dict[str, list[int]]:
    """root/<class>/<i>.<ext>, each image filled with a distinct value; returns the values per class."""
    values: dict[str, list[int]] = {}
    for c, (cls, n) in enumerate(sorted(counts.items())):
        (root / cls).mkdir(parents=True, exist_ok=True)
        values[cls] = []
        for i in range(n):
            value = 40 * c + 3 * i + 1
            img = Image.fromarray(pixels(value, size, 1 if mode == "L" else 3))
            img.save(root / cls / f"{i:03d}.{ext}")
            values[cls].append(value)
    return values


def jpeg_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels(value)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def tar_dir(src: Path, dest: Path, arcname: str) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(src, arcname=arcname)
    return dest


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes((0, 0, 0x08, array.ndim)) + np.array(array.shape, dtype=">u4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def idx_arrays(n_train: int = 6, n_test: int = 4) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(1)
    return (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        np.arange(n_train, dtype=np.uint8) % 10,
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        (np.arange(n_test, dtype=np.uint8) + 3) % 10,
    )


def write_idx_dir(folder: Path, arrays: tuple[np.ndarray, ...], compress: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(idx.IDX_FILES, arrays):
        write_idx(folder / (name if compress else name.removesuffix(".gz")), array, compress)


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) HWC images -> the official (N, 3072) CHW rows."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def cifar10_files(rows_per_batch: int = 4) -> tuple[dict[str, bytes], np.ndarray, np.ndarray, tuple[str, ...]]:
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
        batch = {b"batch_label": fname.encode(), b"labels": labels[part].tolist(), b"data": cifar_rows(images[part])}
        files[fname] = pickle.dumps(batch, protocol=2)
    files["batches.meta"] = pickle.dumps({b"label_names": [n.encode() for n in names]}, protocol=2)
    return files, images, labels, names


def write_tar(dest: Path, folder: str, files: dict[str, bytes]) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
        for fname, payload in files.items():
            info = tarfile.TarInfo(f"{folder}/{fname}")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return dest


def index_dataset(per_class: tuple[int, ...] = (50, 50, 50), with_test: bool = False) -> Dataset:
    """Images whose first pixels encode their index, so split membership can be read back."""
    y = np.repeat(np.arange(len(per_class)), per_class).astype(np.int64)
    x = np.zeros((len(y), 4, 4, 3), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(len(y)) % 256
    x[:, 0, 0, 1] = np.arange(len(y)) // 256
    x_test = np.full((9, 4, 4, 3), 255, dtype=np.uint8) if with_test else None
    y_test = (np.arange(9) % len(per_class)).astype(np.int64) if with_test else None
    names = tuple(f"c{i}" for i in range(len(per_class)))
    return Dataset("folder", x, y, x_test, y_test, names, "memory")


def ids(x: np.ndarray) -> np.ndarray:
    return x[:, 0, 0, 0].astype(np.int64) + 256 * x[:, 0, 0, 1].astype(np.int64)

