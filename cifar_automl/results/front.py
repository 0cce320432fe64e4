"""The Pareto front's models after `retrain --pareto`: each exported in every requested format, and
each exported file measured itself (test accuracy and batch-1 latency, in its format's own runtime on
this machine), beside the Keras model it came from. Kept as the study user attribute
`export:<trial>`, which the report's Pareto section shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from ..errors import StudyError
from ..runtime import device_name
from .bundle import MODEL_FILE, retrain_dir, retrain_summaries
from .export import export_model, export_path, measure_export
from .retrain import RetrainSettings, load_study_data

EXPORT_ATTR = "export:"  # study user attribute `export:<trial>`: {format: {path, accuracy, latency_ms, device}}


def front_trials(study: optuna.Study) -> list[int]:
    """The trials retrained with `retrain --pareto`, by their first cost (cheapest first)."""
    done = {n: s for n, s in retrain_summaries(study).items() if s.get("pareto")}
    if not done:
        raise StudyError(f"no trial of study '{study.study_name}' was retrained with --pareto: run "
                         "cifar-automl retrain --pareto first")
    return sorted(done, key=lambda n: (done[n].get("values") or [0, 0])[1])


def export_front(study: optuna.Study, studies_dir: str | Path, formats: list[str], overwrite: bool = False,
                 storage: str | None = None, data_dir: str | None = None,
                 cache_dir: str | None = None) -> list[dict[str, Any]]:
    """Export every model of the retrained front in `formats` (the .keras file is measured too) and
    measure each file on the study's test split; returns one row per (trial, format)."""
    trials = front_trials(study)
    splits, _ = load_study_data(study, RetrainSettings(study_name=study.study_name, storage=storage,
                                                       studies_dir=str(studies_dir), data_dir=data_dir,
                                                       cache_dir=cache_dir))
    rows = []
    for number in trials:
        model_path = retrain_dir(studies_dir, study.study_name, number) / MODEL_FILE
        measured: dict[str, Any] = {}
        for fmt in dict.fromkeys(["keras", *formats]):
            out = export_path(model_path, fmt, None)
            if not out.exists() or overwrite:
                export_model(model_path, fmt, out, overwrite=overwrite)
            figures = measure_export(out, fmt, splits.x_test, splits.y_test)
            measured[fmt] = {"path": str(out), **figures, "device": device_name()}
            rows.append({"trial": number, "format": fmt, **measured[fmt]})
        study.set_user_attr(f"{EXPORT_ATTR}{number}", measured)
    return rows


def front_exports(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """What `export_front` measured, by trial."""
    return {int(k[len(EXPORT_ATTR):]): v for k, v in study.user_attrs.items() if k.startswith(EXPORT_ATTR)}
