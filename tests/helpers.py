"""Tiny synthetic data shared by the tests: learnable (class = colour pattern), fast to train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cifar_automl.data import Dataset, Splits, make_splits

# Tests that start processes of their own and wait on the clock: one xdist group, so they run one after
# another and never beside each other (the suite runs in two processes, see pyproject.toml)
TIMED = pytest.mark.xdist_group("timed")


def synthetic_dataset(n_per_class: int = 40, classes: int = 3, size: int = 12, channels: int = 3,
                      seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        base = np.zeros((size, size, channels), np.float32)
        base[..., c % channels] = 180.0  # class c is bright in one channel
        base[: size // 2] += 40.0 * (c // channels)  # and, past the channel count, in the top half
        noise = rng.normal(0, 30, (n_per_class, size, size, channels))
        xs.append(np.clip(base + noise + 30, 0, 255).astype(np.uint8))
        ys.append(np.full(n_per_class, c, np.int64))
    return Dataset(
        name="synthetic",
        x_train=np.concatenate(xs),
        y_train=np.concatenate(ys),
        x_test=None,
        y_test=None,
        class_names=tuple(f"class{c}" for c in range(classes)),
        source="synthetic",
    )


def synthetic_splits(**kwargs) -> Splits:
    return make_splits(synthetic_dataset(**kwargs), val_fraction=0.25, seed=0, test_fraction=0.2)


def write_image_tree(root: Path, n_per_class: int = 12, classes: int = 3, size: int = 12) -> Path:
    """ROOT/train/<class>/<i>.png from the synthetic data set."""
    from PIL import Image

    ds = synthetic_dataset(n_per_class=n_per_class, classes=classes, size=size)
    for i, (x, y) in enumerate(zip(ds.x_train, ds.y_train)):
        folder = root / "train" / ds.class_names[y]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x).save(folder / f"{i:04d}.png")
    return root


def synthetic_study(storage: str, name: str = "synthetic", n_trials: int = 50, seed: int = 0,
                    states: tuple[str, ...] = ("complete", "pruned", "fail"), epochs: int = 9):
    """A study shaped like a real search (configs, curves, timings) made with Optuna's ask/tell and no
    training: for report tests and the report timing benchmark."""
    import optuna
    from optuna.trial import TrialState

    from cifar_automl.search.space import load_space

    rng = np.random.default_rng(seed)
    space = load_space("all")
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    study.set_user_attr("identity", {"space": "all", "epochs": epochs, "dataset": "synthetic"})
    study.set_user_attr("data", {"dataset": "synthetic", "image_shape": [32, 32, 3], "n_train": 8000,
                                 "n_val": 2000, "n_test": 10000})
    quality = {"plain": 0.55, "inception": 0.6, "residual": 0.65}
    for i in range(n_trials):
        trial = study.ask()
        cfg = space.sample(trial, epochs)
        state = states[i % len(states)]
        n_epochs = epochs if state == "complete" else int(rng.integers(1, epochs))
        top = quality[cfg.arch.block] + rng.normal(0, 0.05)
        curve = [float(np.clip(top * (1 - np.exp(-(e + 1) / 3)), 0, 1)) for e in range(n_epochs)]
        secs = [float(rng.uniform(5, 40))] * n_epochs
        trial.set_user_attr("config", cfg.to_dict())
        trial.set_user_attr("params", int(rng.integers(50_000, 2_000_000)))
        trial.set_user_attr("flops", int(rng.integers(10**7, 10**9)))
        trial.set_user_attr("epoch_seconds", secs)
        trial.set_user_attr("epochs_run", n_epochs)
        trial.set_user_attr("history", {"val_accuracy": curve, "accuracy": curve})
        for e, v in enumerate(curve, start=1):  # step: epochs trained, as the search reports
            trial.report(v, e)
        if state == "fail":
            trial.set_user_attr("fail_reason", "loss became NaN at epoch 1")
            study.tell(trial, state=TrialState.FAIL)
            continue
        trial.set_user_attr("val_accuracy", max(curve))
        trial.set_user_attr("val_loss", 1.0 - max(curve))
        if state == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, max(curve))
    return study
