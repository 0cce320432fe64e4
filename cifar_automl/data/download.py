"""Keras' own downloads (`keras.datasets`), for the data sets it hosts, when no local copy is given."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .dataset import Dataset, as_images
from .imaging import resize_dataset
from .sources import Reader


def keras_reader(name: str, classes: tuple[str, ...], offline_hint: str) -> Reader:
    """A reader of `keras.datasets.<name>`; `offline_hint` says what local files to pass instead."""

    def read(size: tuple[int, int] | None) -> Dataset:
        return resize_dataset(download(name, classes, offline_hint), size)

    return Reader("keras", None, read)


def download(name: str, classes: tuple[str, ...], offline_hint: str) -> Dataset:
    """Download (or reuse Keras' own cache); offline -> DataError with `offline_hint`."""
    import keras  # lazy: TensorFlow takes seconds to import and local data never needs it

    module = getattr(keras.datasets, name)
    try:
        if name == "cifar100":
            (x_train, y_train), (x_test, y_test) = module.load_data(label_mode="fine")
        else:
            (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as exc:  # Keras raises a bare Exception for URL/network failures
        raise DataError(f"cannot download {name} (offline?): {offline_hint}") from exc
    return Dataset(
        name=name,
        x_train=as_images(x_train),
        y_train=np.asarray(y_train, dtype=np.int64).reshape(-1),
        x_test=as_images(x_test),
        y_test=np.asarray(y_test, dtype=np.int64).reshape(-1),
        class_names=classes,
        source="keras download",
    )
