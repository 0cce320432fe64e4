"""Splits: test, subset, validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cifar_automl.data import (
    make_splits,
    parse_subset,
)
from cifar_automl.errors import DataError

from .files import ids, index_dataset

REPO = Path(__file__).resolve().parents[2]
REAL_ARCHIVE = REPO.parent / "shared/datasets/cifar10-train-jpeg.tar.gz"


def test_carved_splits_are_stratified_and_disjoint() -> None:
    ds = index_dataset((50, 50, 50))
    s = make_splits(ds, val_fraction=0.1, seed=1)
    info = s.info
    assert info["test_source"] == "carved"
    assert info["class_counts"] == {"train": [36] * 3, "val": [4] * 3, "test": [10] * 3}
    assert (info["n_train"], info["n_val"], info["n_test"]) == (108, 12, 30)
    parts = [ids(s.x_train), ids(s.x_val), ids(s.x_test)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(150))
    for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
        np.testing.assert_array_equal(y, ds.y_train[ids(x)])
        assert x.flags.c_contiguous and y.dtype == np.int64


def test_carved_test_split_ignores_seed_subset_and_val_fraction() -> None:
    ds = index_dataset((40, 25, 35))
    runs = [
        make_splits(ds),
        make_splits(ds, val_fraction=0.3, seed=5, subset=0.5),
        make_splits(ds, val_fraction=0.2, seed=9, subset=30),
    ]
    for s in runs[1:]:
        np.testing.assert_array_equal(ids(s.x_test), ids(runs[0].x_test))
        assert not set(ids(s.x_test)) & (set(ids(s.x_train)) | set(ids(s.x_val)))


def test_official_test_split_is_used_and_copied() -> None:
    ds = index_dataset((10, 10, 10), with_test=True)
    s = make_splits(ds, val_fraction=0.2)
    assert s.info["test_source"] == "official" and s.info["test_fraction"] is None
    assert s.info["n_train"] + s.info["n_val"] == 30 and s.info["n_test"] == 9
    assert ds.x_test is not None
    np.testing.assert_array_equal(s.x_test, ds.x_test)
    assert not np.shares_memory(s.x_test, ds.x_test)


def test_subset_fraction_and_count() -> None:
    ds = index_dataset((60, 30, 30))
    half = make_splits(ds, subset=0.5, val_fraction=0.2, test_fraction=0.5)
    per_class = np.add(half.info["class_counts"]["train"], half.info["class_counts"]["val"])
    assert per_class.tolist() == [15, 8, 8]  # half of (30, 15, 15), rounded half to even
    counted = make_splits(ds, subset=31, val_fraction=0.2, test_fraction=0.5)
    per_class = np.add(counted.info["class_counts"]["train"], counted.info["class_counts"]["val"])
    assert per_class.sum() == 31 and per_class.min() >= 7
    smallest = make_splits(index_dataset((20, 4, 6)), subset=6, val_fraction=0.5)
    assert min(np.add(smallest.info["class_counts"]["train"], smallest.info["class_counts"]["val"])) >= 1
    assert make_splits(ds, subset=1.0).info["n_train"] == make_splits(ds).info["n_train"]


def test_every_class_keeps_train_and_val_images() -> None:
    s = make_splits(index_dataset((40, 3, 4)), val_fraction=0.05, test_fraction=0.1)
    assert min(s.info["class_counts"]["val"]) >= 1 and min(s.info["class_counts"]["train"]) >= 1


def test_splits_are_deterministic_per_seed() -> None:
    ds = index_dataset()
    a, b, c = make_splits(ds, seed=3), make_splits(ds, seed=3), make_splits(ds, seed=4)
    np.testing.assert_array_equal(ids(a.x_val), ids(b.x_val))
    np.testing.assert_array_equal(ids(a.x_train), ids(b.x_train))
    assert set(ids(a.x_val)) != set(ids(c.x_val))


@pytest.mark.parametrize("subset", [0.0, 1.5, -1, 2, 10**6, True, "0.2", float("nan")])
def test_bad_subset_raises(subset: object) -> None:
    with pytest.raises(DataError, match="subset"):
        make_splits(index_dataset(), subset=subset)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"val_fraction": 0.0}, {"val_fraction": 1.0}, {"test_fraction": 1.2}])
def test_bad_fractions_raise(kwargs: dict) -> None:
    with pytest.raises(DataError, match="fraction"):
        make_splits(index_dataset(), **kwargs)


def test_too_small_to_split_raises() -> None:
    with pytest.raises(DataError, match="too few images"):
        make_splits(index_dataset((1, 1)), val_fraction=0.5)


def test_info_is_json_serialisable() -> None:
    ds = index_dataset()
    info = make_splits(ds, subset=np.int64(60), seed=2).info
    assert json.loads(json.dumps(info)) == info
    expected = {"dataset", "source", "image_shape", "n_train", "n_val", "n_test", "class_counts", "test_source"}
    assert expected <= set(info) and {"val_fraction", "subset", "seed", "test_fraction", "skipped_files"} <= set(info)
    assert info["image_shape"] == [4, 4, 3] and info["subset"] == 60 and info["test_fraction"] == 0.2


def test_parse_subset() -> None:
    assert parse_subset("0.2") == 0.2 and isinstance(parse_subset("0.2"), float)
    assert parse_subset(" 5000 ") == 5000 and isinstance(parse_subset("5000"), int)
    assert parse_subset("1.0") == 1.0
    for bad in ("", "abc", "0", "0.0", "-3", "1.5", "nan", "inf", "2e3"):
        with pytest.raises(DataError, match="bad subset"):
            parse_subset(bad)
