"""Decoding and resizing image files (PIL), shared by the image-tree source and `predict`."""

from __future__ import annotations

import io
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .dataset import Dataset

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"})
GRAY_MODES = frozenset({"1", "L", "LA", "I;16", "I;16L", "I;16B", "I;16N"})
_MAX_WORKERS = max(2, min(4, os.cpu_count() or 2))

ImageRef = Path | bytes  # an image file on disk, or its bytes read from an archive


def read_header(ref: ImageRef) -> tuple[tuple[int, int], str] | None:
    """((width, height), mode) from the image header, or None if the file is unreadable."""
    try:
        with Image.open(ref if isinstance(ref, Path) else io.BytesIO(ref)) as im:
            return im.size, im.mode
    except Exception:  # unreadable/corrupt file: counted when decoding
        return None


def decode_image(ref: ImageRef, mode: str, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one image to uint8 (H, W, C), C = 1 for mode "L" else 3; also its native (width, height)."""
    height, width = size
    with Image.open(ref if isinstance(ref, Path) else io.BytesIO(ref)) as im:
        native = im.size
        if im.format == "JPEG":
            im.draft(mode, (width, height))  # let libjpeg downscale big photos cheaply
        im.load()
        im = convert(im, mode)
        if im.size != (width, height):
            im = im.resize((width, height), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return (arr[..., None] if arr.ndim == 2 else arr), native


def convert(im: Image.Image, mode: str) -> Image.Image:
    """`im` in `mode` ("L" or "RGB"): 16-bit grayscale scaled to 8 bits, palette transparency kept."""
    if im.mode.startswith("I;16"):  # 16-bit grayscale: scale to 8 bits instead of clipping
        im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8))
    elif im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    return im if im.mode == mode else im.convert(mode)


def decode_into_array(
    refs: Sequence[ImageRef], mode: str, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode all refs at `size`: (images, readable mask, native (width, height) per image)."""
    out = np.empty((len(refs), size[0], size[1], 1 if mode == "L" else 3), dtype=np.uint8)
    ok = np.zeros(len(refs), dtype=bool)
    native = np.zeros((len(refs), 2), dtype=np.int64)

    def decode_into(i: int) -> None:
        try:
            out[i], native[i] = decode_image(refs[i], mode, size)
        except Exception:  # any decoder failure of one untrusted file: skip and count it
            return
        ok[i] = True

    parallel_for(decode_into, len(refs))
    return out, ok, native


def most_common_size(sizes: np.ndarray) -> tuple[int, int]:
    """Most common (height, width) among rows of (width, height) pairs."""
    (width, height), _ = Counter(map(tuple, sizes.tolist())).most_common(1)[0]
    return height, width


def parallel_for(fn: Callable[[int], None], n: int) -> None:
    """Call fn(i) for i in range(n) in a small thread pool, in chunks (PIL releases the GIL while decoding)."""
    chunk = max(1, min(1024, math.ceil(n / (4 * _MAX_WORKERS))))

    def run(start: int) -> None:
        for i in range(start, min(start + chunk, n)):
            fn(i)

    with ThreadPoolExecutor(max_workers=_MAX_WORKERS) as pool:
        list(pool.map(run, range(0, n, chunk)))


def resize_dataset(ds: Dataset, size: tuple[int, int] | None) -> Dataset:
    """Resize all images of a loaded data set (no-op when size is None or already matches)."""
    if size is None or ds.x_train.shape[1:3] == size:
        return ds
    return Dataset(
        name=ds.name,
        x_train=resize_array(ds.x_train, size),
        y_train=ds.y_train,
        x_test=None if ds.x_test is None else resize_array(ds.x_test, size),
        y_test=ds.y_test,
        class_names=ds.class_names,
        source=ds.source,
        skipped_files=ds.skipped_files,
    )


def resize_array(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    out = np.empty((len(x), height, width, x.shape[3]), dtype=np.uint8)

    def resize_into(i: int) -> None:
        im = Image.fromarray(x[i, :, :, 0] if x.shape[3] == 1 else x[i])
        out[i] = np.asarray(im.resize((width, height), Image.Resampling.BILINEAR)).reshape(out.shape[1:])

    parallel_for(resize_into, len(x))
    return out
