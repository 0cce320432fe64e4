"""The registry of data sources, and `load_dataset`, which reads one through the cache.

A data set is one module: a function decorated with `@register_dataset("name")` that looks at
`--data-dir` (None: nothing local was given) and returns a `Reader` saying how the data will be read,
without decoding anything yet. Readers of local files are cached (see `cache.py`); a download is
kept by whoever downloads it. Example, a source of random images::

    @register_dataset("noise")
    def noise(data_dir):
        return Reader("generated", None, lambda size: Dataset("noise", x, y, None, None, names, "generated"))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .cache import cache_file, read_cache, write_cache
from .dataset import Dataset


@dataclass(frozen=True)
class Reader:
    """How one data set will be read: `read(size)` decodes it at `size` ((height, width), or None for
    its own size). `path`, the local file or folder read, keys the cache; None (a download, generated
    data) is not cached."""

    kind: str  # e.g. "cifar_tar", "idx", "images", "keras": part of the cache key
    path: Path | None
    read: Callable[[tuple[int, int] | None], Dataset]


Locator = Callable[[Path | None], Reader]
SOURCES: dict[str, Locator] = {}


def register_dataset(name: str) -> Callable[[Locator], Locator]:
    """Register `locate(data_dir) -> Reader` as the data set `name` (`--dataset name`)."""

    def deco(locate: Locator) -> Locator:
        SOURCES[name] = locate
        return locate

    return deco


def dataset_names() -> tuple[str, ...]:
    return tuple(SOURCES)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    image_size: int | tuple[int, int] | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> Dataset:
    """Load a data set by name into memory.

    `data_dir` points at local files (required for "folder"); without it the source's own default is
    used (a Keras download; Debian's /usr/share/datasets/fashion-mnist for fashion_mnist). `image_size`
    is an int (square) or (height, width); images are resized to it, otherwise folder images take the
    most common size. Local decodes are cached as .npz under `cache_dir` (default:
    `cache.default_cache_dir()`).
    """
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r}: pass one of {', '.join(SOURCES)}")
    size = normalise_size(image_size)
    path = None
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.exists():
            raise DataError(f"data dir not found: {path}")
        path = path.resolve()
    reader = SOURCES[name](path)
    if reader.path is None or not use_cache:
        return reader.read(size)
    cached_at = cache_file(cache_dir, name, reader.kind, reader.path, size)
    cached = read_cache(cached_at, name, str(reader.path))
    if cached is not None:
        return cached
    ds = reader.read(size)
    write_cache(cached_at, ds)
    return ds


def normalise_size(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
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
