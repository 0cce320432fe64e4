"""Folder trees: class-per-folder image trees, as directories and tar archives."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_automl.data import (
    images,
    load_dataset,
)
from cifar_automl.errors import DataError

from .files import jpeg_bytes, pixels, tar_dir, write_class_tree

REPO = Path(__file__).resolve().parents[2]
REAL_ARCHIVE = REPO.parent / "shared/datasets/cifar10-train-jpeg.tar.gz"


def test_folder_train_and_test(tmp_path: Path) -> None:
    train = write_class_tree(tmp_path / "train", {"dog": 3, "cat": 2})
    test = write_class_tree(tmp_path / "test", {"dog": 1, "cat": 2})
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
    write_class_tree(tmp_path, {"a": 2, "b": 2, "c": 1}, ext="JPG")
    ds = load_dataset("folder", tmp_path, use_cache=False)
    assert ds.class_names == ("a", "b", "c") and ds.y_train.tolist() == [0, 0, 1, 1, 2]
    assert ds.x_test is None and ds.y_test is None


def test_folder_nested_single_subdir_ignores_hidden_entries(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "unpacked" / "my-images" / "train", {"x": 2, "y": 2})
    write_class_tree(tmp_path / "unpacked" / "__MACOSX" / "my-images" / "train", {"x": 1, "y": 1, "z": 1})
    write_class_tree(tmp_path / "unpacked" / "my-images" / "train" / ".thumbs", {"q": 1})
    (tmp_path / "unpacked" / "README.txt").write_text("notes")
    ds = load_dataset("folder", tmp_path / "unpacked", use_cache=False)
    assert ds.class_names == ("x", "y") and len(ds.x_train) == 4 and ds.x_test is None


def test_folder_tar_archive_matches_directory(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "tree" / "train", {"cat": 3, "dog": 2})
    write_class_tree(tmp_path / "tree" / "test", {"cat": 1, "dog": 1})
    archive = tar_dir(tmp_path / "tree", tmp_path / "images.tgz", "images")
    from_dir = load_dataset("folder", tmp_path / "tree", use_cache=False)
    from_tar = load_dataset("folder", archive, use_cache=False)
    assert from_tar.class_names == from_dir.class_names
    np.testing.assert_array_equal(from_tar.x_train, from_dir.x_train)
    np.testing.assert_array_equal(from_tar.y_train, from_dir.y_train)
    assert from_tar.x_test is not None and from_dir.x_test is not None
    np.testing.assert_array_equal(from_tar.x_test, from_dir.x_test)


def test_mixed_sizes_take_most_common_unless_image_size_given(tmp_path: Path) -> None:
    write_class_tree(tmp_path, {"a": 2, "b": 2}, size=(6, 8))
    Image.fromarray(pixels(9, (10, 10))).save(tmp_path / "b" / "odd.png")
    assert load_dataset("folder", tmp_path, use_cache=False).x_train.shape == (5, 6, 8, 3)
    assert load_dataset("folder", tmp_path, image_size=5, use_cache=False).x_train.shape == (5, 5, 5, 3)
    assert load_dataset("folder", tmp_path, image_size=(4, 7), use_cache=False).x_train.shape == (5, 4, 7, 3)
    with pytest.raises(DataError, match="image size"):
        load_dataset("folder", tmp_path, image_size=0, use_cache=False)


def test_most_common_size_beyond_the_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "_MODE_SAMPLE", 1)  # the sample is the first image only: a 5x5 one
    write_class_tree(tmp_path, {"a": 2, "b": 4}, size=(6, 8))
    for i in range(3):
        Image.fromarray(pixels(200 + i, (5, 5))).save(tmp_path / "a" / f"0{i}.png")
    ds = load_dataset("folder", tmp_path, use_cache=False)
    assert ds.x_train.shape == (9, 6, 8, 3)


def test_grayscale_folder_gives_one_channel(tmp_path: Path) -> None:
    values = write_class_tree(tmp_path, {"a": 2, "b": 2}, mode="L")
    ds = load_dataset("folder", tmp_path, use_cache=False)
    assert ds.x_train.shape == (4, 6, 8, 1)
    assert ds.x_train[:, 0, 0, 0].tolist() == values["a"] + values["b"]


def test_corrupt_images_are_skipped_and_counted(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(4):
            (tmp_path / cls / f"{i}.jpg").write_bytes(jpeg_bytes(50 * i))
    (tmp_path / "a" / "garbage.jpg").write_bytes(b"not an image at all")
    (tmp_path / "b" / "truncated.jpeg").write_bytes(jpeg_bytes(7)[:200])
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
    write_class_tree(tmp_path, {"a": 1, "b": 1})
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
    write_class_tree(tmp_path / "one", {"only": 2, "empty": 0})
    with pytest.raises(DataError, match="at least 2 classes"):
        load_dataset("folder", tmp_path / "one", use_cache=False)
    write_class_tree(tmp_path / "mismatch" / "train", {"a": 1, "b": 1})
    write_class_tree(tmp_path / "mismatch" / "test", {"a": 1, "c": 1})
    with pytest.raises(DataError, match="test classes"):
        load_dataset("folder", tmp_path / "mismatch", use_cache=False)
    (tmp_path / "file.zip").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="neither a directory nor a tar"):
        load_dataset("folder", tmp_path / "file.zip", use_cache=False)


def test_empty_class_folders_are_ignored(tmp_path: Path) -> None:
    write_class_tree(tmp_path, {"a": 2, "b": 1, "c": 0})
    ds = load_dataset("folder", tmp_path, use_cache=False)
    assert ds.class_names == ("a", "b")


def test_linked_train_and_test_folders_are_followed(tmp_path: Path) -> None:
    """A data folder whose train/ and test/ are symbolic links to a shared copy (and a link loop)."""
    write_class_tree(tmp_path / "shared" / "train", {"a": 3, "b": 2})
    write_class_tree(tmp_path / "shared" / "test", {"a": 1, "b": 1})
    root = tmp_path / "mine"
    root.mkdir()
    (root / "train").symlink_to(tmp_path / "shared" / "train", target_is_directory=True)
    (root / "test").symlink_to(tmp_path / "shared" / "test", target_is_directory=True)
    (tmp_path / "shared" / "train" / "a" / "loop").symlink_to(tmp_path / "shared", target_is_directory=True)
    ds = load_dataset("folder", root, cache_dir=tmp_path / "cache")
    assert len(ds.x_train) == 5 and ds.x_test is not None and len(ds.x_test) == 2


def test_a_class_folder_whose_name_is_not_utf8_gets_a_printable_name(tmp_path: Path) -> None:
    import json

    write_class_tree(tmp_path / "imgs", {"a": 2, "b": 2})
    os.rename(tmp_path / "imgs" / "b", os.fsencode(tmp_path / "imgs") + b"/caf\xe9")  # Latin-1 bytes
    ds = load_dataset("folder", tmp_path / "imgs", cache_dir=tmp_path / "cache")
    assert ds.class_names == ("a", "caf\ufffd") and len(ds.x_train) == 4
    json.dumps(list(ds.class_names), ensure_ascii=False).encode("utf-8")  # writable as UTF-8
