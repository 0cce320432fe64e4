"""Reading class-per-folder image trees, as a directory or a tar archive (the `folder` data set, and
CIFAR given as images).

Layouts: ROOT/train/<class>/*.jpg (with an optional ROOT/test/<class>/...), or ROOT/<class>/*.jpg,
ROOT being the top or reached through folders that each hold exactly one subfolder. Images are
resized to `--image-size` or to the most common size; unreadable ones are skipped and counted.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Dataset
from .imaging import (
    GRAY_MODES,
    IMAGE_EXTENSIONS,
    ImageRef,
    decode_into_array,
    most_common_size,
    read_header,
)
from .sources import Reader

_MODE_SAMPLE = 300  # images whose mode decides grayscale vs RGB for a folder data set
_SKIP_NAMES = frozenset({"__MACOSX"})

Layout = dict[str, dict[str, list[tuple[str, ...]]]]  # split -> class name -> image paths (as parts)


def image_tree_reader(name: str, path: Path) -> Reader:
    """A reader of the image tree (folder or tar archive) at `path`, as data set `name`."""
    return Reader("images", path, lambda size: load_image_tree(name, path, size))


def has_image_tree(path: Path) -> bool:
    """Whether the folder `path` holds a class-per-folder image tree."""
    return find_layout(walk_images(path)) is not None


def is_image(parts: tuple[str, ...]) -> bool:
    return (
        len(parts) >= 2
        and Path(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS
        and not any(p.startswith(".") or p in _SKIP_NAMES for p in parts)
    )


def member_parts(name: str) -> tuple[str, ...]:
    """The path components of a tar member's name."""
    return tuple(p for p in name.split("/") if p not in ("", "."))


def walk_images(root: Path) -> list[tuple[str, ...]]:
    """Relative paths (as part tuples) of the image files under root, hidden entries skipped. Links to
    folders are followed (a shared copy of train/ or test/ linked in), each folder read once."""
    found = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link back up the tree, or two links to one folder
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _SKIP_NAMES]
        rel = Path(dirpath).relative_to(root).parts
        found.extend(rel + (f,) for f in filenames if is_image(rel + (f,)))
    return found


def find_layout(files: Iterable[tuple[str, ...]]) -> Layout | None:
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


def printable_names(folders: tuple[str, ...]) -> tuple[str, ...]:
    """Class names from folder names as text: a name whose bytes are not UTF-8 (Python keeps them as
    surrogates) gets U+FFFD for them, so that it can be written in JSON, CSV and HTML."""
    names: list[str] = []
    for folder in folders:
        name = folder.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        while name in names:  # two folders that differ only in their undecodable bytes
            name += "'"
        names.append(name)
    return tuple(names)


def read_image_archive(path: Path) -> dict[tuple[str, ...], bytes]:
    """Bytes of every image member of a tar archive, read in one streaming pass."""
    blobs: dict[tuple[str, ...], bytes] = {}
    try:
        with tarfile.open(path, "r|*") as tf:
            for member in tf:
                parts = member_parts(member.name)
                if member.isfile() and ".." not in parts and is_image(parts):
                    handle = tf.extractfile(member)
                    assert handle is not None
                    blobs[parts] = handle.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from exc
    return blobs


def load_image_tree(name: str, path: Path, size: tuple[int, int] | None) -> Dataset:
    """Decode a class-per-folder tree (directory or tar archive) into a Dataset."""
    blobs: dict[tuple[str, ...], bytes] | None = None
    if path.is_dir():
        files = walk_images(path)
    elif tarfile.is_tarfile(path):
        blobs = read_image_archive(path)
        files = list(blobs)
    else:
        raise DataError(f"{path} is neither a directory nor a tar archive: pass an image tree or its .tar.gz")
    layout = find_layout(files)
    if layout is None:
        raise DataError(
            f"no images found in {path}: expected ROOT/train/<class>/*.jpg (optional ROOT/test/<class>/), "
            "ROOT/<class>/*.jpg, or a .tar.gz of such a tree"
        )
    folders = tuple(layout["train"])
    class_names = printable_names(folders)
    if len(class_names) < 2:
        raise DataError(f"{path} has images for only {len(class_names)} class folder(s): pass at least 2 classes")
    if "test" in layout and tuple(layout["test"]) != folders:
        raise DataError(
            f"{path}: test classes {list(printable_names(tuple(layout['test'])))} differ from train classes "
            f"{list(class_names)}; give train/ and test/ the same class folders"
        )
    items: list[tuple[str, int, tuple[str, ...]]] = [
        (split, label, parts)
        for split, by_class in layout.items()
        for label, cls in enumerate(folders)
        for parts in by_class[cls]
    ]
    refs: list[ImageRef] = [path.joinpath(*p) if blobs is None else blobs[p] for _, _, p in items]
    x, ok = decode_all(refs, size, ["/".join(p) for _, _, p in items], path)
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


def decode_all(
    refs: Sequence[ImageRef], size: tuple[int, int] | None, names: Sequence[str], where: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Decode images into one (N, H, W, C) array; returns it with a mask of the readable ones.

    The headers of an evenly spread sample decide the mode: grayscale ("L") if all are grayscale,
    else RGB. Without `size`, images take the most common size: guessed from the sample, and decoded
    again in the rare case the full count disagrees.
    """
    step = max(1, len(refs) // _MODE_SAMPLE)
    sample = [h for h in map(read_header, refs[::step]) if h is not None]
    if not sample:
        raise DataError(
            f"no readable image among those sampled in {where} (first: {names[0]}): the data looks corrupt"
        )
    mode = "L" if all(m in GRAY_MODES for _, m in sample) else "RGB"
    target = size or most_common_size(np.array([s for s, _ in sample]))
    out, ok, native = decode_into_array(refs, mode, target)
    if size is None and ok.any() and most_common_size(native[ok]) != target:
        out, ok, _ = decode_into_array(refs, mode, most_common_size(native[ok]))
    bad = int((~ok).sum())
    if bad * 2 > len(refs):
        first = names[int(np.flatnonzero(~ok)[0])]
        raise DataError(
            f"{bad} of {len(refs)} images in {where} are unreadable (first: {first}): the data looks corrupt"
        )
    return out, ok
