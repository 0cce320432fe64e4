"""The objective of a search: one trial samples a configuration, builds its model and trains it,
reporting validation accuracy after every epoch (for the pruner and optuna-dashboard's learning curves)
and storing everything it measured as user attributes."""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from typing import Callable

import keras
import optuna
from sqlalchemy.exc import SQLAlchemyError

from .. import __version__
from ..data import Splits, channel_stats
from ..models import build_model, estimate_flops
from ..runtime import backend_name, device_name, is_out_of_memory, rss_mb
from ..study import INTERRUPTED, OBJECTIVE
from ..training import (
    EpochRecorder,
    FitResult,
    fit,
    images_per_epoch,
    measure_latency,
    projected_seconds,
)
from .moasha import CURVE
from .objectives import Goal
from .space import SearchSpace

COST_CAP = "cost cap"  # the pruned_reason of a trial stopped by Objective's cost_cap
# epochs a trial trains before its projected time counts: the first also builds and traces the model
TIMED_EPOCHS = 2
LATENCY_CALLS = 30  # batch-1 calls whose median is a trial's latency (after one warm-up call)


class Objective:
    """Trains one sampled model per trial; everything it measures goes into the trial's user attrs."""

    def __init__(
        self,
        space: SearchSpace,
        splits: Splits,
        epochs: int,
        seed: int,
        on_epoch: Callable[[int, int, dict], None] | None = None,
        stop_requested: Callable[[], bool] | None = None,
        deadline: float | None = None,
        goal: Goal | None = None,
        cost_cap: float | None = None,
    ) -> None:
        self.goal = goal or Goal()
        self.space = space
        self.splits = splits
        self.epochs = epochs
        self.seed = seed
        self.on_epoch = on_epoch
        self.stop_requested = stop_requested
        self.deadline = deadline  # running trials are pruned at the first epoch end past it
        self.cost_cap = cost_cap  # a trial projected to take longer unpruned is stopped once its speed is known
        self.training = False  # True while Keras is fitting (see run._sigint_between_batches)
        self.mean, self.std = channel_stats(splits.x_train)

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        """Train the trial's configuration; its best validation accuracy (with its costs, for several
        objectives), or NaN for a failed trial (its `fail_reason` says why: NaN loss, out of memory, or
        any error of sampling or training, whose traceback is kept in the user attribute `traceback`).
        A trial over a limit (--max-params, --max-latency) is pruned before it trains."""
        if trial.user_attrs.get("fail_reason") is not None:  # a retry inherits its original's attrs
            trial.set_user_attr("fail_reason", None)
        try:
            cfg = self.space.sample(trial, self.epochs)
        except Exception as e:
            if _storage_error(e):
                raise
            return _failed(trial, e)
        trial.set_user_attr("config", cfg.to_dict())
        trial.set_user_attr("cifar_automl_version", __version__)
        trial.set_user_attr("normalization", {"mean": self.mean, "std": self.std})
        trial.set_user_attr("rss_mb", round(rss_mb(), 1))  # of the process, as the trial starts
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("backend", backend_name())
        trial.set_user_attr("device", device_name())
        s = self.splits
        keras.utils.set_random_seed(self.seed + trial.number)
        recorder = EpochRecorder(images_per_epoch(len(s.x_train), cfg.train.batch_size))
        try:
            model = build_model(
                cfg.arch, s.x_train.shape[1:], len(s.class_names), mean=self.mean, std=self.std, sample=s.x_train
            )
            trial.set_user_attr("params", int(model.count_params()))
            trial.set_user_attr("flops", estimate_flops(model))
            self._check_limits(trial, model)
            prune = (ParetoPruneAtEpochEnd if self.goal.multi else PruneAtEpochEnd)(
                trial, self.epochs, self.deadline, self.cost_cap, recorder)
            callbacks: list[keras.callbacks.Callback] = [prune]
            if self.stop_requested is not None:
                callbacks.append(keras.callbacks.LambdaCallback(
                    on_train_batch_end=_interrupt_if(self.stop_requested),
                    on_test_batch_end=_interrupt_if(self.stop_requested)))
            if self.on_epoch is not None:
                on_epoch, number = self.on_epoch, trial.number
                callbacks.append(keras.callbacks.LambdaCallback(
                    on_epoch_end=lambda epoch, logs: on_epoch(number, epoch + 1, logs or {})))
            self.training = True
            fit(
                model, s.x_train, s.y_train, cfg.train, validation=(s.x_val, s.y_val),
                callbacks=callbacks, recorder=recorder, seed=self.seed + trial.number,
            )
        except optuna.TrialPruned:
            _record(trial, recorder)
            raise
        except KeyboardInterrupt:
            _record(trial, recorder)
            trial.set_user_attr("fail_reason", INTERRUPTED)
            raise
        except Exception as e:  # a bug or a configuration the model cannot take: this trial fails, not the search
            if _storage_error(e):
                raise
            if is_out_of_memory(e):
                _record(trial, recorder)
                trial.set_user_attr("fail_reason", f"out of memory: {(str(e).strip().splitlines() or [''])[0][:200]}")
                return float("nan")
            _record(trial, recorder)
            return _failed(trial, e)
        finally:
            self.training = False
            keras.backend.clear_session(free_memory=True)  # which collects garbage (once is enough)
        result = _record(trial, recorder)
        if result.nan_epoch is not None:
            trial.set_user_attr("fail_reason", f"loss became NaN at epoch {result.nan_epoch + 1}")
            return float("nan")  # Optuna marks the trial FAIL; the search goes on
        best, _ = result.best(OBJECTIVE)
        return self.goal.values(best, trial.user_attrs)

    def _check_limits(self, trial: optuna.Trial, model: keras.Model) -> None:
        """Measure the latency when an objective or a limit needs it, store the constraint values
        (Optuna's convention: <= 0 keeps the limit), and prune a trial over a limit before training."""
        if self.goal.needs_latency:
            x = self.splits.x_val[: LATENCY_CALLS].astype("float32")
            latency = measure_latency(model, x, single=LATENCY_CALLS, batch=None)["latency_ms_batch1"]
            trial.set_user_attr("latency_ms", round(latency, 4))
            trial.set_user_attr("latency_device", device_name())
        if self.goal.limited:
            attrs = trial.user_attrs
            for name, value in self.goal.constraints(attrs).items():
                trial.set_constraint(name, value)
            broken = self.goal.broken_limit(attrs)
            if broken is not None:
                trial.set_user_attr("pruned_reason", broken)
                raise optuna.TrialPruned(f"over a limit before training: {broken}")


def _storage_error(e: Exception) -> bool:
    """Errors of the study's storage end the trial's run here: the storage is gone (every later trial
    would meet it too), or another process has finished the trial meanwhile."""
    return isinstance(e, (SQLAlchemyError, optuna.exceptions.StorageInternalError,
                          optuna.exceptions.UpdateFinishedTrialError))


def _failed(trial: optuna.Trial, e: Exception) -> float:
    """Record why the trial failed (type and message) and the traceback; NaN tells Optuna FAIL."""
    message = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    trial.set_user_attr("fail_reason", f"{type(e).__name__}: {message}" if message else type(e).__name__)
    trial.set_user_attr("traceback", "".join(traceback.format_exception(e))[-4000:])
    return float("nan")


def _interrupt_if(stop_requested: Callable[[], bool]) -> Callable[..., None]:
    """A batch-end hook that turns a stop request into KeyboardInterrupt, raised from Python between
    steps: a signal that interrupts TensorFlow inside its C code can surface as a SystemError."""

    def check(batch: int, logs: dict | None = None) -> None:
        if stop_requested():
            raise KeyboardInterrupt

    return check


class PruneAtEpochEnd(keras.callbacks.Callback):
    """Reports validation accuracy after every epoch, at step = epochs trained (1, 2, ...: the unit the
    pruners' resources count in, and what optuna-dashboard's learning curves show), and prunes the
    trial when the pruner says so. A trial that reached its last epoch is not pruned after the fact:
    it completes. Past `deadline` (a time budget), a trial is pruned at its next epoch end whatever
    its value. With `cost_cap` (seconds) and the `recorder` of its epochs, a trial is pruned at the first
    epoch end from the TIMED_EPOCHS-th on where its epochs so far project all of them to take longer than
    that (`projected_seconds`, kept in the user attribute `projected_seconds`)."""

    def __init__(self, trial: optuna.Trial, epochs: int, deadline: float | None = None,
                 cost_cap: float | None = None, recorder: EpochRecorder | None = None) -> None:
        super().__init__()
        self.trial, self.epochs, self.deadline = trial, epochs, deadline
        self.cost_cap, self.recorder = cost_cap, recorder

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value, step = (logs or {}).get(OBJECTIVE), epoch + 1
        if value is None:
            return
        self.report(float(value), step)
        if step >= self.epochs:
            return
        if self.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {step}: val_accuracy {float(value):.4f}")
        if self.cost_cap is not None and self.recorder is not None and step >= TIMED_EPOCHS:
            cost = projected_seconds(self.recorder.result.epoch_seconds, self.epochs)
            if cost > self.cost_cap:
                self.trial.set_user_attr("projected_seconds", cost)  # unrounded: what the cap was compared with
                self.trial.set_user_attr("pruned_reason", COST_CAP)
                raise optuna.TrialPruned(f"{self.epochs} epochs would take {cost:.0f} s, more than the "
                                         f"{self.cost_cap:.0f} s allowed")
        if self.deadline is not None and time.time() >= self.deadline:
            self.trial.set_user_attr("pruned_reason", "time budget")
            raise optuna.TrialPruned(f"time budget spent at epoch {step}")

    def report(self, value: float, step: int) -> None:
        self.trial.report(value, step=step)

    def should_prune(self) -> bool:
        return self.trial.should_prune()


class ParetoPruneAtEpochEnd(PruneAtEpochEnd):
    """`PruneAtEpochEnd` for several objectives, where Optuna refuses `trial.report()` and
    `trial.should_prune()`: the validation curve grows in the user attribute `val_curve`, and the
    study's pruner (`moasha.ParetoSuccessiveHalving`) is asked through `BasePruner.prune`."""

    def report(self, value: float, step: int) -> None:
        self.trial.set_user_attr(CURVE, [*(self.trial.user_attrs.get(CURVE) or []), round(value, 6)])

    def should_prune(self) -> bool:
        study = self.trial.study
        return study.pruner.prune(study, study._storage.get_trial(self.trial._trial_id))


def _record(trial: optuna.Trial, recorder: EpochRecorder) -> FitResult:
    """Store the curves and timings of the epochs that ran as user attributes."""
    r = recorder.result
    trial.set_user_attr("history", {k: [round(v, 6) for v in vs] for k, vs in r.history.items()})
    trial.set_user_attr("epoch_seconds", [round(t, 3) for t in r.epoch_seconds])
    trial.set_user_attr("train_seconds", [round(t, 3) for t in r.train_seconds])
    trial.set_user_attr("epochs_run", r.epochs_run)
    trial.set_user_attr("images_per_second", round(r.images_per_second, 1))
    if r.epochs_run:
        best, epoch = r.best(OBJECTIVE)
        if not math.isnan(best):
            trial.set_user_attr("val_accuracy", best)
            trial.set_user_attr("best_epoch", epoch + 1)
            trial.set_user_attr("val_loss", r.history["val_loss"][epoch])
    return r

