"""Retrain a study's best configuration on all training data, evaluate it once on the test split, save it.

The model is rebuilt from the trial's stored config alone, trained on train + validation data (or
with a validation slice kept for early stopping) for longer than in the search, with the learning-rate
schedule stretched to the new length. Everything lands in `studies/<study>/retrain/<trial>/` and a
summary goes back into the study as the user attribute `retrain:<trial>`.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from . import __version__
from .config import TrialConfig
from .data import Splits, channel_stats, load_dataset, make_splits
from .errors import StudyError, UserError
from .evaluate import Evaluation, evaluate_model
from .train import FitResult

EPOCH_MULTIPLIER = 3  # retrain for this many times the search's epochs per trial
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class RetrainSettings:
    study_name: str
    storage: str | None = None
    studies_dir: str = "studies"
    trial: int | None = None  # default: the best trial
    top: int = 1  # retrain the top K trials (to compare them on the test split)
    epochs: int | None = None  # default: EPOCH_MULTIPLIER x the search's epochs
    seed: int = 0
    early_stopping: bool = False  # keep --val-fraction aside, stop on val accuracy, restore best weights
    patience: int = 5
    val_fraction: float = 0.1
    data_dir: str | None = None  # where the data is now, if it moved since the search
    cache_dir: str | None = None
    tta: str = "none"  # test-time augmentation: none | flip | flip_translate (evaluate.predict_probs)
    overwrite: bool = False
    progress: bool = True


@dataclass
class RetrainResult:
    trial: int
    out_dir: Path
    metrics: dict[str, Any]
    fit: FitResult
    evaluation: Evaluation


def retrain_dir(studies_dir: str | Path, study_name: str, trial: int) -> Path:
    return Path(studies_dir) / study_name / "retrain" / str(trial)


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
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not done:
        raise StudyError(f"study '{study.study_name}' has no complete trial yet: run or resume the search first")
    return sorted(done, key=lambda t: t.value, reverse=True)[:top]


def load_study_data(study: optuna.Study, settings: RetrainSettings) -> tuple[Splits, dict[str, Any]]:
    """All training data of the study's data set (no subset), with the search's held-out test split."""
    ss = study.user_attrs.get("search_settings")
    if ss is None:
        raise StudyError(f"study '{study.study_name}' does not record its data settings: was it made by cifar-automl?")
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
    from .search import load_existing_study

    study, _ = load_existing_study(settings.study_name, settings.storage, settings.studies_dir)
    chosen = pick_trials(study, settings.trial, settings.top)
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
    import keras

    from .models import build_model

    cfg = TrialConfig.from_dict(trial.user_attrs["config"])
    epochs = settings.epochs or EPOCH_MULTIPLIER * int(search_settings["epochs"])
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {epochs}")
    cfg = cfg.replace_train(epochs=epochs)  # the schedule stretches with the new length
    if settings.early_stopping:
        x_train, y_train = splits.x_train, splits.y_train
        validation = (splits.x_val, splits.y_val)
    else:
        x_train = np.concatenate([splits.x_train, splits.x_val])
        y_train = np.concatenate([splits.y_train, splits.y_val])
        validation = None
    mean, std = channel_stats(x_train)

    keras.utils.set_random_seed(settings.seed)
    model = build_model(cfg.arch, x_train.shape[1:], len(splits.class_names), mean=mean, std=std,
                        name=f"{study.study_name}_trial{trial.number}", sample=x_train)
    out = retrain_dir(settings.studies_dir, study.study_name, trial.number)
    card = {
        "study": study.study_name,
        "trial": trial.number,
        "config": cfg.to_dict(),
        "class_names": list(splits.class_names),
        "input_shape": list(x_train.shape[1:]),
        "normalization": {"mean": mean, "std": std},
        "data": {**splits.info, "retrain_train_images": int(len(x_train))},
        "seed": settings.seed,
        "early_stopping": settings.early_stopping,
        "cifar_automl_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    result, evaluation, metrics = fit_evaluate_save(
        model, cfg.train, x_train, y_train, validation, splits, out, card,
        patience=settings.patience if settings.early_stopping else None,
        progress=settings.progress, desc=f"retrain trial {trial.number}", seed=settings.seed,
        tta=settings.tta, extra={"trial": trial.number, "val_accuracy_search": trial.value},
    )
    summary = {k: metrics[k] for k in ("accuracy", "loss", "macro_f1", "epochs", "train_minutes", "params")}
    summary.update(path=str(out), created=card["created"], tta=settings.tta)
    study.set_user_attr(f"retrain:{trial.number}", summary)
    keras.backend.clear_session(free_memory=True)
    return RetrainResult(trial.number, out, metrics, result, evaluation)


def fit_evaluate_save(
    model: Any,
    train_cfg: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray] | None,
    splits: Splits,
    out: Path,
    card: dict[str, Any],
    *,
    patience: int | None,
    progress: bool,
    desc: str,
    seed: int,
    tta: str = "none",
    extra: dict[str, Any] | None = None,
) -> tuple[FitResult, Evaluation, dict[str, Any]]:
    """Train `model` as `train_cfg` says, evaluate it once on the test split, save it with its
    artifacts in `out` (replacing what is there). Shared by retraining and baselines."""
    import keras

    from .train import EpochProgress, fit

    callbacks: list[keras.callbacks.Callback] = []
    if patience is not None and validation is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True,
        ))
    if progress:
        callbacks.append(EpochProgress(train_cfg.epochs, desc=desc))
    start = time.perf_counter()
    result = fit(model, x_train, y_train, train_cfg, validation=validation, callbacks=callbacks, seed=seed)
    train_seconds = time.perf_counter() - start
    if result.nan_epoch is not None:
        raise StudyError(f"{desc} diverged (loss NaN at epoch {result.nan_epoch + 1})")
    evaluation = evaluate_model(model, splits.x_test, splits.y_test, splits.class_names, tta=tta)
    metrics = {
        **evaluation.metrics,
        **(extra or {}),
        "epochs": result.epochs_run,
        "train_images": int(len(x_train)),
        "train_minutes": train_seconds / 60,
        "params": int(model.count_params()),
    }
    if out.exists():
        shutil.rmtree(out)  # callers refuse an existing folder unless told to overwrite
    out.mkdir(parents=True)
    model.save(out / MODEL_FILE)
    write_artifacts(out, card, result, evaluation, metrics, splits)
    return result, evaluation, metrics


def write_artifacts(
    out: Path,
    card: dict[str, Any],
    fit_result: FitResult,
    evaluation: Evaluation,
    metrics: dict[str, Any],
    splits: Splits,
) -> None:
    """config.json, history.csv, metrics.json/.csv, confusion_matrix.csv, predictions.csv,
    samples.npz (misclassified and per-class test images, for the report) and model_card.md."""
    names = card["class_names"]
    (out / CONFIG_FILE).write_text(json.dumps(card, indent=2))
    history = pd.DataFrame(fit_result.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history["seconds"] = fit_result.epoch_seconds
    history.to_csv(out / "history.csv", index=False)
    per_class = evaluation.per_class
    (out / "metrics.json").write_text(json.dumps(
        {**metrics, "per_class": per_class.to_dict(orient="records")}, indent=2))
    per_class.to_csv(out / "metrics.csv", index=False)
    pd.DataFrame(evaluation.confusion, index=pd.Index(names, name="true"), columns=names).to_csv(
        out / "confusion_matrix.csv")
    preds = pd.DataFrame({
        "index": np.arange(len(evaluation.y_true)),
        "true": evaluation.y_true,
        "pred": evaluation.y_pred,
        "true_name": [names[i] for i in evaluation.y_true],
        "pred_name": [names[i] for i in evaluation.y_pred],
        "confidence": evaluation.probs.max(axis=1),
    })
    probs = pd.DataFrame(evaluation.probs, columns=[f"p_{n}" for n in names])
    pd.concat([preds, probs], axis=1).to_csv(out / "predictions.csv", index=False, float_format="%.5f")
    wrong = np.flatnonzero(evaluation.y_true != evaluation.y_pred)[:64]
    per_class_idx = np.concatenate([np.flatnonzero(splits.y_test == c)[:8] for c in range(len(names))])
    np.savez_compressed(
        out / "samples.npz",
        misclassified=splits.x_test[wrong], misclassified_index=wrong,
        misclassified_true=evaluation.y_true[wrong], misclassified_pred=evaluation.y_pred[wrong],
        per_class=splits.x_test[per_class_idx], per_class_label=splits.y_test[per_class_idx],
    )
    (out / "model_card.md").write_text(model_card(card, metrics, per_class))


def model_card(card: dict[str, Any], metrics: dict[str, Any], per_class: pd.DataFrame) -> str:
    train = card["config"]["train"]
    data = card["data"]
    shape = "x".join(str(d) for d in card["input_shape"])
    if "preset" in card:
        title = f"reference model {card['preset']}"
        what = (f"The reference model `{card['preset']}` ({card['description']}), trained with its own recipe "
                f"by cifar-automl {card['cifar_automl_version']} on {data['retrain_train_images']:,} images "
                f"for {metrics['epochs']} epochs.")
    else:
        arch = card["config"]["arch"]
        title = f"{card['study']} trial {card['trial']}"
        what = (f"A {arch['block']} CNN ({arch['stages']} stages x {arch['blocks_per_stage']} blocks, "
                f"widths from {arch['base_filters']}) found by cifar-automl {card['cifar_automl_version']} "
                f"and retrained on {data['retrain_train_images']:,} images for {metrics['epochs']} epochs.")
    lines = [
        f"# Model card: {title}",
        "",
        what,
        "",
        "## Data",
        f"- data set: {data['dataset']} ({data['source']}), input {shape}, {len(card['class_names'])} classes: "
        + ", ".join(card["class_names"]),
        f"- test split: {data['n_test']:,} images ({data['test_source']}), never seen by search or retraining",
        "",
        "## Test results",
        f"- accuracy **{metrics['accuracy']:.4f}**, loss {metrics['loss']:.4f}, macro F1 {metrics['macro_f1']:.4f}"
        + (f", ROC AUC (one-vs-rest) {metrics['roc_auc_ovr']:.4f}" if "roc_auc_ovr" in metrics else "")
        + (f", top-3 accuracy {metrics['top3_accuracy']:.4f}" if "top3_accuracy" in metrics else ""),
        f"- latency on the training machine: {metrics.get('latency_ms_batch1', float('nan')):.2f} ms/image at "
        f"batch 1, {metrics.get('latency_ms_batch256', float('nan')):.3f} ms/image in batches of 256",
        "",
        per_class.to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Configuration",
        "```json",
        json.dumps(card["config"], indent=2),
        "```",
        "",
        "## How to load",
        "The model takes raw pixel values (0..255, float32, shape (N, "
        f"{', '.join(str(d) for d in card['input_shape'])})) and returns class probabilities; scaling and "
        "normalisation are layers inside it. It needs Keras 3 only, not cifar-automl:",
        "```python",
        "import keras, numpy as np",
        f"model = keras.saving.load_model('{MODEL_FILE}')",
        "probs = model.predict(images.astype('float32'))",
        "```",
        f"Class names, in output order, are in `{CONFIG_FILE}` (`class_names`). Train: "
        f"{train['optimizer']}, lr {train['learning_rate']:.2e}, batch {train['batch_size']}, "
        f"{train['lr_schedule']} schedule, augmentation {train['augment']}.",
        "",
    ]
    return "\n".join(lines)
