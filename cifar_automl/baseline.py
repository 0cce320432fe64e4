"""Train a textbook preset with its own recipe, evaluate it like `retrain`, keep it as a reference.

Results go to a reference study next to the searched one (`<study>-baselines` in the same storage),
one COMPLETE trial per preset with `baseline=<name>`, so the report shows them as baseline rows and
they never count towards, or steer, the search itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna

from . import __version__
from .data import load_dataset, make_splits
from .errors import UserError
from .presets import Preset, get_preset


@dataclass(frozen=True)
class BaselineSettings:
    preset: str
    study_name: str | None = None  # use this study's data and test split; store in "<study>-baselines"
    storage: str | None = None
    studies_dir: str = "studies"
    dataset: str = "cifar10"  # without --study-name
    data_dir: str | None = None
    image_size: int | None = None
    test_fraction: float = 0.2
    cache_dir: str | None = None
    epochs: int | None = None  # default: the preset's recipe
    seed: int = 0
    overwrite: bool = False
    progress: bool = True


def reference_study_name(study_name: str) -> str:
    return f"{study_name}-baselines"


def run_baseline(settings: BaselineSettings) -> dict[str, Any]:
    import keras

    from .retrain import fit_evaluate_save
    from .search import default_storage_url, load_existing_study, open_storage

    preset = get_preset(settings.preset)
    if settings.study_name:
        study, url = load_existing_study(settings.study_name, settings.storage, settings.studies_dir)
        ss = study.user_attrs.get("search_settings") or {}
        dataset, data_dir = ss.get("dataset", settings.dataset), settings.data_dir or ss.get("data_dir")
        image_size, test_fraction = ss.get("image_size"), ss.get("test_fraction", settings.test_fraction)
        ref_name = reference_study_name(settings.study_name)
    else:
        dataset, data_dir = settings.dataset, settings.data_dir
        image_size, test_fraction = settings.image_size, settings.test_fraction
        ref_name = f"baselines-{dataset}"
        url = settings.storage or default_storage_url(settings.studies_dir, ref_name)
    out = Path(settings.studies_dir) / ref_name / preset.name
    if out.exists() and not settings.overwrite:
        raise UserError(f"{out} already exists: pass --overwrite to train {preset.name} again")
    epochs = settings.epochs or preset.recipe.epochs
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {epochs}")
    recipe = dataclasses.replace(preset.recipe, epochs=epochs)

    ds = load_dataset(dataset, data_dir=data_dir, image_size=image_size, cache_dir=settings.cache_dir)
    splits = make_splits(ds, val_fraction=preset.val_fraction, subset=None, seed=settings.seed,
                         test_fraction=test_fraction)
    keras.utils.set_random_seed(settings.seed)
    model = build_preset(preset, splits.x_train.shape[1:], len(splits.class_names))
    card = {
        "study": ref_name,
        "trial": preset.name,
        "preset": preset.name,
        "description": preset.description,
        "config": {"train": dataclasses.asdict(recipe)},
        "class_names": list(splits.class_names),
        "input_shape": list(splits.x_train.shape[1:]),
        "data": {**splits.info, "retrain_train_images": int(len(splits.x_train))},
        "seed": settings.seed,
        "cifar_automl_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    result, evaluation, metrics = fit_evaluate_save(
        model, recipe, splits.x_train, splits.y_train, (splits.x_val, splits.y_val), splits, out, card,
        patience=preset.early_stopping_patience, progress=settings.progress, desc=f"baseline {preset.name}",
        seed=settings.seed, extra={"preset": preset.name},
    )
    val_acc = (result.best("val_accuracy")[0] if preset.early_stopping_patience
               else result.history["val_accuracy"][-1])
    storage = open_storage(url)
    ref = optuna.create_study(study_name=ref_name, storage=storage, direction="maximize", load_if_exists=True)
    ref.set_user_attr("reference_for", settings.study_name)
    ref.add_trial(optuna.trial.create_trial(
        value=val_acc,
        user_attrs={
            "baseline": preset.name, "description": preset.description, "config": card["config"],
            "params": metrics["params"], "val_accuracy": val_acc, "test_accuracy": metrics["accuracy"],
            "epochs_run": result.epochs_run, "epoch_seconds": result.epoch_seconds,
            "history": result.history, "path": str(out), "cifar_automl_version": __version__,
        },
    ))
    keras.backend.clear_session(free_memory=True)
    return {"preset": preset.name, "val_accuracy": val_acc, "out": out, "study": ref_name, **metrics}


def build_preset(preset: Preset, input_shape: Any, num_classes: int) -> Any:
    """The preset's model for this data, or one clear error when its design does not fit the input."""
    try:
        return preset.build(input_shape, num_classes)
    except ValueError as e:
        raise UserError(f"preset {preset.name} does not fit {tuple(input_shape)} inputs ({preset.shape_note}): "
                        f"{str(e).splitlines()[0][:150]}") from None


def reference_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Baseline trials kept for a searched study, if any."""
    try:
        ref = optuna.load_study(study_name=reference_study_name(study.study_name), storage=study._storage)
    except KeyError:
        return []
    return [t for t in ref.get_trials(deepcopy=False) if t.user_attrs.get("baseline")]
