"""What a search leaves: retrained models (`retrain`), textbook reference models (`baseline`), each in
a folder laid out by `bundle`, and what is done with them (`export`, `predict`)."""

from .baseline import BaselineSettings, reference_trials, run_baseline
from .bundle import (
    MODEL_FILE,
    Bundle,
    best_retrained,
    load_bundle,
    retrain_dir,
    retrain_summaries,
)
from .export import FORMATS, export_model, measure_export, register_format
from .front import export_front, front_exports
from .predict import predict_files
from .retrain import (
    EPOCH_MULTIPLIER,
    RetrainResult,
    RetrainSettings,
    load_study_data,
    pick_trials,
    retrain,
    retrain_trial,
)

__all__ = [
    "EPOCH_MULTIPLIER", "FORMATS", "MODEL_FILE", "BaselineSettings", "Bundle", "RetrainResult", "RetrainSettings",
    "best_retrained", "export_front", "export_model", "front_exports", "measure_export", "load_bundle", "load_study_data", "pick_trials", "predict_files",
    "reference_trials", "register_format", "retrain", "retrain_dir", "retrain_summaries", "retrain_trial",
    "run_baseline",
]
