"""The one training loop: `fit(model, x, y, train_cfg, callbacks=...)`. Knows Keras, not Optuna.

Every path that trains a model goes through here (search trials, KerasTuner's trials, retraining,
baselines), so their schedules, batches, lookahead and weight averaging are the same. The caller
passes any extra callbacks (a pruning callback, early stopping); an `EpochRecorder` keeps the
per-epoch curves and timings, so a caller still has them when a callback stops training with an
exception.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np

from ..config import TrainConfig
from .callbacks import (
    BatchNormRecalibration,
    EpochRecorder,
    FitResult,
    Lookahead,
    StopAtStep,
)
from .optimizers import make_optimizer
from .pipeline import make_dataset
from .plan import images_per_epoch, steps_per_epoch

EVAL_BATCH_SIZE = 512  # evaluation holds no gradients, so larger batches are cheap and faster
BN_RECALIBRATION_IMAGES = 2048  # images that re-estimate batch-norm statistics after weight averaging


def compile_model(model: keras.Model, cfg: TrainConfig, steps_per_epoch: int) -> None:
    model.compile(
        optimizer=make_optimizer(cfg, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def fit(
    model: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    cfg: TrainConfig,
    *,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    recorder: EpochRecorder | None = None,
    seed: int = 0,
    verbose: int | str = 0,
    initial_epoch: int = 0,
    stop_epoch: int | None = None,
    feed: str | None = None,
) -> FitResult:
    """Compile and train `model` as `cfg` says; returns the per-epoch record.

    The schedule (learning rate, lookahead) is laid out over `cfg.epochs` (or `cfg.steps` steps:
    training then stops at that step, and the cut epoch still ends with its validation). `initial_epoch` and
    `stop_epoch` train only epochs [initial_epoch, stop_epoch) of it, as if the earlier ones had run:
    the schedule, the lookahead and the data order pick up where they would be (KerasTuner's
    Hyperband resumes a promoted model this way). `feed` picks the input feed (`pipeline.FEEDS`;
    default: the backend's faster one). Exceptions raised by callbacks (such as a pruning
    callback) propagate; pass your own `recorder` to keep the epochs recorded before them.
    """
    num_classes = int(model.output.shape[-1])
    steps = steps_per_epoch(len(x_train), cfg.batch_size)
    total = cfg.total_steps(steps)
    compile_model(model, cfg, steps)
    if initial_epoch:
        model.optimizer.iterations.assign(initial_epoch * steps)
    train_ds = make_dataset(
        x_train, y_train, num_classes, cfg.batch_size, training=True, augment=cfg.augment, seed=seed,
        first_epoch=initial_epoch, feed=feed,
    )
    val_ds = None
    if validation is not None:
        val_ds = make_dataset(*validation, num_classes, EVAL_BATCH_SIZE, training=False, feed=feed)
    recorder = recorder or EpochRecorder(images_per_epoch(len(x_train), cfg.batch_size))
    extra: list[keras.callbacks.Callback] = []
    if cfg.weight_averaging:  # ~2,000 images re-estimate the batch-norm statistics of the averaged weights
        extra.append(BatchNormRecalibration(train_ds, min(steps, math.ceil(BN_RECALIBRATION_IMAGES / cfg.batch_size))))
    if cfg.lookahead:
        extra.append(Lookahead(total, initial_step=initial_epoch * steps))
    if total < cfg.epochs * steps:
        extra.append(StopAtStep(total, initial_step=initial_epoch * steps))
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=stop_epoch or cfg.epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps,
        callbacks=[recorder, *extra, *callbacks],
        shuffle=False,  # the dataset shuffles itself each epoch
        verbose=verbose,
    )
    return recorder.result


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loss and accuracy on arrays, without augmentation."""
    ds = make_dataset(x, y, int(model.output.shape[-1]), EVAL_BATCH_SIZE, training=False)
    return {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
