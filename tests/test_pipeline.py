import numpy as np
import pytest

from cifar_automl.pipeline import AUGMENTATIONS, make_dataset


def _data(n=50, size=8):
    x = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, size, size, 3), np.uint8)
    return x, np.arange(n) % 5


def test_eval_batches_cover_every_image_once_in_order():
    x, y = _data()
    batches = list(make_dataset(x, y, 5, 16, training=False))
    assert [len(b[0]) for b in batches] == [16, 16, 16, 2]
    images = np.concatenate([b[0].numpy() for b in batches])
    np.testing.assert_array_equal(images, x.astype(np.float32))
    labels = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(labels.argmax(1), y)
    assert labels.dtype == np.float32


def test_training_batches_shuffle_each_epoch_and_keep_labels_aligned():
    x, y = _data()
    ds = make_dataset(x, y, 5, 50, training=True, augment="none", seed=1)
    first, second = (next(iter(ds)) for _ in range(2))
    order1 = first[0].numpy()[:, 0, 0, 0]
    order2 = second[0].numpy()[:, 0, 0, 0]
    assert sorted(order1) == list(range(50)) and not np.array_equal(order1, order2)
    np.testing.assert_array_equal(first[1].numpy().argmax(1), order1.astype(int) % 5)


@pytest.mark.parametrize("name", [a for a in AUGMENTATIONS if a != "none"])
def test_augmentation_changes_training_images_only(name):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 16, 16, 3)).astype(np.uint8)
    y = np.zeros(32, int)
    originals = {img.tobytes() for img in x.astype(np.float32)}
    train = next(iter(make_dataset(x, y, 2, 32, training=True, augment=name, seed=0)))[0].numpy()
    unchanged = sum(img.tobytes() in originals for img in train)
    assert train.shape == x.shape and unchanged < 28  # most images flipped/shifted/rotated
    evaluation = next(iter(make_dataset(x, y, 2, 32, training=False, augment=name)))[0].numpy()
    np.testing.assert_array_equal(evaluation, x.astype(np.float32))


def test_unknown_augmentation_is_an_error():
    x, y = _data()
    with pytest.raises(ValueError, match="unknown augmentation"):
        make_dataset(x, y, 5, 8, training=True, augment="mixup")
