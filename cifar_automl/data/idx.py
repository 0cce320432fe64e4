"""MNIST and Fashion-MNIST: the four IDX files (gzipped or not), Debian's `dataset-fashion-mnist`
package when installed, or Keras' download."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Dataset
from .download import keras_reader
from .imaging import resize_dataset
from .sources import Reader, register_dataset

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
MNIST_CLASSES = tuple(str(i) for i in range(10))
CLASSES = {"fashion_mnist": FASHION_MNIST_CLASSES, "mnist": MNIST_CLASSES}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist
IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@register_dataset("fashion_mnist")
def locate_fashion_mnist(data_dir: Path | None) -> Reader:
    if data_dir is None and idx_paths(DEBIAN_FASHION_MNIST) is not None:
        return idx_reader("fashion_mnist", DEBIAN_FASHION_MNIST)
    return locate("fashion_mnist", data_dir, "run apt-get install dataset-fashion-mnist, or ")


@register_dataset("mnist")
def locate_mnist(data_dir: Path | None) -> Reader:
    return locate("mnist", data_dir)


def locate(name: str, data_dir: Path | None, hint: str = "") -> Reader:
    if data_dir is None:
        return keras_reader(name, CLASSES[name], f"{hint}pass --data-dir with {', '.join(IDX_FILES)}")
    return idx_reader(name, data_dir)


def idx_reader(name: str, folder: Path) -> Reader:
    return Reader("idx", folder, lambda size: resize_dataset(load_idx(name, folder), size))


def idx_paths(folder: Path) -> list[Path] | None:
    """The four IDX files in folder (gzipped or not), or None if any is missing."""
    found = []
    for gz_name in IDX_FILES:
        candidates = [folder / gz_name, folder / gz_name.removesuffix(".gz")]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found


def load_idx(name: str, folder: Path) -> Dataset:
    paths = idx_paths(folder) if folder.is_dir() else None
    if paths is None:
        raise DataError(f"no {name} IDX files in {folder}: pass a directory holding {', '.join(IDX_FILES)}")
    x_train, y_train, x_test, y_test = (read_idx(p, ndim) for p, ndim in zip(paths, (3, 1, 3, 1)))
    classes = CLASSES[name]
    for x, y, p in ((x_train, y_train, paths[1]), (x_test, y_test, paths[3])):
        if len(x) != len(y) or (len(y) and int(y.max()) >= len(classes)):
            raise DataError(f"{p} does not match its image file (count or label range): file corrupt?")
    return Dataset(
        name=name,
        x_train=x_train[..., None],
        y_train=y_train.astype(np.int64),
        x_test=x_test[..., None],
        y_test=y_test.astype(np.int64),
        class_names=classes,
        source=str(folder),
    )


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file (big-endian header: 0, 0, 0x08, ndim, then ndim uint32 sizes)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:4] != bytes((0, 0, 0x08, ndim)):
        raise DataError(f"{path} is not an unsigned-byte IDX file with {ndim} dimensions: pass the original file")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) - header != math.prod(dims):
        raise DataError(
            f"{path} is truncated or corrupt: expected {math.prod(dims)} data bytes, got {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()
