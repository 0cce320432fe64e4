"""The one training loop: `fit(model, x, y, train_cfg, callbacks=...)`. Knows Keras, not Optuna.

Every path that trains a model goes through here (search trials, KerasTuner's trials, retraining,
baselines), so their schedules, batches, lookahead and weight averaging are the same. The caller
passes any extra callbacks (a pruning callback, early stopping); an `EpochRecorder` keeps the
per-epoch curves and timings, so a caller still has them when a callback stops training with an
exception.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Sequence

import keras
import numpy as np

from ..config import TrainConfig
from .callbacks import (
    BatchNormRecalibration,
    EpochProgress,
    EpochRecorder,
    FitResult,
    Lookahead,
    OneRun,
    StepTimer,
    StopAtStep,
)
from .optimizers import make_optimizer, make_schedule
from .pipeline import make_dataset
from .plan import images_per_epoch, steps_per_epoch

EVAL_BATCH_SIZE = 512  # evaluation holds no gradients, so larger batches are cheap and faster
BN_RECALIBRATION_IMAGES = 2048  # images that re-estimate batch-norm statistics after weight averaging
# fit_within: the steps after the first epoch are planned at the measured seconds per step x this (the
# measured step times of one machine vary by a few percent from epoch to epoch)
STEP_MARGIN = 1.03
# fit_within re-sizes the schedule again at these shares of it (the first re-size is after epoch 1), when
# tracing the step again takes at most RESIZE_TRACE_SHARE of the time (a long run on a machine whose
# speed drifts; in a short one the traces would cost more than the drift)
RESIZE_AT = (0.5, 0.75, 0.9)
RESIZE_TRACE_SHARE = 0.02
# epochs this long against their trace (the trace under this share of an epoch) are re-sized after every
# one, each timed by itself less its trace: a 2-hour retrain of eight 13-minute epochs (a trace of a
# second or two) that slowed by 10-13% in its last quarter ran 2.3 minutes over with re-sizes after
# epochs 1 and 4 only
LONG_EPOCH_TRACE_SHARE = 0.02  # 0 turns it off


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
    recompile: bool = True,
) -> FitResult:
    """Compile and train `model` as `cfg` says; returns the per-epoch record.

    The schedule (learning rate, lookahead) is laid out over `cfg.epochs` (or `cfg.steps` steps:
    training then stops at that step, and the cut epoch still ends with its validation). `initial_epoch` and
    `stop_epoch` train only epochs [initial_epoch, stop_epoch) of it, as if the earlier ones had run:
    the schedule, the lookahead and the data order pick up where they would be (KerasTuner's
    Hyperband resumes a promoted model this way). `feed` picks the input feed (`pipeline.FEEDS`;
    default: the backend's faster one). Exceptions raised by callbacks (such as a pruning
    callback) propagate; pass your own `recorder` to keep the epochs recorded before them.
    `recompile=False` goes on with the model's optimizer (its moments and step count) and gives it `cfg`'s
    schedule: a run resumed at `initial_epoch` with its schedule re-sized (`fit_within`).
    """
    num_classes = int(model.output.shape[-1])
    steps = steps_per_epoch(len(x_train), cfg.batch_size)
    total = cfg.total_steps(steps)
    if recompile:
        compile_model(model, cfg, steps)
    else:
        model.optimizer.learning_rate = make_schedule(cfg, steps)
        model.make_train_function(force=True)  # the compiled step holds the old schedule
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


def resizable(cfg: TrainConfig, steps_per_epoch: int) -> bool:
    """Whether `fit_within` re-sizes this schedule: one longer than an epoch, which has an epoch's end to be
    re-sized at. In a short one the re-size moves the learning rate along the schedule (from 63% of
    it to 43% when a 1.6-epoch plan becomes 2.3 epochs), which costs less than the minutes a first
    estimate leaves unused (a fifth of 40 minutes, measured with 13-minute epochs)."""
    return cfg.total_steps(steps_per_epoch) > steps_per_epoch


def fit_within(
    model: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    cfg: TrainConfig,
    seconds: float,
    *,
    max_steps: int | None = None,
    after: float = 0.0,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    seed: int = 0,
    verbose: int | str = 0,
    feed: str | None = None,
) -> tuple[FitResult, TrainConfig]:
    """`fit`, with the schedule sized to end training within `seconds` of the call.

    `cfg`'s length is a first estimate (from other runs' epoch times): its first epoch trains on it,
    timing every step. The rest of the schedule is then re-sized to the time left at the measured seconds
    per step (x STEP_MARGIN), plus what the first epoch spent outside its steady steps (tracing the
    graph, which every re-sized schedule pays again) and on validation, and training goes on with the same
    optimizer: the learning rate follows the new schedule from the step reached, so the warm-up and the
    decay still span the whole run. Epochs speed up or slow down during a long run (a machine's other
    work, its clock), so the schedule is re-sized again at RESIZE_AT shares of it, at the epoch times
    measured since the last re-size, when the traces this costs are a small share of the time; when the
    trace is a small share of an epoch (LONG_EPOCH_TRACE_SHARE), after every epoch instead, each planned
    with its trace. At most
    `max_steps` steps; the last epoch is cut short when whole epochs would not fill the time. `after`:
    the seconds that `seconds` also holds for what follows training (a test pass), at the speed of the
    first epoch (`cfg`'s first estimate is taken to leave them): later re-sizes scale them as the epochs
    sped up or slowed down since, for a machine that slows down slows the test too. The
    callbacks see the calls of fit as one run (`OneRun`: early stopping keeps its patience and best
    weights across them). Returns the record of all epochs and the schedule trained on (its `epochs` and
    `steps`; a run a callback stopped early was on it too); the record lists the re-sizes. A schedule of
    one epoch or less trains as `cfg` says (`resizable`).
    """
    steps = steps_per_epoch(len(x_train), cfg.batch_size)
    options = dict(validation=validation, seed=seed, verbose=verbose, feed=feed)
    if not resizable(cfg, steps):
        return fit(model, x_train, y_train, cfg, callbacks=callbacks, **options), cfg
    start = time.perf_counter()
    timer = StepTimer()
    recorder = EpochRecorder(images_per_epoch(len(x_train), cfg.batch_size))
    bars = [callback for callback in callbacks if isinstance(callback, EpochProgress)]
    run = [OneRun(callback) for callback in callbacks]  # the several calls of fit are one run to them
    done, stop, later = 0, 1, 0  # epochs trained, the epoch of the next re-size, RESIZE_AT shares used
    outside = 0.0  # seconds a call of fit spends outside its steady steps (tracing), from the first epoch
    first = 0.0  # the seconds per epoch measured at the first re-size, which `after` is priced at
    while True:
        fit(model, x_train, y_train, cfg, callbacks=[timer, *run] if done == 0 else run, recorder=recorder,
            initial_epoch=done, stop_epoch=stop, recompile=done == 0, **options)
        result = recorder.result
        if stop is None or result.nan_epoch is not None or model.stop_training or result.epochs_run < stop:
            for callback in run:
                callback.end()
            if done == 0:  # stopped in the first epoch, on the first estimate's schedule
                return result, dataclasses.replace(cfg, epochs=result.epochs_run, steps=None)
            return result, cfg
        if done == 0:
            step = timer.step_seconds() or result.train_seconds[0] / steps
            outside = max(0.0, result.train_seconds[0] - steps * step)  # tracing, the input pipeline's start
            per_epoch = steps * step * STEP_MARGIN + (result.epoch_seconds[0] - result.train_seconds[0])
        else:  # the wall time of the epochs since the last re-size, less the trace its first paid
            per_epoch = _segment_seconds(result.epoch_seconds[done:stop], outside) * STEP_MARGIN
        first = first or per_epoch
        done = stop
        # the next call traces the step again; what follows training runs at the speed the epochs now run
        kept = after * per_epoch / first if first > 0 else after
        left = seconds - (time.perf_counter() - start) - outside - kept
        again = outside <= RESIZE_TRACE_SHARE * seconds  # later re-sizes are worth their traces
        if again and 0 < outside < LONG_EPOCH_TRACE_SHARE * per_epoch:
            # long epochs (a trace measured, and small next to one): re-sized after every one, each
            # planned with the trace it will pay (the next one's is in `left` already: added back)
            resized = _resized_steps(left + outside, per_epoch + outside, steps, done, max_steps)
            ahead = [(later, epoch) for epoch in range(done + 1, math.ceil(resized / steps))]
        else:
            # each further re-size traces it once more: keep time for as many as the schedule will have
            for reserved in range(len(RESIZE_AT) + 1):
                resized = _resized_steps(left - reserved * outside, per_epoch, steps, done, max_steps)
                ahead = _resize_points(done, math.ceil(resized / steps), later) if again else []
                if len(ahead) <= reserved:
                    break
        epochs = math.ceil(resized / steps)
        cfg = dataclasses.replace(cfg, epochs=epochs, steps=None if resized == epochs * steps else resized)
        result.resizes.append((done, resized))
        for bar in bars:
            bar.resize(epochs)
        later, stop = ahead[0] if ahead else (later, None)


def _resized_steps(left: float, per_epoch: float, steps: int, done: int, max_steps: int | None) -> int:
    """The schedule's steps: the `done` epochs and what `left` seconds hold at `per_epoch` (at least one
    step more, at most `max_steps`)."""
    resized = done * steps + max(1, math.floor(left / per_epoch * steps))
    return resized if max_steps is None else max(done * steps + 1, min(resized, max_steps))


def _segment_seconds(epoch_seconds: list[float], trace: float) -> float:
    """The seconds an epoch takes, from the epochs trained since a re-size (whose first traced the step
    again): the median of the others, or with fewer than two others (long epochs, re-sized after each),
    of all of them with the first's `trace` taken out."""
    if len(epoch_seconds) >= 3:
        return float(np.median(epoch_seconds[1:]))
    return float(np.median([max(0.0, epoch_seconds[0] - trace), *epoch_seconds[1:]]))


def _resize_points(done: int, epochs: int, used: int) -> list[tuple[int, int]]:
    """The later re-sizes of a schedule of `epochs` epochs with `done` trained, as (RESIZE_AT shares used
    after it, epoch): RESIZE_AT's shares after the `used` first, at least three epochs after the previous
    re-size and two before the end: a segment's first epoch traces the step, so its other two time it."""
    points, previous = [], done
    for index in range(used, len(RESIZE_AT)):
        epoch = round(RESIZE_AT[index] * epochs)
        if epoch >= previous + 3 and epoch <= epochs - 2:
            points.append((index + 1, epoch))
            previous = epoch
    return points


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loss and accuracy on arrays, without augmentation."""
    ds = make_dataset(x, y, int(model.output.shape[-1]), EVAL_BATCH_SIZE, training=False)
    return {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
