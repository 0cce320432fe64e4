"""Image data sets in memory: sources in a registry, a cache of local decodes, and the splits.

Each of these modules registers the data sets it reads (`sources.register_dataset`): `cifar`
(CIFAR-10 and CIFAR-100), `idx` (MNIST, Fashion-MNIST), `folder` (any class-per-folder image tree,
read by `images`). Adding a data set is one module with one registered function, imported here.
Nothing in this package imports TensorFlow, except a Keras download when one is needed.
"""

from . import cifar, idx, folder  # noqa: F401,I001  (each registers its data sets, in this order)
from .cache import default_cache_dir
from .dataset import Dataset, Splits
from .imaging import IMAGE_EXTENSIONS
from .sources import Reader, dataset_names, load_dataset, register_dataset
from .splits import channel_stats, make_splits, parse_subset

__all__ = [
    "IMAGE_EXTENSIONS", "Dataset", "Reader", "Splits", "channel_stats", "dataset_names", "default_cache_dir",
    "load_dataset", "make_splits", "parse_subset", "register_dataset",
]
