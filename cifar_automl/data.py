"""Load image data sets into memory as uint8 arrays, cache local decodes, and split them.

Sources: Keras downloads (cifar10, cifar100, fashion_mnist, mnist), the official CIFAR python
tarballs, MNIST-style IDX files, and class-per-folder image trees (as a directory or a tar archive).
TensorFlow/Keras is imported only when a download is needed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import math
import os
import pickle
import tarfile
import uuid
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cifar_automl.errors import DataError

DATASETS = ("cifar10", "cifar100", "fashion_mnist", "mnist", "folder")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
    can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
    dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
    lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree
    pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea
    seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank
    telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
    worm""".split()
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
MNIST_CLASSES = tuple(str(i) for i in range(10))

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"})

_CACHE_VERSION = 1
_TEST_SPLIT_SEED = 0  # fixed: the carved test split must not depend on the search settings
_MODE_SAMPLE = 300  # images whose mode decides grayscale vs RGB for a folder data set
_MAX_WORKERS = max(2, min(4, os.cpu_count() or 2))
_GRAY_MODES = frozenset({"1", "L", "LA", "I;16", "I;16L", "I;16B", "I;16N"})
_SKIP_NAMES = frozenset({"__MACOSX"})



@dataclass(frozen=True)
class _CifarSpec:
    """Layout of an official CIFAR python archive: <dir>/<batch files>, pickled dicts."""

    dir: str
    tarball: str
    train: tuple[str, ...]
    test: str
    meta: str
    labels: str  # label key in the batches
    names: str  # class-name key in the meta file


_CIFAR = {
    "cifar10": _CifarSpec(
        dir="cifar-10-batches-py",
        tarball="cifar-10-python.tar.gz",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test="test_batch",
        meta="batches.meta",
        labels="labels",
        names="label_names",
    ),
    "cifar100": _CifarSpec(
        dir="cifar-100-python",
        tarball="cifar-100-python.tar.gz",
        train=("train",),
        test="test",
        meta="meta",
        labels="fine_labels",
        names="fine_label_names",
    ),
}

ImageRef = Path | bytes  # an image file on disk, or its bytes read from an archive


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole data set in memory: uint8 images (N, H, W, C) and int64 labels (N,)."""

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


@dataclass(frozen=True)
class _Source:
    """Where a data set will be read from: a local file/directory of a given kind, or a Keras download."""

    kind: str  # "keras", "cifar_tar", "cifar_dir", "idx" or "images"
    path: Path | None = None


def default_cache_dir() -> Path:
    """$CIFAR_AUTOML_CACHE if set, else ~/.cache/cifar-automl."""
    env = os.environ.get("CIFAR_AUTOML_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cifar-automl"


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


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    image_size: int | tuple[int, int] | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> Dataset:
    """Load a data set by name into memory.

    data_dir points at local files (required for "folder"); without it the Keras download is used
    (Debian's /usr/share/datasets/fashion-mnist is tried first for fashion_mnist). image_size is an
    int (square) or (height, width); images are resized to it, otherwise folder images take the most
    common size. Local decodes are cached as .npz under cache_dir (default: default_cache_dir()).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: pass one of {', '.join(DATASETS)}")
    size = _normalise_size(image_size)
    source = _locate(name, data_dir)
    if source.kind == "keras":
        return _resize_dataset(_load_keras(name), size)
    assert source.path is not None
    cache_file = _cache_file(cache_dir, name, source, size) if use_cache else None
    if cache_file is not None:
        cached = _read_cache(cache_file, name, str(source.path))
        if cached is not None:
            return cached
    if source.kind == "images":
        ds = _load_images(name, source.path, size)
    elif source.kind == "idx":
        ds = _resize_dataset(_load_idx(name, source.path), size)
    else:
        ds = _resize_dataset(_load_cifar(name, source), size)
    if cache_file is not None:
        _write_cache(cache_file, ds)
    return ds


# --------------------------------------------------------------------------------------------------
# Locating the source


def _normalise_size(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """Return (height, width) or None."""
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        dims = (int(image_size), int(image_size))
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in image_size)
    ):
        dims = (int(image_size[0]), int(image_size[1]))
    else:
        raise DataError(f"bad image size {image_size!r}: pass a positive int such as 32, or (height, width)")
    if min(dims) < 1:
        raise DataError(f"bad image size {image_size!r}: pass a positive int such as 32, or (height, width)")
    return dims


def _locate(name: str, data_dir: str | os.PathLike | None) -> _Source:
    """Decide which loader reads the data set, without decoding anything."""
    if data_dir is None:
        if name == "folder":
            raise DataError("--dataset folder needs --data-dir: pass a class-per-folder image tree or its .tar.gz")
        if name == "fashion_mnist" and _idx_paths(DEBIAN_FASHION_MNIST) is not None:
            return _Source("idx", DEBIAN_FASHION_MNIST)
        return _Source("keras")
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(f"data dir not found: {path}")
    path = path.resolve()
    if name in ("fashion_mnist", "mnist"):
        return _Source("idx", path)
    if name in _CIFAR:
        return _locate_cifar(name, path)
    return _Source("images", path)


def _locate_cifar(name: str, path: Path) -> _Source:
    spec = _CIFAR[name]
    if path.is_dir():
        if (path / spec.tarball).is_file():
            return _Source("cifar_tar", path / spec.tarball)
        for folder in (path, path / spec.dir):
            if (folder / spec.meta).is_file() and (folder / spec.test).is_file():
                return _Source("cifar_dir", folder)
        if _find_layout(_walk_images(path)) is not None:
            return _Source("images", path)
    elif tarfile.is_tarfile(path):
        top = _tar_top_dirs(path)
        if spec.dir in top:
            return _Source("cifar_tar", path)
        other = next((n for n, s in _CIFAR.items() if n != name and s.dir in top), None)
        if other is not None:
            raise DataError(f"{path} holds {other}, not {name}: pass --dataset {other}")
        return _Source("images", path)
    raise DataError(
        f"no {name} data in {path}: pass {spec.tarball}, its extracted {spec.dir}/, "
        "or a class-per-folder image tree (ROOT/train/<class>/*.png)"
    )


def _tar_top_dirs(path: Path, limit: int = 20) -> set[str]:
    """First path components of the first few members of a tar archive."""
    top: set[str] = set()
    try:
        with tarfile.open(path, "r|*") as tf:
            for i, member in enumerate(tf):
                parts = _member_parts(member.name)
                if parts:
                    top.add(parts[0])
                if i + 1 >= limit:
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from exc
    return top


# --------------------------------------------------------------------------------------------------
# Keras downloads


def _load_keras(name: str) -> Dataset:
    """Download (or reuse Keras' own cache) via keras.datasets; offline -> DataError."""
    import keras  # lazy: TensorFlow is slow to import and not needed for local data

    module = getattr(keras.datasets, name)
    try:
        if name == "cifar100":
            (x_train, y_train), (x_test, y_test) = module.load_data(label_mode="fine")
        else:
            (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as exc:  # Keras raises a bare Exception for URL/network failures
        raise DataError(_download_hint(name)) from exc
    classes = {
        "cifar10": CIFAR10_CLASSES,
        "cifar100": CIFAR100_CLASSES,
        "fashion_mnist": FASHION_MNIST_CLASSES,
        "mnist": MNIST_CLASSES,
    }[name]
    return Dataset(
        name=name,
        x_train=_as_images(x_train),
        y_train=np.asarray(y_train, dtype=np.int64).reshape(-1),
        x_test=_as_images(x_test),
        y_test=np.asarray(y_test, dtype=np.int64).reshape(-1),
        class_names=classes,
        source="keras download",
    )


def _download_hint(name: str) -> str:
    if name in _CIFAR:
        spec = _CIFAR[name]
        return (
            f"cannot download {name} (offline?): pass --data-dir with {spec.tarball}, "
            f"its extracted {spec.dir}/, or a class-per-folder image tree"
        )
    files = ", ".join(IDX_FILES)
    if name == "fashion_mnist":
        return (
            "cannot download fashion_mnist (offline?): run apt-get install dataset-fashion-mnist, "
            f"or pass --data-dir with {files}"
        )
    return f"cannot download {name} (offline?): pass --data-dir with {files}"


def _as_images(x: np.ndarray) -> np.ndarray:
    """uint8, contiguous, always 4-D (grayscale gets a channel axis)."""
    x = np.ascontiguousarray(x, dtype=np.uint8)
    return x[..., None] if x.ndim == 3 else x


# --------------------------------------------------------------------------------------------------
# CIFAR python tarballs and extracted batch directories


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR batches that only rebuilds numpy arrays (no arbitrary code)."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        if module == "numpy.core.multiarray":  # old pickles name the pre-2.0 module
            module = "numpy._core.multiarray"
        elif module == "numpy.core.numeric":
            module = "numpy._core.numeric"
        return super().find_class(module, name)


def _load_cifar(name: str, source: _Source) -> Dataset:
    spec = _CIFAR[name]
    assert source.path is not None
    wanted = [*spec.train, spec.test, spec.meta]
    if source.kind == "cifar_tar":
        files = _read_cifar_tar(source.path, spec.dir, set(wanted))
    else:
        try:
            files = {f: (source.path / f).read_bytes() for f in wanted if (source.path / f).is_file()}
        except OSError as exc:
            raise DataError(f"cannot read {source.path}: {exc}") from exc
    missing = [f for f in wanted if f not in files]
    if missing:
        raise DataError(f"{source.path} lacks {', '.join(missing)}: re-download {spec.tarball}")
    batches = {f: _unpickle(files[f], f, source.path) for f in wanted}
    train = [_cifar_batch(batches[f], spec.labels, f, source.path) for f in spec.train]
    x_test, y_test = _cifar_batch(batches[spec.test], spec.labels, spec.test, source.path)
    names = _field(batches[spec.meta], spec.names, spec.meta, source.path)
    class_names = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    y_train = np.concatenate([y for _, y in train])
    for labels in (y_train, y_test):
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise DataError(f"{source.path} has labels outside its {len(class_names)} classes: the files look corrupt")
    return Dataset(
        name=name,
        x_train=np.concatenate([x for x, _ in train]),
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        source=str(source.path),
    )


def _read_cifar_tar(path: Path, folder: str, wanted: set[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r|*") as tf:
            for member in tf:
                parts = _member_parts(member.name)
                if member.isfile() and len(parts) == 2 and parts[0] == folder and parts[1] in wanted:
                    handle = tf.extractfile(member)
                    assert handle is not None
                    files[parts[1]] = handle.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from exc
    return files


def _unpickle(data: bytes, filename: str, where: Path) -> dict:
    try:
        obj = _NumpyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise DataError(f"cannot parse {filename} in {where}: {exc}") from exc
    if not isinstance(obj, dict):
        raise DataError(f"cannot parse {filename} in {where}: not a CIFAR batch")
    return obj


def _field(batch: dict, key: str, filename: str, where: Path) -> Any:
    """A batch entry; python-2 pickles have bytes keys, newer ones str keys."""
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise DataError(f"{filename} in {where} has no {key!r} entry: pass the official CIFAR files")


def _cifar_batch(batch: dict, label_key: str, filename: str, where: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(_field(batch, "data", filename, where), dtype=np.uint8)
    labels = np.asarray(_field(batch, label_key, filename, where), dtype=np.int64).reshape(-1)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise DataError(f"{filename} in {where} has unexpected shapes {data.shape}/{labels.shape}: file corrupt?")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), labels


# --------------------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)


def _idx_paths(folder: Path) -> list[Path] | None:
    """The four IDX files in folder (gzipped or not), or None if any is missing."""
    found = []
    for gz_name in IDX_FILES:
        candidates = [folder / gz_name, folder / gz_name.removesuffix(".gz")]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found


def _load_idx(name: str, folder: Path) -> Dataset:
    paths = _idx_paths(folder) if folder.is_dir() else None
    if paths is None:
        raise DataError(f"no {name} IDX files in {folder}: pass a directory holding {', '.join(IDX_FILES)}")
    x_train, y_train, x_test, y_test = (_read_idx(p, ndim) for p, ndim in zip(paths, (3, 1, 3, 1)))
    classes = FASHION_MNIST_CLASSES if name == "fashion_mnist" else MNIST_CLASSES
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


def _read_idx(path: Path, ndim: int) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------------
# Class-per-folder image trees (directory or tar archive)


def _is_image(parts: tuple[str, ...]) -> bool:
    return (
        len(parts) >= 2
        and Path(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS
        and not any(p.startswith(".") or p in _SKIP_NAMES for p in parts)
    )


def _member_parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in name.split("/") if p not in ("", "."))


def _walk_images(root: Path) -> list[tuple[str, ...]]:
    """Relative paths (as part tuples) of the image files under root, hidden entries skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _SKIP_NAMES]
        rel = Path(dirpath).relative_to(root).parts
        found.extend(rel + (f,) for f in filenames if _is_image(rel + (f,)))
    return found


def _find_layout(files: Iterable[tuple[str, ...]]) -> dict[str, dict[str, list[tuple[str, ...]]]] | None:
    """Map split ("train", optionally "test") -> class name -> image paths, or None if no layout fits.

    Accepts ROOT/train/<class>/* (+ ROOT/test/<class>/*), ROOT/<class>/*, with ROOT being the top or
    reached through directories that each hold exactly one subdirectory.
    """
    subdirs: dict[tuple[str, ...], set[str]] = {}
    images: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for parts in files:
        images.setdefault(parts[:-1], []).append(parts)
        for i in range(len(parts) - 1):
            subdirs.setdefault(parts[:i], set()).add(parts[i])

    def classes(folder: tuple[str, ...]) -> dict[str, list[tuple[str, ...]]]:
        return {c: sorted(images[folder + (c,)]) for c in sorted(subdirs.get(folder, ())) if folder + (c,) in images}

    base: tuple[str, ...] = ()
    while True:
        children = subdirs.get(base, set())
        if "train" in children and classes(base + ("train",)):
            layout = {"train": classes(base + ("train",))}
            if "test" in children:
                layout["test"] = classes(base + ("test",))
            return layout
        if classes(base):
            return {"train": classes(base)}
        if len(children) != 1:
            return None
        base += (next(iter(children)),)


def _read_image_archive(path: Path) -> dict[tuple[str, ...], bytes]:
    """Bytes of every image member of a tar archive, read in one streaming pass."""
    blobs: dict[tuple[str, ...], bytes] = {}
    try:
        with tarfile.open(path, "r|*") as tf:
            for member in tf:
                parts = _member_parts(member.name)
                if member.isfile() and ".." not in parts and _is_image(parts):
                    handle = tf.extractfile(member)
                    assert handle is not None
                    blobs[parts] = handle.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from exc
    return blobs


def _load_images(name: str, path: Path, size: tuple[int, int] | None) -> Dataset:
    """Decode a class-per-folder tree (directory or tar archive) into a Dataset."""
    blobs: dict[tuple[str, ...], bytes] | None = None
    if path.is_dir():
        files = _walk_images(path)
    elif tarfile.is_tarfile(path):
        blobs = _read_image_archive(path)
        files = list(blobs)
    else:
        raise DataError(f"{path} is neither a directory nor a tar archive: pass an image tree or its .tar.gz")
    layout = _find_layout(files)
    if layout is None:
        raise DataError(
            f"no images found in {path}: expected ROOT/train/<class>/*.jpg (optional ROOT/test/<class>/), "
            "ROOT/<class>/*.jpg, or a .tar.gz of such a tree"
        )
    class_names = tuple(layout["train"])
    if len(class_names) < 2:
        raise DataError(f"{path} has images for only {len(class_names)} class folder(s): pass at least 2 classes")
    if "test" in layout and tuple(layout["test"]) != class_names:
        raise DataError(
            f"{path}: test classes {sorted(layout['test'])} differ from train classes {list(class_names)}; "
            "give train/ and test/ the same class folders"
        )
    items: list[tuple[str, int, tuple[str, ...]]] = [
        (split, label, parts)
        for split, by_class in layout.items()
        for label, cls in enumerate(class_names)
        for parts in by_class[cls]
    ]
    refs: list[ImageRef] = [path.joinpath(*p) if blobs is None else blobs[p] for _, _, p in items]
    x, ok = _decode_all(refs, size, ["/".join(p) for _, _, p in items], path)
    splits = np.array([s for s, _, _ in items])
    labels = np.array([lbl for _, lbl, _ in items], dtype=np.int64)
    train, test = ok & (splits == "train"), ok & (splits == "test")
    return Dataset(
        name=name,
        x_train=x if train.all() else x[train],  # no copy in the common case
        y_train=labels[train],
        x_test=x[test] if "test" in layout else None,
        y_test=labels[test] if "test" in layout else None,
        class_names=class_names,
        source=str(path),
        skipped_files=int((~ok).sum()),
    )


def _decode_all(
    refs: Sequence[ImageRef], size: tuple[int, int] | None, names: Sequence[str], where: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Decode images into one (N, H, W, C) array; returns it with a mask of the readable ones.

    The headers of an evenly spread sample decide the mode: grayscale ("L") if all are grayscale,
    else RGB. Without `size`, images take the most common size: guessed from the sample, and decoded
    again in the rare case the full count disagrees.
    """
    step = max(1, len(refs) // _MODE_SAMPLE)
    sample = [h for h in map(_read_header, refs[::step]) if h is not None]
    if not sample:
        raise DataError(
            f"no readable image among those sampled in {where} (first: {names[0]}): the data looks corrupt"
        )
    mode = "L" if all(m in _GRAY_MODES for _, m in sample) else "RGB"
    target = size or _most_common(np.array([s for s, _ in sample]))
    out, ok, native = _decode_into_array(refs, mode, target)
    if size is None and ok.any() and _most_common(native[ok]) != target:
        out, ok, _ = _decode_into_array(refs, mode, _most_common(native[ok]))
    bad = int((~ok).sum())
    if bad * 2 > len(refs):
        first = names[int(np.flatnonzero(~ok)[0])]
        raise DataError(
            f"{bad} of {len(refs)} images in {where} are unreadable (first: {first}): the data looks corrupt"
        )
    return out, ok


def _most_common(sizes: np.ndarray) -> tuple[int, int]:
    """Most common (height, width) among rows of (width, height) pairs."""
    (width, height), _ = Counter(map(tuple, sizes.tolist())).most_common(1)[0]
    return height, width


def _decode_into_array(
    refs: Sequence[ImageRef], mode: str, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode all refs at `size`: (images, readable mask, native (width, height) per image)."""
    out = np.empty((len(refs), size[0], size[1], 1 if mode == "L" else 3), dtype=np.uint8)
    ok = np.zeros(len(refs), dtype=bool)
    native = np.zeros((len(refs), 2), dtype=np.int64)

    def decode_into(i: int) -> None:
        try:
            out[i], native[i] = _decode_image(refs[i], mode, size)
        except Exception:  # any decoder failure of one untrusted file: skip and count it
            return
        ok[i] = True

    _parallel_for(decode_into, len(refs))
    return out, ok, native


def _read_header(ref: ImageRef) -> tuple[tuple[int, int], str] | None:
    """((width, height), mode) from the image header, or None if the file is unreadable."""
    try:
        with Image.open(ref if isinstance(ref, Path) else io.BytesIO(ref)) as im:
            return im.size, im.mode
    except Exception:  # unreadable/corrupt file: counted when decoding
        return None


def _decode_image(ref: ImageRef, mode: str, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one image to uint8 (H, W, C), C = 1 for mode "L" else 3; also its native (width, height)."""
    height, width = size
    with Image.open(ref if isinstance(ref, Path) else io.BytesIO(ref)) as im:
        native = im.size
        if im.format == "JPEG":
            im.draft(mode, (width, height))  # let libjpeg downscale big photos cheaply
        im.load()
        im = _convert(im, mode)
        if im.size != (width, height):
            im = im.resize((width, height), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return (arr[..., None] if arr.ndim == 2 else arr), native


def _convert(im: Image.Image, mode: str) -> Image.Image:
    if im.mode.startswith("I;16"):  # 16-bit grayscale: scale to 8 bits instead of clipping
        im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8))
    elif im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    return im if im.mode == mode else im.convert(mode)


def _parallel_for(fn: Callable[[int], None], n: int) -> None:
    """Call fn(i) for i in range(n) in a small thread pool, in chunks (PIL releases the GIL while decoding)."""
    chunk = max(1, min(1024, math.ceil(n / (4 * _MAX_WORKERS))))

    def run(start: int) -> None:
        for i in range(start, min(start + chunk, n)):
            fn(i)

    with ThreadPoolExecutor(max_workers=_MAX_WORKERS) as pool:
        list(pool.map(run, range(0, n, chunk)))


def _resize_dataset(ds: Dataset, size: tuple[int, int] | None) -> Dataset:
    """Resize all images of a loaded data set (no-op when size is None or already matches)."""
    if size is None or ds.x_train.shape[1:3] == size:
        return ds
    return Dataset(
        name=ds.name,
        x_train=_resize_array(ds.x_train, size),
        y_train=ds.y_train,
        x_test=None if ds.x_test is None else _resize_array(ds.x_test, size),
        y_test=ds.y_test,
        class_names=ds.class_names,
        source=ds.source,
        skipped_files=ds.skipped_files,
    )


def _resize_array(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    out = np.empty((len(x), height, width, x.shape[3]), dtype=np.uint8)

    def resize_into(i: int) -> None:
        im = Image.fromarray(x[i, :, :, 0] if x.shape[3] == 1 else x[i])
        out[i] = np.asarray(im.resize((width, height), Image.Resampling.BILINEAR)).reshape(out.shape[1:])

    _parallel_for(resize_into, len(x))
    return out


# --------------------------------------------------------------------------------------------------
# Cache


def _fingerprint(path: Path) -> list[int]:
    """File: [size, mtime_ns]. Directory: [file count, total size, newest mtime_ns] over the whole tree."""
    st = path.stat()
    if not path.is_dir():
        return [st.st_size, st.st_mtime_ns]
    count, total, newest = 0, 0, st.st_mtime_ns
    for dirpath, dirnames, filenames in os.walk(path):
        for entry, is_file in [(d, False) for d in dirnames] + [(f, True) for f in filenames]:
            try:
                est = os.stat(os.path.join(dirpath, entry))
            except OSError:
                continue
            newest = max(newest, est.st_mtime_ns)
            count += is_file
            total += est.st_size if is_file else 0
    return [count, total, newest]


def _cache_file(
    cache_dir: str | os.PathLike | None, name: str, source: _Source, size: tuple[int, int] | None
) -> Path:
    assert source.path is not None
    key = json.dumps(
        {
            "version": _CACHE_VERSION,
            "name": name,
            "kind": source.kind,
            "path": str(source.path),
            "fingerprint": _fingerprint(source.path),
            "image_size": size,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return folder / f"{name}-{digest}.npz"


def _read_cache(path: Path, name: str, source: str) -> Dataset | None:
    """The cached Dataset, or None if there is no usable cache file (a corrupt one is ignored)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        x_train, y_train = arrays["x_train"], arrays["y_train"]
        x_test, y_test = arrays.get("x_test"), arrays.get("y_test")
        valid = (
            x_train.dtype == np.uint8
            and x_train.ndim == 4
            and y_train.dtype == np.int64
            and y_train.shape == (len(x_train),)
            and (x_test is None) == (y_test is None)
            and (x_test is None or (x_test.shape[1:] == x_train.shape[1:] and y_test.shape == (len(x_test),)))
        )
        if not valid:
            raise ValueError("unexpected array shapes or types")
        return Dataset(
            name=name,
            x_train=x_train,
            y_train=y_train,
            x_test=x_test,
            y_test=y_test,
            class_names=tuple(str(c) for c in arrays["class_names"]),
            source=source,
            skipped_files=int(arrays["skipped_files"]),
        )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        warnings.warn(f"ignoring unreadable cache file {path} ({exc}); rebuilding it", stacklevel=3)
        return None


def _write_cache(path: Path, ds: Dataset) -> None:
    """Save ds atomically (temp file + os.replace); a failure only warns."""
    arrays = {
        "x_train": ds.x_train,
        "y_train": ds.y_train,
        "class_names": np.array(ds.class_names, dtype=str),
        "skipped_files": np.int64(ds.skipped_files),
    }
    if ds.x_test is not None and ds.y_test is not None:
        arrays.update(x_test=ds.x_test, y_test=ds.y_test)
    tmp = path.with_name(f".{path.stem}-{uuid.uuid4().hex[:12]}.tmp")  # same dir: os.replace is atomic
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        warnings.warn(f"cannot write data cache in {path.parent} ({exc}); continuing without it", stacklevel=3)
        with contextlib.suppress(OSError):
            tmp.unlink()


# --------------------------------------------------------------------------------------------------
# Splits


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
) -> Splits:
    """Split a Dataset into train/val/test, stratified by class and deterministic.

    1. test: the official test split if there is one, else a stratified `test_fraction` carved with a
       fixed seed (independent of seed, subset and val_fraction);
    2. subset of the rest: None/1.0 = all, a float in (0, 1] = fraction, an int >= #classes = number
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
