"""The folder a trained model lives in (a retrain or a baseline): its file names, writing it, reading it
back, and its model card. Every stage that touches such a folder (retrain, baseline, export, predict,
the report) goes through here, so its layout is agreed in one place.

    studies/<study>/retrain/<trial>/
        model.keras          the model (preprocessing inside: raw pixels in, probabilities out)
        config.json          what it is: config, class names, normalisation, data, seed, version
        history.csv          per-epoch training (and validation) curves with seconds
        metrics.json/.csv    test metrics (overall, per class)
        confusion_matrix.csv, predictions.csv, samples.npz (test images for the report)
        model_card.md        the same in prose
        export/              `cifar-automl export` writes the other formats here
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
import pandas as pd

from .. import __version__
from ..data import Splits
from ..errors import UserError
from ..training import Evaluation, FitResult

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
METRICS_CSV = "metrics.csv"
CONFUSION_FILE = "confusion_matrix.csv"
PREDICTIONS_FILE = "predictions.csv"
SAMPLES_FILE = "samples.npz"
CARD_FILE = "model_card.md"
LABELS_FILE = "labels.txt"  # beside an exported model: class names in output order
EXPORT_DIR = "export"
RETRAIN_ATTR = "retrain:"  # study user attribute `retrain:<trial>`: the summary of that trial's retrain


def retrain_dir(studies_dir: str | Path, study_name: str, trial: int) -> Path:
    return Path(studies_dir) / study_name / "retrain" / str(trial)


def model_name(study_name: str, trial: int) -> str:
    """The Keras name of a trial's model: the study's name with what TensorFlow refuses in a name
    scope (anything but letters, digits, _ . -) replaced by _."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{study_name}_trial{trial}").lstrip("_-") or f"trial{trial}"


def describe(
    *, study: str, trial: int | str, config: dict[str, Any], splits: Splits, x_train: np.ndarray, seed: int,
    normalization: dict[str, Any] | None = None, early_stopping: bool | None = None,
    preset: str | None = None, description: str | None = None,
) -> dict[str, Any]:
    """What a trained model is (the contents of its config.json): config, class names, input shape,
    normalisation, data, seed, version, time; for a reference model also its preset's name and
    description."""
    info: dict[str, Any] = {"study": study, "trial": trial}
    if preset is not None:
        info.update(preset=preset, description=description)
    info.update(
        config=config,
        class_names=list(splits.class_names),
        input_shape=list(x_train.shape[1:]),
        data={**splits.info, "retrain_train_images": int(len(x_train))},
        seed=seed,
        cifar_automl_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    if normalization is not None:
        info["normalization"] = normalization
    if early_stopping is not None:
        info["early_stopping"] = early_stopping
    return info


REQUIRED = (MODEL_FILE, CONFIG_FILE, HISTORY_FILE, METRICS_FILE, CONFUSION_FILE, CARD_FILE)


def is_complete(path: Path) -> bool:
    """Whether `path` holds a whole bundle (a folder cut short by a crash does not)."""
    return all((path / name).is_file() for name in REQUIRED)


def write_atomically(out: Path, write: Callable[[Path], None]) -> None:
    """`write(folder)` into a new folder beside `out`, then put it in `out`'s place in one rename (an
    earlier bundle at `out` is kept until then, and removed after). A crash leaves either the old
    bundle or the new one at `out`, never half of one; its partial folder is hidden (.name.partial-*)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    partial = out.parent / f".{out.name}.partial-{tag}"
    partial.mkdir()
    try:
        write(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        old = out.parent / f".{out.name}.old-{tag}"
        out.rename(old)
        partial.rename(out)
        shutil.rmtree(old)
    else:
        partial.rename(out)


def write_bundle(
    out: Path,
    model: Any,
    info: dict[str, Any],
    fit_result: FitResult,
    evaluation: Evaluation,
    metrics: dict[str, Any],
    splits: Splits,
) -> None:
    """The model and everything about it, into the folder `out` (see `write_atomically`)."""
    names = info["class_names"]
    model.save(out / MODEL_FILE)
    (out / CONFIG_FILE).write_text(json.dumps(info, indent=2))
    history = pd.DataFrame(fit_result.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history["seconds"] = fit_result.epoch_seconds
    history.to_csv(out / HISTORY_FILE, index=False)
    per_class = evaluation.per_class
    (out / METRICS_FILE).write_text(json.dumps(
        {**metrics, "per_class": per_class.to_dict(orient="records")}, indent=2))
    per_class.to_csv(out / METRICS_CSV, index=False)
    pd.DataFrame(evaluation.confusion, index=pd.Index(names, name="true"), columns=names).to_csv(out / CONFUSION_FILE)
    preds = pd.DataFrame({
        "index": np.arange(len(evaluation.y_true)),
        "true": evaluation.y_true,
        "pred": evaluation.y_pred,
        "true_name": [names[i] for i in evaluation.y_true],
        "pred_name": [names[i] for i in evaluation.y_pred],
        "confidence": evaluation.probs.max(axis=1),
    })
    probs = pd.DataFrame(evaluation.probs, columns=[f"p_{n}" for n in names])
    pd.concat([preds, probs], axis=1).to_csv(out / PREDICTIONS_FILE, index=False, float_format="%.5f")
    wrong = np.flatnonzero(evaluation.y_true != evaluation.y_pred)[:64]
    per_class_idx = np.concatenate([np.flatnonzero(splits.y_test == c)[:8] for c in range(len(names))])
    np.savez_compressed(
        out / SAMPLES_FILE,
        misclassified=splits.x_test[wrong], misclassified_index=wrong,
        misclassified_true=evaluation.y_true[wrong], misclassified_pred=evaluation.y_pred[wrong],
        per_class=splits.x_test[per_class_idx], per_class_label=splits.y_test[per_class_idx],
    )
    (out / CARD_FILE).write_text(model_card(info, metrics, per_class))


@dataclass
class Bundle:
    """A retrain folder read back (for the report)."""

    trial: int
    path: Path
    metrics: dict[str, Any]
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    history: pd.DataFrame
    class_names: list[str]
    samples: dict[str, np.ndarray] = field(default_factory=dict)


def load_bundle(path: str | Path, trial: int) -> Bundle | None:
    """The folder's contents, or None when it holds no whole bundle."""
    path = Path(path)
    if not is_complete(path):
        return None
    metrics = json.loads((path / METRICS_FILE).read_text())
    info = json.loads((path / CONFIG_FILE).read_text())
    samples = dict(np.load(path / SAMPLES_FILE)) if (path / SAMPLES_FILE).is_file() else {}
    return Bundle(
        trial=trial,
        path=path,
        metrics={k: v for k, v in metrics.items() if k != "per_class"},
        per_class=pd.DataFrame(metrics.get("per_class", [])),
        confusion=pd.read_csv(path / CONFUSION_FILE, index_col=0),
        history=pd.read_csv(path / HISTORY_FILE),
        class_names=info["class_names"],
        samples=samples,
    )


def class_names_for(model_path: Path) -> list[str] | None:
    """Class names from the config.json (a bundle) or labels.txt (an export) beside a model."""
    info = model_path.parent / CONFIG_FILE
    if info.is_file():
        try:
            return list(json.loads(info.read_text())["class_names"])
        except (ValueError, KeyError):
            pass
    labels = model_path.parent / LABELS_FILE
    if labels.is_file():
        return [line for line in labels.read_text().splitlines() if line]
    return None


def classifier_shape(model: Any, path: Path | str) -> tuple[int, int, int, int]:
    """(height, width, channels, classes) of a model this tool can feed and read: one image input
    (N, H, W, C) of a fixed size with 1 or 3 channels, one output of class scores (N, classes). Any
    other model (a foreign one) gets one clear error."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"{path}: the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                        "an image classifier has one of each")
    shape, out = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]) or shape[3] not in (1, 3):
        raise UserError(f"{path}: input shape {shape} is not an image of a fixed size with 1 or 3 channels "
                        "(batch, height, width, channels)")
    if len(out) != 2 or out[1] is None:
        raise UserError(f"{path}: output shape {out} is not one score per class (batch, classes)")
    return int(shape[1]), int(shape[2]), int(shape[3]), int(out[1])


def retrain_summaries(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """`retrain:<trial>` user attributes of the study, by trial number."""
    return {int(k[len(RETRAIN_ATTR):]): v for k, v in study.user_attrs.items() if k.startswith(RETRAIN_ATTR)}


def best_retrained(study: optuna.Study) -> int | None:
    """The retrained trial with the best test accuracy, or None before any retrain."""
    done = retrain_summaries(study)
    return max(done, key=lambda n: done[n]["accuracy"]) if done else None


def model_card(info: dict[str, Any], metrics: dict[str, Any], per_class: pd.DataFrame) -> str:
    """model_card.md: what the model is, its data, its test results and how to load it."""
    train = info["config"]["train"]
    data = info["data"]
    shape = "x".join(str(d) for d in info["input_shape"])
    if "preset" in info:
        title = f"reference model {info['preset']}"
        what = (f"The reference model `{info['preset']}` ({info['description']}), trained with its own recipe "
                f"by cifar-automl {info['cifar_automl_version']} on {data['retrain_train_images']:,} images "
                f"for {metrics['epochs']} epochs.")
    else:
        arch = info["config"]["arch"]
        title = f"{info['study']} trial {info['trial']}"
        what = (f"A {arch['block']} CNN ({arch['stages']} stages x {arch['blocks_per_stage']} blocks, "
                f"widths from {arch['base_filters']}) found by cifar-automl {info['cifar_automl_version']} "
                f"and retrained on {data['retrain_train_images']:,} images for {metrics['epochs']} epochs.")
    lines = [
        f"# Model card: {title}",
        "",
        what,
        "",
        "## Data",
        f"- data set: {data['dataset']} ({data['source']}), input {shape}, {len(info['class_names'])} classes: "
        + ", ".join(info["class_names"]),
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
        json.dumps(info["config"], indent=2),
        "```",
        "",
        "## How to load",
        "The model takes raw pixel values (0..255, float32, shape (N, "
        f"{', '.join(str(d) for d in info['input_shape'])})) and returns class probabilities; scaling and "
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
