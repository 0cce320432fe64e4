"""Training a model: the input pipeline (`pipeline`, with the augmentations of `augment`), optimizers
and schedules (`optimizers`), the one training loop (`fit`) with its callbacks, and the test-set
evaluation (`evaluate`). Knows Keras, not Optuna."""

from .augment import AUGMENTATIONS, Augmentation, get_augmentation
from .callbacks import (
    EpochProgress,
    EpochRecorder,
    FitResult,
    Lookahead,
    projected_seconds,
)
from .evaluate import (
    TTA_MODES,
    Evaluation,
    evaluate_model,
    matching_tta,
    measure_latency,
    predict_probs,
)
from .fit import EVAL_BATCH_SIZE, compile_model, evaluate, fit, fit_within
from .optimizers import OPTIMIZERS, SCHEDULES, make_optimizer
from .pipeline import make_dataset
from .plan import images_per_epoch, steps_per_epoch

__all__ = [
    "AUGMENTATIONS", "EVAL_BATCH_SIZE", "OPTIMIZERS", "SCHEDULES", "TTA_MODES", "Augmentation", "EpochProgress",
    "EpochRecorder", "Evaluation", "FitResult", "Lookahead", "compile_model", "evaluate", "evaluate_model", "fit", "fit_within",
    "get_augmentation", "images_per_epoch", "make_dataset", "make_optimizer", "matching_tta", "measure_latency",
    "predict_probs", "projected_seconds",
    "steps_per_epoch",
]
