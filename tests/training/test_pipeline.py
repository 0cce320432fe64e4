import numpy as np
import pytest

from cifar_automl.training import (
    AUGMENTATIONS,
    Augmentation,
    make_dataset,
    matching_tta,
    plan,
)
from cifar_automl.training.pipeline import FEEDS, crop
from cifar_automl.training.tfdata import crop as tf_crop


def _data(n=50, size=8):
    x = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, size, size, 3), np.uint8)
    return x, np.arange(n) % 5


@pytest.mark.parametrize("feed", FEEDS)
def test_eval_batches_cover_every_image_once_in_order(feed):
    x, y = _data()
    batches = list(make_dataset(x, y, 5, 16, training=False, feed=feed))
    assert [len(b[0]) for b in batches] == [16, 16, 16, 2]
    images = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(images, x.astype(np.float32))
    labels = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(labels.argmax(1), y)
    assert labels.dtype == np.float32


@pytest.mark.parametrize("feed", FEEDS)
def test_training_batches_shuffle_each_epoch_and_keep_labels_aligned(feed):
    x, y = _data()
    ds = make_dataset(x, y, 5, 50, training=True, augment="none", seed=1, feed=feed)
    batches = iter(ds)
    first, second = ([np.asarray(t) for t in next(batches)] for _ in range(2))  # one batch per epoch
    order1 = first[0][:, 0, 0, 0]
    order2 = second[0][:, 0, 0, 0]
    assert sorted(order1) == list(range(50)) and not np.array_equal(order1, order2)
    np.testing.assert_array_equal(first[1].argmax(1), order1.astype(int) % 5)


@pytest.mark.parametrize("name", [a for a in AUGMENTATIONS if a != "none"])
@pytest.mark.parametrize("feed", FEEDS)
def test_augmentation_changes_training_images_only(name, feed):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 16, 16, 3)).astype(np.uint8)
    y = np.zeros(32, int)
    originals = {img.tobytes() for img in x.astype(np.float32)}
    train = np.asarray(next(iter(make_dataset(x, y, 2, 32, training=True, augment=name, seed=0, feed=feed)))[0])
    unchanged = sum(img.tobytes() in originals for img in train)
    assert train.shape == x.shape and unchanged < 28  # most images flipped/shifted/rotated
    evaluation = np.asarray(next(iter(make_dataset(x, y, 2, 32, training=False, augment=name, feed=feed)))[0])
    np.testing.assert_array_equal(evaluation, x.astype(np.float32))


def test_unknown_augmentation_is_an_error():
    x, y = _data()
    with pytest.raises(ValueError, match="unknown augmentation"):
        make_dataset(x, y, 5, 8, training=True, augment="mixup")


@pytest.mark.parametrize("feed", FEEDS)
def test_training_runs_epoch_after_epoch_of_full_batches_dropping_the_partial_one(feed):
    x, y = _data()  # 50 images
    batches = iter(make_dataset(x, y, 5, 16, training=True, augment="none", seed=0, feed=feed))
    epochs = [[next(batches) for _ in range(3)] for _ in range(2)]
    assert [len(b[0]) for e in epochs for b in e] == [16] * 6
    assert plan.steps_per_epoch(50, 16) == 3 and plan.images_per_epoch(50, 16) == 48
    # each epoch trains on 48 different images; the 2 left out are a new draw in every epoch
    seen = [{int(v) for b in e for v in b[0][:, 0, 0, 0]} for e in epochs]
    assert [len(s) for s in seen] == [48, 48] and seen[0] != seen[1]


@pytest.mark.parametrize("feed", FEEDS)
def test_a_set_smaller_than_one_batch_trains_as_one_batch(feed):
    x, y = _data()
    batches = iter(make_dataset(x[:10], y[:10], 5, 16, training=True, augment="none", seed=0, feed=feed))
    assert [len(next(batches)[0]) for _ in range(3)] == [10, 10, 10]
    assert plan.steps_per_epoch(10, 16) == 1 and plan.images_per_epoch(10, 16) == 10


@pytest.mark.parametrize("training", [True, False])
def test_pipelines_run_without_the_autotuning_thread(training):
    # its thread made the end of every completed trial wait for it, up to a minute
    x, y = _data()
    ds = make_dataset(x, y, 5, 16, training=training, augment="altflip_crop2", feed="tf.data")
    assert ds.options().autotune.enabled is False
    assert len(next(iter(ds))[0]) == 16


@pytest.mark.parametrize("feed", FEEDS)
def test_alternating_flips_mirror_every_image_the_other_way_each_epoch(monkeypatch, feed):
    monkeypatch.setitem(AUGMENTATIONS, "altflip", Augmentation(flip="alternate"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6, 6, 3)).astype(np.uint8)
    y = np.arange(40) % 4
    batches = iter(make_dataset(x, y, 4, 40, training=True, augment="altflip", seed=3, feed=feed))
    seen = []  # per epoch: image index -> was it mirrored
    for _ in range(3):
        images = next(batches)[0]
        mirrored = {}
        for img in images:
            i = next(k for k in range(40) if np.array_equal(img, x[k]) or np.array_equal(img, x[k, :, ::-1]))
            mirrored[i] = not np.array_equal(img, x[i])
        seen.append(mirrored)
    assert 10 < sum(seen[0].values()) < 30  # random in the first epoch
    for i in range(40):
        assert seen[1][i] != seen[0][i] and seen[2][i] == seen[0][i]


@pytest.mark.parametrize("feed", FEEDS)
def test_crops_move_whole_pixels_within_the_padding(feed):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (64, 8, 8, 3)).astype(np.float32)
    offsets = rng.integers(0, 5, (64, 2))
    if feed == "tf.data":
        import tensorflow as tf

        out = tf_crop(tf.constant(x), tf.constant(offsets), 2).numpy()
    else:
        out = crop(x, offsets, 2)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    for img, pad, (dy, dx) in zip(out, padded, offsets):
        np.testing.assert_array_equal(img, pad[dy:dy + 8, dx:dx + 8])


@pytest.mark.parametrize("augment", ["none", "flip", "altflip_crop2"])
def test_both_feeds_give_the_same_batches(augment):
    """The NumPy feed (every backend) and tf.data (TensorFlow) carry out one plan: same images, same
    order, same flips and crops, epoch after epoch, and from a resumed epoch."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (70, 8, 8, 3)).astype(np.uint8)
    y = rng.integers(0, 4, 70)
    for first_epoch in (0, 3):
        fed = [iter(make_dataset(x, y, 4, 16, training=True, augment=augment, seed=5, first_epoch=first_epoch,
                                 feed=feed)) for feed in FEEDS]
        for _ in range(9):  # 4 steps per epoch: into the third epoch
            (xa, ya), (xb, yb) = (next(it) for it in fed)
            np.testing.assert_array_equal(np.asarray(xa), np.asarray(xb))
            np.testing.assert_array_equal(np.asarray(ya), np.asarray(yb))
    evaluation = [np.concatenate([np.asarray(b[0]) for b in make_dataset(x, y, 4, 16, training=False, feed=feed)])
                  for feed in FEEDS]
    np.testing.assert_array_equal(*evaluation)


def test_a_resumed_run_gets_the_epochs_it_would_have_had():
    x, y = _data()
    whole = iter(make_dataset(x, y, 5, 16, training=True, augment="altflip_crop2", seed=4, feed="arrays"))
    later = iter(make_dataset(x, y, 5, 16, training=True, augment="altflip_crop2", seed=4, first_epoch=2,
                              feed="arrays"))
    skipped = [next(whole) for _ in range(2 * 3)]  # two epochs of 3 steps
    assert len(skipped) == 6
    for _ in range(3):
        np.testing.assert_array_equal(next(whole)[0], next(later)[0])


@pytest.mark.parametrize("augment, tta", [("none", "none"), ("flip", "flip"), ("flip_shift2", "flip_translate"),
                                          ("altflip_crop2", "flip_translate")])
def test_test_time_augmentation_matches_the_training_views(augment, tta):
    assert matching_tta(augment) == tta
