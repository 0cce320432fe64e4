"""CIFAR-10 and CIFAR-100: the official python archives (the .tar.gz, its folder or its extracted
batches), a class-per-folder image tree, or Keras' download when no `--data-dir` is given."""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .dataset import Dataset
from .download import keras_reader
from .images import has_image_tree, image_tree_reader, member_parts
from .imaging import resize_dataset
from .sources import Reader, register_dataset

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


@dataclass(frozen=True)
class CifarSpec:
    """Layout of an official CIFAR python archive: <dir>/<batch files>, pickled dicts."""

    name: str
    dir: str
    tarball: str
    train: tuple[str, ...]
    test: str
    meta: str
    labels: str  # label key in the batches
    names: str  # class-name key in the meta file
    classes: tuple[str, ...]  # of a download


SPECS = {
    "cifar10": CifarSpec(
        name="cifar10", dir="cifar-10-batches-py", tarball="cifar-10-python.tar.gz",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)), test="test_batch", meta="batches.meta",
        labels="labels", names="label_names", classes=CIFAR10_CLASSES,
    ),
    "cifar100": CifarSpec(
        name="cifar100", dir="cifar-100-python", tarball="cifar-100-python.tar.gz", train=("train",),
        test="test", meta="meta", labels="fine_labels", names="fine_label_names", classes=CIFAR100_CLASSES,
    ),
}


@register_dataset("cifar10")
def locate_cifar10(data_dir: Path | None) -> Reader:
    return locate(SPECS["cifar10"], data_dir)


@register_dataset("cifar100")
def locate_cifar100(data_dir: Path | None) -> Reader:
    return locate(SPECS["cifar100"], data_dir)


def locate(spec: CifarSpec, path: Path | None) -> Reader:
    """Which reader a CIFAR `--data-dir` needs, decided without decoding anything."""
    if path is None:
        hint = f"pass --data-dir with {spec.tarball}, its extracted {spec.dir}/, or a class-per-folder image tree"
        return keras_reader(spec.name, spec.classes, hint)
    if path.is_dir():
        if (path / spec.tarball).is_file():
            return _reader(spec, "cifar_tar", path / spec.tarball)
        for folder in (path, path / spec.dir):
            if (folder / spec.meta).is_file() and (folder / spec.test).is_file():
                return _reader(spec, "cifar_dir", folder)
        if has_image_tree(path):
            return image_tree_reader(spec.name, path)
    elif tarfile.is_tarfile(path):
        top = _tar_top_dirs(path)
        if spec.dir in top:
            return _reader(spec, "cifar_tar", path)
        other = next((s.name for s in SPECS.values() if s.name != spec.name and s.dir in top), None)
        if other is not None:
            raise DataError(f"{path} holds {other}, not {spec.name}: pass --dataset {other}")
        return image_tree_reader(spec.name, path)
    raise DataError(
        f"no {spec.name} data in {path}: pass {spec.tarball}, its extracted {spec.dir}/, "
        "or a class-per-folder image tree (ROOT/train/<class>/*.png)"
    )


def _reader(spec: CifarSpec, kind: str, path: Path) -> Reader:
    return Reader(kind, path, lambda size: resize_dataset(load_cifar(spec, kind, path), size))


def _tar_top_dirs(path: Path, limit: int = 20) -> set[str]:
    """First path components of the first few members of a tar archive."""
    top: set[str] = set()
    try:
        with tarfile.open(path, "r|*") as tf:
            for i, member in enumerate(tf):
                parts = member_parts(member.name)
                if parts:
                    top.add(parts[0])
                if i + 1 >= limit:
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from exc
    return top


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


def load_cifar(spec: CifarSpec, kind: str, path: Path) -> Dataset:
    """Read the batches of an official archive (`kind` "cifar_tar") or extracted folder ("cifar_dir")."""
    wanted = [*spec.train, spec.test, spec.meta]
    if kind == "cifar_tar":
        files = _read_cifar_tar(path, spec.dir, set(wanted))
    else:
        try:
            files = {f: (path / f).read_bytes() for f in wanted if (path / f).is_file()}
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc}") from exc
    missing = [f for f in wanted if f not in files]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}: re-download {spec.tarball}")
    batches = {f: _unpickle(files[f], f, path) for f in wanted}
    train = [_cifar_batch(batches[f], spec.labels, f, path) for f in spec.train]
    x_test, y_test = _cifar_batch(batches[spec.test], spec.labels, spec.test, path)
    names = _field(batches[spec.meta], spec.names, spec.meta, path)
    class_names = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    y_train = np.concatenate([y for _, y in train])
    for labels in (y_train, y_test):
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise DataError(f"{path} has labels outside its {len(class_names)} classes: the files look corrupt")
    return Dataset(
        name=spec.name,
        x_train=np.concatenate([x for x, _ in train]),
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        source=str(path),
    )


def _read_cifar_tar(path: Path, folder: str, wanted: set[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r|*") as tf:
            for member in tf:
                parts = member_parts(member.name)
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
