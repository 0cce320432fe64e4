import numpy as np
import pytest

from cifar_automl.training import (
    AUGMENTATIONS,
    Augmentation,
    make_dataset,
    matching_tta,
    pipeline,
)
from cifar_automl.training.pipeline import random_crop


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
    batches = iter(ds)
    first, second = next(batches), next(batches)  # one batch per epoch
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


def test_training_runs_epoch_after_epoch_of_full_batches_dropping_the_partial_one():
    x, y = _data()  # 50 images
    batches = iter(make_dataset(x, y, 5, 16, training=True, augment="none", seed=0))
    epochs = [[next(batches) for _ in range(3)] for _ in range(2)]
    assert [len(b[0]) for e in epochs for b in e] == [16] * 6
    assert pipeline.steps_per_epoch(50, 16) == 3 and pipeline.images_per_epoch(50, 16) == 48
    # each epoch trains on 48 different images; the 2 left out are a new draw in every epoch
    seen = [{int(v) for b in e for v in b[0].numpy()[:, 0, 0, 0]} for e in epochs]
    assert [len(s) for s in seen] == [48, 48] and seen[0] != seen[1]


def test_a_set_smaller_than_one_batch_trains_as_one_batch():
    x, y = _data()
    batches = iter(make_dataset(x[:10], y[:10], 5, 16, training=True, augment="none", seed=0))
    assert [len(next(batches)[0]) for _ in range(3)] == [10, 10, 10]
    assert pipeline.steps_per_epoch(10, 16) == 1 and pipeline.images_per_epoch(10, 16) == 10


@pytest.mark.parametrize("training", [True, False])
def test_pipelines_run_without_the_autotuning_thread(training):
    # its thread made the end of every completed trial wait for it, up to a minute
    x, y = _data()
    ds = make_dataset(x, y, 5, 16, training=training, augment="altflip_crop2")
    assert ds.options().autotune.enabled is False
    assert len(next(iter(ds))[0]) == 16


def test_alternating_flips_mirror_every_image_the_other_way_each_epoch(monkeypatch):
    monkeypatch.setitem(AUGMENTATIONS, "altflip", Augmentation(flip="alternate"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6, 6, 3)).astype(np.uint8)
    y = np.arange(40) % 4
    batches = iter(make_dataset(x, y, 4, 40, training=True, augment="altflip", seed=3))
    seen = []  # per epoch: image index -> was it mirrored
    for _ in range(3):
        images = next(batches)[0].numpy()
        mirrored = {}
        for img in images:
            i = next(k for k in range(40) if np.array_equal(img, x[k]) or np.array_equal(img, x[k, :, ::-1]))
            mirrored[i] = not np.array_equal(img, x[i])
        seen.append(mirrored)
    assert 10 < sum(seen[0].values()) < 30  # random in the first epoch
    for i in range(40):
        assert seen[1][i] != seen[0][i] and seen[2][i] == seen[0][i]


def test_random_crop_moves_whole_pixels_within_the_padding():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (64, 8, 8, 3)).astype(np.float32)
    out = random_crop(tf.constant(x), 2).numpy()
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    moves = set()
    for img, pad in zip(out, padded):
        match = [(dy, dx) for dy in range(5) for dx in range(5) if np.array_equal(img, pad[dy:dy + 8, dx:dx + 8])]
        assert match, "not a whole-pixel crop of the padded image"
        moves.add(match[0])
    assert len(moves) > 10  # offsets vary per image


@pytest.mark.parametrize("augment, tta", [("none", "none"), ("flip", "flip"), ("flip_shift2", "flip_translate"),
                                          ("altflip_crop2", "flip_translate")])
def test_test_time_augmentation_matches_the_training_views(augment, tta):
    assert matching_tta(augment) == tta
