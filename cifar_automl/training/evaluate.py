"""Test-set evaluation of a trained model: the metrics people report, plus inference latency.

Metrics come from scikit-learn (`classification_report`, `confusion_matrix`, `roc_auc_score`,
`top_k_accuracy_score`); this module only runs the model and gathers them into plain data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import (
    classification_report,
    confusion_matrix,
    log_loss,
    roc_auc_score,
    top_k_accuracy_score,
)

from .augment import get_augmentation
from .fit import EVAL_BATCH_SIZE

# test-time augmentation: which views of each test image predictions are averaged over (predict_probs)
TTA_MODES = ("none", "flip", "flip_translate")
TTA_VIEWS = {"none": 1, "flip": 2, "flip_translate": 6}  # forward passes over each test image


@dataclass
class Evaluation:
    metrics: dict[str, Any]  # accuracy, loss, macro/weighted P/R/F1, roc_auc_ovr, top_k, latency
    per_class: pd.DataFrame  # class, precision, recall, f1, support
    confusion: np.ndarray  # rows: true class, columns: predicted class
    probs: np.ndarray  # (N, classes)
    y_true: np.ndarray
    y_pred: np.ndarray


def predict_probs(model: keras.Model, x: np.ndarray, tta: str = "none") -> np.ndarray:
    """Class probabilities, averaged over test-time views of each image (`tta`):

    none: the image; flip: the image and its mirror image (2 views); flip_translate: as airbench,
    half the weight on those two and half on the mirrored pair of the image moved one pixel up-left
    and one pixel down-right (reflect padding; 6 views).
    """
    if tta not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation '{tta}' (known: {', '.join(TTA_MODES)})")

    def predict(images: np.ndarray) -> np.ndarray:
        return model.predict(images.astype(np.float32), batch_size=EVAL_BATCH_SIZE, verbose=0)

    def with_mirror(images: np.ndarray) -> np.ndarray:
        return (predict(images) + predict(images[:, :, ::-1])) / 2 if tta != "none" else predict(images)

    probs = with_mirror(x)
    if tta == "flip_translate":
        h, w = x.shape[1:3]
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        moved = (with_mirror(padded[:, :h, :w]) + with_mirror(padded[:, 2:h + 2, 2:w + 2])) / 2
        probs = (probs + moved) / 2
    return probs


def matching_tta(augment: str) -> str:
    """The test-time augmentation that matches a training augmentation: the views the model was trained
    to see (mirror images; and moved ones when it trained on shifts)."""
    aug = get_augmentation(augment)
    if aug.flip == "none":
        return "none"
    return "flip_translate" if aug.shift > 0 or aug.crop > 0 else "flip"



def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...] | list[str]
) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray]:
    n = len(class_names)
    labels = list(range(n))
    y_pred = probs.argmax(axis=1)
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=list(class_names), output_dict=True, zero_division=0
    )
    per_class = pd.DataFrame(
        [
            {"class": name, "precision": report[name]["precision"], "recall": report[name]["recall"],
             "f1": report[name]["f1-score"], "support": int(report[name]["support"])}
            for name in class_names
        ]
    )
    metrics: dict[str, Any] = {
        "accuracy": float(np.mean(y_pred == y_true)),
        "loss": float(log_loss(y_true, np.clip(probs, 1e-7, 1.0), labels=labels)),
        "n_test": int(len(y_true)),
    }
    for avg in ("macro avg", "weighted avg"):
        key = avg.split()[0]
        metrics[f"{key}_precision"] = float(report[avg]["precision"])
        metrics[f"{key}_recall"] = float(report[avg]["recall"])
        metrics[f"{key}_f1"] = float(report[avg]["f1-score"])
    present = np.unique(y_true)
    if len(present) == n and n > 2:
        metrics["roc_auc_ovr"] = float(roc_auc_score(y_true, probs, multi_class="ovr", labels=labels))
    elif n == 2 and len(present) == 2:
        metrics["roc_auc_ovr"] = float(roc_auc_score(y_true, probs[:, 1]))
    for k in (3, 5):
        if k < n:
            metrics[f"top{k}_accuracy"] = float(top_k_accuracy_score(y_true, probs, k=k, labels=labels))
    confusion = confusion_matrix(y_true, y_pred, labels=labels)
    return metrics, per_class, confusion


def batch1_latency_ms(predict: Callable[[np.ndarray], Any], x: np.ndarray, calls: int = 50) -> float:
    """Milliseconds per image at batch size 1: the median of `calls` calls of `predict` on single
    images of `x` (float32), after a warm-up call (tracing, an interpreter's first resize)."""
    predict(x[:1])
    times = []
    for i in range(calls):
        start = time.perf_counter()
        predict(x[i % len(x) : i % len(x) + 1])
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def measure_latency(model: keras.Model, x: np.ndarray, single: int = 50, batch: int | None = 256) -> dict[str, float]:
    """Milliseconds per image at batch size 1 (median of `single` calls, after a warm-up call) and in
    batches of `batch` (None: batch 1 only)."""
    x = x.astype(np.float32)
    latency = {"latency_ms_batch1": batch1_latency_ms(model.predict_on_batch, x, single)}
    if batch is None:
        return latency
    xb = np.resize(x, (batch, *x.shape[1:]))
    model.predict_on_batch(xb)
    start = time.perf_counter()
    repeats = 3
    for _ in range(repeats):
        model.predict_on_batch(xb)
    batched = (time.perf_counter() - start) / (repeats * batch)
    return {**latency, f"latency_ms_batch{batch}": 1000 * batched}


def evaluate_model(
    model: keras.Model,
    x_test: np.ndarray,
    y_test: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    *,
    tta: str = "none",
    latency: bool = True,
) -> Evaluation:
    probs = predict_probs(model, x_test, tta=tta)
    metrics, per_class, confusion = classification_metrics(y_test, probs, class_names)
    metrics["tta"] = tta
    if latency:
        metrics.update(measure_latency(model, x_test))
    return Evaluation(metrics, per_class, confusion, probs, y_test, probs.argmax(axis=1))
