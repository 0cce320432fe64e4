"""Keras callbacks of the training loop: the per-epoch record, a progress bar, airbench's lookahead,
and batch-norm re-estimation after weight averaging."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from tqdm.auto import tqdm

from ..models import all_layers
from .pipeline import take


@dataclass
class FitResult:
    history: dict[str, list[float]] = field(default_factory=dict)  # loss, accuracy, val_loss, ...
    epoch_seconds: list[float] = field(default_factory=list)  # wall time per epoch, validation included
    train_seconds: list[float] = field(default_factory=list)  # wall time per epoch in training steps only
    train_images: int = 0  # images per epoch
    nan_epoch: int | None = None  # first epoch (0-based) whose loss was NaN or infinite
    # fit_within's re-sizes of the schedule: (epochs trained, the schedule's new length in steps)
    resizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def epochs_run(self) -> int:
        return len(self.epoch_seconds)

    @property
    def images_per_second(self) -> float:
        total = sum(self.train_seconds)
        return self.train_images * len(self.train_seconds) / total if total > 0 else 0.0

    def best(self, metric: str = "val_accuracy") -> tuple[float, int]:
        """Best value of `metric` (max) and its epoch, ignoring NaN."""
        values = np.array(self.history.get(metric, []), dtype=float)
        if values.size == 0 or np.all(np.isnan(values)):
            return float("nan"), -1
        epoch = int(np.nanargmax(values))
        return float(values[epoch]), epoch


def projected_seconds(epoch_seconds: Sequence[float], epochs: int) -> float:
    """The wall seconds of a training of `epochs` epochs, from the epochs timed so far: their sum when
    all ran, else the first one (which also builds and traces the model) and the median of the others
    (the steady ones) for the rest; 0 if none was timed."""
    if not epoch_seconds or len(epoch_seconds) >= epochs:
        return float(sum(epoch_seconds))
    return epoch_seconds[0] + (epochs - 1) * statistics.median(epoch_seconds[1:] or epoch_seconds)


class EpochRecorder(keras.callbacks.Callback):
    """Records metrics and wall times of every epoch; flags a NaN loss and stops training on it."""

    def __init__(self, train_images: int) -> None:
        super().__init__()
        self.result = FitResult(train_images=train_images)
        self._epoch_start = 0.0
        self._train_end: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.perf_counter()
        self._train_end = None

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        self.result.epoch_seconds.append(now - self._epoch_start)
        self.result.train_seconds.append((self._train_end or now) - self._epoch_start)
        for key, value in (logs or {}).items():
            self.result.history.setdefault(key, []).append(float(value))
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss) and self.result.nan_epoch is None:
            self.result.nan_epoch = epoch
            self.model.stop_training = True


class StopAtStep(keras.callbacks.Callback):
    """Stops training after training step `total` (counted over the whole schedule, from `initial_step`):
    the epoch it falls in ends there, with its validation and epoch-end callbacks, as Keras does for
    `model.stop_training`."""

    def __init__(self, total: int, initial_step: int = 0) -> None:
        super().__init__()
        self.total, self.step = total, initial_step

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step += 1
        if self.step >= self.total:
            self.model.stop_training = True


class StepTimer(keras.callbacks.Callback):
    """The wall time of training steps: `step_seconds()` is the median of the last epoch's steps after
    its first two (which also trace and warm up the graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.times = [time.perf_counter()]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter())

    def step_seconds(self) -> float | None:
        steps = np.diff(self.times)[2:]
        return float(np.median(steps)) if steps.size else None


class EpochProgress(keras.callbacks.Callback):
    """A progress bar over epochs (ETA included) showing the latest metrics."""

    def __init__(self, epochs: int, desc: str = "train") -> None:
        super().__init__()
        self.bar = tqdm(total=epochs, desc=desc, unit="epoch", dynamic_ncols=True)

    def resize(self, epochs: int) -> None:
        """The run's length changed (`fit_within`)."""
        self.bar.total = epochs
        self.bar.refresh()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        shown = ("loss", "accuracy", "val_loss", "val_accuracy")
        self.bar.set_postfix({k: f"{logs[k]:.4f}" for k in shown if k in logs}, refresh=False)
        self.bar.update(1)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.bar.close()


# the hooks OneRun passes on as they are (on_train_begin and on_train_end it gates)
_PASSED_ON = (
    "on_epoch_begin", "on_epoch_end", "on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end",
    "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
    "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end",
)


class OneRun(keras.callbacks.Callback):
    """`callback` over several calls of `fit` that are one run (`fit_within` re-sizing the schedule): it
    sees `on_train_begin` in the first call only and `on_train_end` when the caller calls `end()`, so early
    stopping keeps its patience and best weights over the whole run and a progress bar stays open.
    Every other hook is the callback's own (Keras still sees which per-batch hooks it has)."""

    def __init__(self, callback: keras.callbacks.Callback) -> None:
        super().__init__()
        self.callback, self.begun = callback, False
        self.async_safe = getattr(callback, "async_safe", False)
        for name in _PASSED_ON:
            setattr(self, name, getattr(callback, name))

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        self.callback.set_params(params)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.begun:
            self.begun = True
            self.callback.on_train_begin(logs)

    def end(self, logs: dict | None = None) -> None:
        """The run is over: the callback's `on_train_end`."""
        if self.begun:
            self.callback.on_train_end(logs)


class BatchNormRecalibration(keras.callbacks.Callback):
    """Re-estimates batch-norm statistics after the weights were replaced by their average.

    Keras' EMA averages the trainable weights only; the batch-norm moving mean and variance keep
    describing the raw weights' activations, which an averaged network does not produce, so it
    evaluates badly. As SWA's `update_bn` does, this recomputes them (a plain average over
    `batches` training batches) before each validation and at the end of training.
    """

    def __init__(self, dataset: Any, batches: int) -> None:
        super().__init__()
        self.dataset = dataset
        self.batches = batches

    def on_test_begin(self, logs: dict | None = None) -> None:  # fit() validates once per epoch
        recalibrate_batch_norm(self.model, self.dataset, self.batches)

    def on_train_end(self, logs: dict | None = None) -> None:
        # fit() copies the average into the model once more before this (finalize_variable_values)
        recalibrate_batch_norm(self.model, self.dataset, self.batches)


def recalibrate_batch_norm(model: keras.Model, dataset: Any, batches: int) -> None:
    """Set every BatchNormalization layer's moving statistics to their mean over `batches` batches."""
    bns = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return
    momenta = [layer.momentum for layer in bns]
    for layer in bns:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, dtype="float32"))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, dtype="float32"))
    try:
        for k, (x, _) in enumerate(take(dataset, batches), start=1):
            for layer in bns:
                layer.momentum = (k - 1) / k  # moving = running mean of the batch statistics
            model(x, training=True)
    finally:
        for layer, momentum in zip(bns, momenta):
            layer.momentum = momentum


class Lookahead(keras.callbacks.Callback):
    """airbench's lookahead: from `start` (a share of all steps; airbench: 3 of its ~10 epochs) a slow
    copy of the weights (batch-norm statistics included) is kept; every `every` steps it moves towards
    the weights with a decay that grows as 0.95**5 * (step / total)**3, and the weights take its value.
    At the end of every epoch and at the last step the weights become the slow copy. Late in training
    it averages out the noise of the last steps as weight averaging does, with no second copy to
    evaluate."""

    def __init__(self, total_steps: int, every: int = 5, max_decay: float = 0.95**5, start: float = 0.3,
                 initial_step: int = 0) -> None:
        super().__init__()
        self.total_steps, self.every, self.max_decay = max(1, total_steps), every, max_decay
        self.start_step = int(start * self.total_steps)
        self.step = initial_step  # steps already trained (a run resumed from a checkpoint)

    @property
    def started(self) -> bool:
        return self.step > self.start_step

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.weights = [v for v in self.model.variables if "float" in str(v.dtype)]
        self.slow = [keras.Variable(v.numpy(), trainable=False, name="lookahead") for v in self.weights]  # copies

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step += 1
        if not self.started:
            return
        if self.step == self.start_step + 1:  # the slow copy starts from the weights of now
            self.update(0.0)
        elif self.step >= self.total_steps:
            self.update(1.0)
        elif self.step % self.every == 0:
            self.update(self.max_decay * (self.step / self.total_steps) ** 3)

    def on_test_begin(self, logs: dict | None = None) -> None:  # fit() validates the slow copy
        if self.started:
            self.update(1.0)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.started:
            self.update(1.0)

    def update(self, decay: float) -> None:
        # on JAX, fit() keeps the weights outside the model mid-epoch: reading `self.model` brings them
        # back (Callback.model syncs them), and the next step takes the values assigned here
        self.model  # noqa: B018
        for slow, w in zip(self.slow, self.weights):
            slow.assign(decay * slow.value + (1.0 - decay) * keras.ops.cast(w.value, slow.dtype))
            w.assign(keras.ops.copy(slow.value))  # its own buffer: JAX's train step donates the weights
