"""A cache of decoded local data sets (.npz), keyed by the source's path, its fingerprint and the size."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .dataset import Dataset

_CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """$CIFAR_AUTOML_CACHE if set, else ~/.cache/cifar-automl."""
    env = os.environ.get("CIFAR_AUTOML_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cifar-automl"


def fingerprint(path: Path) -> list[int]:
    """File: [size, mtime_ns]. Directory: [file count, total size, newest mtime_ns] over the whole tree."""
    st = path.stat()
    if not path.is_dir():
        return [st.st_size, st.st_mtime_ns]
    count, total, newest = 0, 0, st.st_mtime_ns
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(path, followlinks=True):  # as images.walk_images reads it
        if os.path.realpath(dirpath) in seen:
            dirnames[:] = []
            continue
        seen.add(os.path.realpath(dirpath))
        for entry, is_file in [(d, False) for d in dirnames] + [(f, True) for f in filenames]:
            try:
                est = os.stat(os.path.join(dirpath, entry))
            except OSError:
                continue
            newest = max(newest, est.st_mtime_ns)
            count += is_file
            total += est.st_size if is_file else 0
    return [count, total, newest]


def cache_file(
    cache_dir: str | os.PathLike | None, name: str, kind: str, path: Path, size: tuple[int, int] | None
) -> Path:
    key = json.dumps(
        {
            "version": _CACHE_VERSION,
            "name": name,
            "kind": kind,
            "path": str(path),
            "fingerprint": fingerprint(path),
            "image_size": size,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return folder / f"{name}-{digest}.npz"


def read_cache(path: Path, name: str, source: str) -> Dataset | None:
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


def write_cache(path: Path, ds: Dataset) -> None:
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
