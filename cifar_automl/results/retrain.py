"""Retrain a study's best configuration on all training data, evaluate it once on the test split, save it.

The model is rebuilt from the trial's stored config alone, trained on train + validation data (or
with a validation slice kept for early stopping) for longer than in the search, with the learning-rate
schedule stretched to the new length. Everything lands in `studies/<study>/retrain/<trial>/` and a
summary goes back into the study as the user attribute `retrain:<trial>`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
from optuna.trial import TrialState

from ..config import TrialConfig, option
from ..data import Splits, channel_stats, load_dataset, make_splits
from ..errors import StudyError, UserError
from ..models import build_model
from ..pareto import spread
from ..runtime import backend_name, configure_devices, device_name
from ..study import accuracy, load_existing_study, search_settings_of
from ..training import (
    TTA_MODES,
    EpochProgress,
    Evaluation,
    FitResult,
    evaluate_model,
    fit,
    fit_within,
    steps_per_epoch,
)
from .bundle import (
    RETRAIN_ATTR,
    describe,
    model_name,
    retrain_dir,
    write_atomically,
    write_bundle,
)

EPOCH_MULTIPLIER = 3  # retrain for this many times the search's epochs per trial
PARETO_MODELS = 5  # retrain --pareto's default: models spread along the front


@dataclass(frozen=True)
class RetrainSettings:
    """Everything `cifar-automl retrain` accepts (each field with its flag, see `config.option`)."""

    study_name: str = option(dataclasses.MISSING, "the study (search's default: the space name)")
    storage: str | None = option(None, "Optuna storage URL (default: sqlite:///STUDIES_DIR/STUDY_NAME.db)")
    studies_dir: str = option("studies", "(default: %(default)s)")
    trial: int | None = option(None, "trial number (default: the best)")
    top: int = option(1, "retrain the top K trials, to compare them on the test split (default: %(default)s)")
    pareto: int | None = option(
        None, "a study of several objectives: retrain K trials spread along its Pareto front (K: default 5; "
        "a smaller front whole)", const=PARETO_MODELS, metavar="K")
    epochs: int | None = option(None, f"default: {EPOCH_MULTIPLIER} x the search's epochs per trial")
    # the schedule's length in steps, its last epoch cut short there (auto sizes a retrain to the time left)
    steps: int | None = option(None, "", cli=False)
    # seconds the training and the test pass may take: the schedule is re-sized after its first epoch
    # (and again later in a long run) to end within them (training.fit_within), to at most max_epochs
    # epochs, keeping test_seconds of them for the test pass, scaled as the epochs speed up or slow down
    # (auto sizes a retrain to its budget)
    time_limit: float | None = option(None, "", cli=False)
    max_epochs: int | None = option(None, "", cli=False)
    test_seconds: float = option(0.0, "", cli=False)
    seed: int = option(0, "(default: %(default)s)")
    early_stopping: bool = option(
        False, "keep --val-fraction aside, stop when val accuracy stalls, restore the best weights")
    patience: int = option(5, "epochs without improvement (default: %(default)s)")
    val_fraction: float = option(0.1, "(default: %(default)s)")
    data_dir: str | None = option(None, "where the study's data is now, if it moved since the search")
    cache_dir: str | None = option(None, "where decoded arrays are cached (default: ~/.cache/cifar-automl)")
    tta: str = option("none", "average test predictions over mirrored (flip) and also 1-pixel-moved "
                      "(flip_translate) views (default: %(default)s)", choices=lambda: TTA_MODES)
    overwrite: bool = option(False, "replace an earlier retrain of the same trial")
    mixed_precision: bool = option(False, "float16 compute on a GPU (bfloat16 on a CPU)")
    progress: bool = option(True, "", cli=False)  # a progress bar over epochs (the CLI's --quiet turns it off)


@dataclass
class RetrainResult:
    trial: int
    out_dir: Path
    metrics: dict[str, Any]
    fit: FitResult
    evaluation: Evaluation


def pick_trials(study: optuna.Study, trial: int | None, top: int) -> list[optuna.trial.FrozenTrial]:
    """The requested trial, or the top K complete trials by validation accuracy."""
    trials = study.get_trials(deepcopy=False)
    if trial is not None:
        match = [t for t in trials if t.number == trial]
        if not match:
            raise StudyError(f"study '{study.study_name}' has no trial {trial} (trials 0..{len(trials) - 1})")
        if "config" not in match[0].user_attrs:
            raise StudyError(f"trial {trial} has no stored config (state {match[0].state.name.lower()})")
        return match
    if top < 1:
        raise UserError(f"--top must be at least 1, not {top}")
    done = [t for t in trials if t.state == TrialState.COMPLETE and accuracy(t) is not None]
    if not done:
        raise StudyError(f"study '{study.study_name}' has no complete trial yet: run or resume the search first")
    return sorted(done, key=accuracy, reverse=True)[:top]


def pareto_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """`k` trials of the study's Pareto front (Optuna's `best_trials`: feasible ones only, under limits),
    spread evenly along its first cost, cheapest first."""
    if len(study.directions) < 2:
        raise UserError(f"study '{study.study_name}' has one objective: --pareto needs a search with "
                        "--objective accuracy,latency or accuracy,params")
    if k < 1:
        raise UserError(f"--pareto must be at least 1, not {k}")
    front = [t for t in study.best_trials if "config" in t.user_attrs]
    if not front:
        raise StudyError(f"study '{study.study_name}' has no complete trial yet: run or resume the search first")
    picks = spread([t.values for t in front], k)
    return sorted((front[i] for i in picks), key=lambda t: t.values[1])


def load_study_data(study: optuna.Study, settings: RetrainSettings) -> tuple[Splits, dict[str, Any]]:
    """All training data of the study's data set (no subset), with the search's held-out test split."""
    ss = search_settings_of(study)
    ds = load_dataset(
        ss["dataset"], data_dir=settings.data_dir or ss["data_dir"], image_size=ss["image_size"],
        cache_dir=settings.cache_dir,
    )
    splits = make_splits(
        ds, val_fraction=settings.val_fraction, subset=None, seed=settings.seed,
        test_fraction=ss["test_fraction"],
    )
    return splits, ss


def retrain(settings: RetrainSettings) -> list[RetrainResult]:
    """Retrain the chosen trial(s) of a study (see `RetrainSettings`), each into its own folder."""
    study, _ = load_existing_study(settings.study_name, settings.storage, settings.studies_dir)
    chosen = pareto_trials(study, settings.pareto) if settings.pareto else pick_trials(study, settings.trial, settings.top)
    for t in chosen:
        out = retrain_dir(settings.studies_dir, study.study_name, t.number)
        if out.exists() and not settings.overwrite:
            raise UserError(f"{out} already exists: pass --overwrite to replace it")
    splits, ss = load_study_data(study, settings)
    return [retrain_trial(study, t, splits, ss, settings) for t in chosen]


def retrain_trial(
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    splits: Splits,
    search_settings: dict[str, Any],
    settings: RetrainSettings,
) -> RetrainResult:
    """Retrain one trial's configuration on `splits` and keep it (see the module docstring)."""
    configure_devices(settings.mixed_precision)  # as the search trials ran: memory growth, dtype policy
    cfg = TrialConfig.from_dict(trial.user_attrs["config"])
    epochs = EPOCH_MULTIPLIER * int(search_settings["epochs"]) if settings.epochs is None else settings.epochs
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {epochs}")
    cfg = cfg.replace_train(epochs=epochs, steps=settings.steps)  # the schedule stretches with the new length
    x_train, y_train, validation = splits.final_training(settings.early_stopping)
    mean, std = channel_stats(x_train)

    keras.utils.set_random_seed(settings.seed)
    model = build_model(cfg.arch, x_train.shape[1:], len(splits.class_names), mean=mean, std=std,
                        name=model_name(study.study_name, trial.number), sample=x_train)
    out = retrain_dir(settings.studies_dir, study.study_name, trial.number)
    info = describe(study=study.study_name, trial=trial.number, config=cfg.to_dict(), splits=splits, x_train=x_train,
                    seed=settings.seed, normalization={"mean": mean, "std": std},
                    early_stopping=settings.early_stopping)
    result, evaluation, metrics = train_test_save(
        model, cfg.train, x_train, y_train, validation, splits, out, info,
        patience=settings.patience if settings.early_stopping else None,
        progress=settings.progress, desc=f"retrain trial {trial.number}", seed=settings.seed,
        tta=settings.tta, extra={"trial": trial.number, "val_accuracy_search": accuracy(trial)},
        time_limit=settings.time_limit, max_epochs=settings.max_epochs, test_seconds=settings.test_seconds,
    )
    summary = {k: metrics[k] for k in ("accuracy", "loss", "macro_f1", "epochs", "train_minutes", "params",
                                       "backend", "device")}
    summary.update(path=str(out), created=info["created"], tta=settings.tta, pareto=bool(settings.pareto),
                   values=list(trial.values or []))
    study.set_user_attr(f"{RETRAIN_ATTR}{trial.number}", summary)
    keras.backend.clear_session(free_memory=True)
    return RetrainResult(trial.number, out, metrics, result, evaluation)


def train_test_save(
    model: Any,
    train_cfg: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray] | None,
    splits: Splits,
    out: Path,
    info: dict[str, Any],
    *,
    patience: int | None,
    progress: bool,
    desc: str,
    seed: int,
    tta: str = "none",
    extra: dict[str, Any] | None = None,
    time_limit: float | None = None,
    max_epochs: int | None = None,
    test_seconds: float = 0.0,
) -> tuple[FitResult, Evaluation, dict[str, Any]]:
    """Train `model` as `train_cfg` says, evaluate it once on the test split, save it with its
    artifacts in `out` (replacing an earlier bundle there only once the new one is complete). Shared
    by retraining and baselines. With `time_limit` (seconds), the schedule is re-sized after its first
    epoch (and later: `fit_within`) to end training within it (at most `max_epochs` epochs), less the
    test pass's `test_seconds`, scaled as the epochs speed up or slow down; the saved config is the one trained."""
    callbacks: list[keras.callbacks.Callback] = []
    if patience is not None and validation is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True,
        ))
    if progress:
        callbacks.append(EpochProgress(train_cfg.epochs, desc=desc))
    start = time.perf_counter()
    steps = steps_per_epoch(len(x_train), train_cfg.batch_size)
    if time_limit is None:
        result = fit(model, x_train, y_train, train_cfg, validation=validation, callbacks=callbacks, seed=seed)
    else:
        result, train_cfg = fit_within(model, x_train, y_train, train_cfg, time_limit, validation=validation,
                                       callbacks=callbacks, seed=seed,
                                       max_steps=None if max_epochs is None else max_epochs * steps,
                                       after=test_seconds)
        if "config" in info:
            info["config"]["train"].update(epochs=train_cfg.epochs, steps=train_cfg.steps)
    train_seconds = time.perf_counter() - start
    if result.nan_epoch is not None:
        raise StudyError(f"{desc} diverged (loss NaN at epoch {result.nan_epoch + 1})")
    evaluation = evaluate_model(model, splits.x_test, splits.y_test, splits.class_names, tta=tta)
    metrics = {
        **evaluation.metrics,
        **(extra or {}),
        "epochs": result.epochs_run,
        "schedule_steps": train_cfg.total_steps(steps),
        # fit_within's re-sizes: [epochs trained, the schedule's new length in steps]
        "schedule_resizes": [list(r) for r in result.resizes],
        "train_images": int(len(x_train)),
        "train_minutes": train_seconds / 60,
        "params": int(model.count_params()),
        "backend": backend_name(),
        "device": device_name(),
    }
    write_atomically(out, lambda folder: write_bundle(folder, model, info, result, evaluation, metrics, splits))
    return result, evaluation, metrics
