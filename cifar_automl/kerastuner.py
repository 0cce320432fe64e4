"""The same search space as a KerasTuner HyperModel, so KerasTuner's tuners search exactly what ours do.

    import keras_tuner as kt
    from cifar_automl.kerastuner import SpaceHyperModel
    hypermodel = SpaceHyperModel(load_space("all"), splits, epochs=9)
    tuner = kt.Hyperband(hypermodel, objective="val_accuracy", max_epochs=9, factor=3, directory=...)
    tuner.search(splits.x_train, splits.y_train, validation_data=(splits.x_val, splits.y_val))

Sampling goes through the space's own `SearchSpace.sample` with KerasTuner's `HyperParameters` behind
the Optuna-style `suggest_*` calls; the model comes from `models.build_model`, training from the
package's tf.data pipeline, optimizer, schedule and loss. Only the search strategy differs.
"""

from __future__ import annotations

import math
from typing import Any

import keras_tuner as kt

from .config import TrialConfig
from .data import Splits, channel_stats
from .spaces import SearchSpace


class KerasTunerTrial:
    """`spaces.TrialLike` over KerasTuner's `HyperParameters`: suggest_* registers and reads `hp.*`.

    `defaults` (a space's `default_params()`) become KerasTuner's `default=`: the value a parameter
    takes before the tuner sets one, e.g. in the build that registers the space, or when a tuner is
    told not to tune new entries.
    """

    def __init__(self, hp: kt.HyperParameters, defaults: dict[str, Any] | None = None) -> None:
        self.hp, self.defaults = hp, defaults or {}

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self.hp.Int(name, low, high, step=step, sampling="log" if log else "linear",
                           default=self.defaults.get(name))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        return self.hp.Float(name, low, high, step=step, sampling="log" if log else "linear",
                             default=self.defaults.get(name))

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.hp.Choice(name, list(choices), default=self.defaults.get(name))


class SpaceHyperModel(kt.HyperModel):
    """Builds and trains the model a search-space configuration describes, for any KerasTuner tuner.

    `epochs` is the training length the learning-rate schedule is laid out over (the search's epochs
    per trial; KerasTuner's Hyperband trains a model for fewer and resumes it from its checkpoint).
    """

    def __init__(self, space: SearchSpace, splits: Splits, epochs: int, seed: int = 0) -> None:
        super().__init__(name=f"cifar_automl_{space.name}")
        self.space, self.splits, self.epochs, self.seed = space, splits, epochs, seed
        self.mean, self.std = channel_stats(splits.x_train)

    def config(self, hp: kt.HyperParameters) -> TrialConfig:
        return self.space.sample(KerasTunerTrial(hp, self.space.default_params()), self.epochs)

    def build(self, hp: kt.HyperParameters) -> Any:
        from .models import build_model
        from .train import compile_model

        cfg = self.config(hp)
        x = self.splits.x_train
        model = build_model(cfg.arch, x.shape[1:], len(self.splits.class_names), mean=self.mean, std=self.std,
                            sample=x)
        compile_model(model, cfg.train, math.ceil(len(x) / cfg.train.batch_size))
        return model

    def fit(self, hp: kt.HyperParameters, model: Any, x: Any, y: Any, validation_data: Any = None,
            **kwargs: Any) -> Any:
        from .pipeline import make_dataset, steps_per_epoch
        from .train import EVAL_BATCH_SIZE, Lookahead

        cfg = self.config(hp)
        n = len(self.splits.class_names)
        train = make_dataset(x, y, n, cfg.train.batch_size, training=True, augment=cfg.train.augment,
                             seed=self.seed)
        val = None
        if validation_data is not None:
            val = make_dataset(*validation_data, n, EVAL_BATCH_SIZE, training=False)
        steps = steps_per_epoch(len(x), cfg.train.batch_size)
        if cfg.train.lookahead:
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), Lookahead(self.epochs * steps)]
        kwargs.setdefault("epochs", self.epochs)
        kwargs.setdefault("verbose", 0)
        return model.fit(train, validation_data=val, steps_per_epoch=steps, shuffle=False, **kwargs)
