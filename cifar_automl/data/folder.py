"""Any class-per-folder image tree: `--dataset folder --data-dir ROOT` (or ROOT.tar.gz)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .images import image_tree_reader
from .sources import Reader, register_dataset


@register_dataset("folder")
def locate_folder(data_dir: Path | None) -> Reader:
    if data_dir is None:
        raise DataError("--dataset folder needs --data-dir: pass a class-per-folder image tree or its .tar.gz")
    return image_tree_reader("folder", data_dir)
