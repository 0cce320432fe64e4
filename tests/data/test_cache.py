"""The cache of decoded local data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_automl.data import (
    default_cache_dir,
    imaging,
    load_dataset,
)

from .files import idx_arrays, pixels, write_class_tree, write_idx_dir

REPO = Path(__file__).resolve().parents[2]
REAL_ARCHIVE = REPO.parent / "shared/datasets/cifar10-train-jpeg.tar.gz"


def test_cache_hit_skips_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_class_tree(tmp_path / "imgs" / "train", {"a": 2, "b": 3})
    write_class_tree(tmp_path / "imgs" / "test", {"a": 1, "b": 1})
    cache = tmp_path / "cache"
    first = load_dataset("folder", tmp_path / "imgs", cache_dir=cache)
    assert [p.name.startswith("folder-") and p.suffix == ".npz" for p in cache.iterdir()] == [True]

    def no_decode(*args: object) -> None:
        raise AssertionError("decoded despite the cache")

    monkeypatch.setattr(imaging, "decode_image", no_decode)
    second = load_dataset("folder", tmp_path / "imgs", cache_dir=cache)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_train, second.y_train)
    assert second.x_test is not None and first.x_test is not None
    np.testing.assert_array_equal(first.x_test, second.x_test)
    assert second.class_names == first.class_names and second.source == first.source


def test_cache_key_changes_with_files_and_size(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "imgs", {"a": 2, "b": 2})
    cache = tmp_path / "cache"
    assert len(load_dataset("folder", tmp_path / "imgs", cache_dir=cache).x_train) == 4
    Image.fromarray(pixels(3)).save(tmp_path / "imgs" / "b" / "new.png")
    assert len(load_dataset("folder", tmp_path / "imgs", cache_dir=cache).x_train) == 5
    assert load_dataset("folder", tmp_path / "imgs", image_size=3, cache_dir=cache).x_train.shape[1:3] == (3, 3)
    assert len(list(cache.glob("*.npz"))) == 3


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    write_idx_dir(tmp_path / "idx", idx_arrays())
    cache = tmp_path / "cache"
    first = load_dataset("mnist", tmp_path / "idx", cache_dir=cache)
    (cache_file,) = cache.glob("mnist-*.npz")
    cache_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="ignoring unreadable cache file"):
        second = load_dataset("mnist", tmp_path / "idx", cache_dir=cache)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    with np.load(cache_file) as npz:  # rewritten and valid again
        assert npz["x_train"].shape == (6, 28, 28, 1)
    assert not list(cache.glob("*.tmp"))


def test_unwritable_cache_dir_only_warns(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "imgs", {"a": 1, "b": 1})
    (tmp_path / "blocker").write_text("a file where the cache dir should be")
    with pytest.warns(UserWarning, match="cannot write data cache"):
        ds = load_dataset("folder", tmp_path / "imgs", cache_dir=tmp_path / "blocker" / "cache")
    assert len(ds.x_train) == 2


def test_use_cache_false_writes_nothing(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "imgs", {"a": 1, "b": 1})
    load_dataset("folder", tmp_path / "imgs", cache_dir=tmp_path / "cache", use_cache=False)
    assert not (tmp_path / "cache").exists()


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIFAR_AUTOML_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CIFAR_AUTOML_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "cifar-automl"
