"""Train a textbook preset with its own recipe, evaluate it like `retrain`, keep it as a reference.

Like `retrain`, a preset trains on every training image (train + validation) unless its recipe stops
early, which needs the validation slice to watch.

Results go to a reference study next to the searched one (`<study>-baselines` in the same storage),
one COMPLETE trial per preset with `baseline=<name>` and its test accuracy as the trial's value
(metric `test_accuracy`), so the report shows them as baseline rows and they never count towards, or
steer, the search itself.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import optuna

from .. import __version__
from ..config import option
from ..data import dataset_names, load_dataset, make_splits
from ..errors import UserError
from ..models import build_preset, get_preset
from ..runtime import configure_devices
from ..study import default_storage_url, load_existing_study, open_storage
from .bundle import CONFIG_FILE, describe
from .retrain import train_test_save


@dataclass(frozen=True)
class BaselineSettings:
    """Everything `cifar-automl baseline` accepts (each field with its flag, see `config.option`)."""

    preset: str | None = option(None, "preset name (see --list)", flag="--model")
    study_name: str | None = option(None, "use this study's data and test split; results go to STUDY-baselines")
    storage: str | None = option(None, "Optuna storage URL of that study")
    studies_dir: str = option("studies", "(default: %(default)s)")
    epochs: int | None = option(None, "override the recipe's epochs (CPU budgets)")
    seed: int = option(0, "(default: %(default)s)")
    overwrite: bool = option(False, "train the preset again, replacing its earlier run")
    mixed_precision: bool = option(False, "float16 compute on a GPU (bfloat16 on a CPU)")
    progress: bool = option(True, "", cli=False)  # a progress bar over epochs (the CLI's --quiet turns it off)
    test_fraction: float = option(0.2, "", cli=False)  # carved test share, without --study-name
    dataset: str = option("cifar10", "data set, without --study-name (default: %(default)s)",
                          choices=dataset_names, group="data")
    data_dir: str | None = option(None, "local copy of the data (see cifar-automl search --help)", group="data")
    image_size: int | None = option(None, "resize folder images to this size (default: most common)", group="data")
    cache_dir: str | None = option(None, "where decoded arrays are cached (default: ~/.cache/cifar-automl)",
                                   group="data")


def reference_study_name(study_name: str) -> str:
    return f"{study_name}-baselines"


def run_baseline(settings: BaselineSettings) -> dict[str, Any]:
    """Train the preset with its recipe on the data (a study's, or `dataset`), test it, keep it as a
    COMPLETE trial of the reference study; returns its summary."""
    if not settings.preset:
        raise UserError("pass --model NAME (see cifar-automl baseline --list)")
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
    epochs = preset.recipe.epochs if settings.epochs is None else settings.epochs
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {epochs}")
    recipe = dataclasses.replace(preset.recipe, epochs=epochs)

    ds = load_dataset(dataset, data_dir=data_dir, image_size=image_size, cache_dir=settings.cache_dir)
    configure_devices(settings.mixed_precision)
    splits = make_splits(ds, val_fraction=preset.val_fraction, subset=None, seed=settings.seed,
                         test_fraction=test_fraction)
    early_stopping = preset.early_stopping_patience is not None
    x_train, y_train, validation = splits.final_training(early_stopping)
    keras.utils.set_random_seed(settings.seed)
    model = build_preset(preset, x_train.shape[1:], len(splits.class_names))
    info = describe(study=ref_name, trial=preset.name, config={"train": dataclasses.asdict(recipe)}, splits=splits,
                    x_train=x_train, seed=settings.seed, preset=preset.name, description=preset.description,
                    early_stopping=early_stopping)
    result, evaluation, metrics = train_test_save(
        model, recipe, x_train, y_train, validation, splits, out, info,
        patience=preset.early_stopping_patience, progress=settings.progress, desc=f"baseline {preset.name}",
        seed=settings.seed, extra={"preset": preset.name},
    )
    val_acc = result.best("val_accuracy")[0] if early_stopping else None  # no validation slice otherwise
    storage = open_storage(url)
    ref = optuna.create_study(study_name=ref_name, storage=storage, direction="maximize", load_if_exists=True)
    if not ref.get_trials(deepcopy=False):  # a study of older runs keeps its unnamed values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ref.set_metric_names(["test_accuracy"])
    ref.set_user_attr("reference_for", settings.study_name)
    ref.add_trial(optuna.trial.create_trial(
        value=metrics["accuracy"],
        user_attrs={
            "baseline": preset.name, "description": preset.description, "config": info["config"],
            "params": metrics["params"], "val_accuracy": val_acc, "test_accuracy": metrics["accuracy"],
            "epochs_run": result.epochs_run, "epoch_seconds": result.epoch_seconds,
            "history": result.history, "path": str(out), "cifar_automl_version": __version__,
            "data": data_key(splits.info), "train_minutes": metrics["train_minutes"],
            "backend": metrics["backend"], "device": metrics["device"],
        },
    ))
    keras.backend.clear_session(free_memory=True)
    return {"preset": preset.name, "val_accuracy": val_acc, "out": out, "study": ref_name, **metrics}


def data_key(info: dict[str, Any]) -> dict[str, Any]:
    """What says that two models were tested on the same images: the data set, its source (a local
    copy's path), the image shape and the test split."""
    return {k: info.get(k) for k in ("dataset", "source", "image_shape", "n_test", "test_source")}


def reference_trials(study: optuna.Study, studies_dir: str | Path | None = None) -> list[optuna.trial.FrozenTrial]:
    """The textbook models trained on `study`'s data and tested on its test split: the baselines kept
    for it (`<study>-baselines`, `cifar-automl baseline --study-name`) and those kept for its data set
    (`baselines-<dataset>`, in its storage or in `studies_dir`), the last run of each preset."""
    data = study.user_attrs.get("data") or {}
    names = [reference_study_name(study.study_name), f"baselines-{data.get('dataset')}"]
    studies = []
    for name in names:
        try:
            studies.append(optuna.load_study(study_name=name, storage=study._storage))
        except KeyError:
            url = default_storage_url(studies_dir, name) if studies_dir is not None else None
            if url and Path(url.removeprefix("sqlite:///")).is_file():
                studies.append(optuna.load_study(study_name=name, storage=open_storage(url)))
    want = data_key(data)
    latest: dict[str, optuna.trial.FrozenTrial] = {}
    for ref in studies:
        for t in ref.get_trials(deepcopy=False):
            if t.user_attrs.get("baseline") and _data_of(t) == want:
                latest[t.user_attrs["baseline"]] = t
    return list(latest.values())


def _data_of(trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """A baseline's data key: recorded with it, or (an older run) read from its folder's config.json."""
    if "data" in trial.user_attrs:
        return trial.user_attrs["data"]
    info_file = Path(trial.user_attrs.get("path", "")) / CONFIG_FILE
    try:
        return data_key(json.loads(info_file.read_text())["data"])
    except (OSError, ValueError, KeyError):
        return None
