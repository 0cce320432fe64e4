"""The same search space as a KerasTuner HyperModel, so KerasTuner's tuners search exactly what ours do.

    import keras_tuner as kt
    from cifar_automl.search.kerastuner import SpaceHyperModel
    hypermodel = SpaceHyperModel(load_space("all"), splits, epochs=9)
    tuner = kt.Hyperband(hypermodel, objective="val_accuracy", max_epochs=9, factor=3, directory=...)
    tuner.search(splits.x_train, splits.y_train, validation_data=(splits.x_val, splits.y_val))

Sampling goes through the space's own `SearchSpace.sample` with KerasTuner's `HyperParameters` behind
the Optuna-style `suggest_*` calls; the model comes from `models.build_model` and training is
`training.fit`, as in a search trial. Only the search strategy differs.
"""

from __future__ import annotations

from typing import Any

import keras_tuner as kt

from ..config import TrialConfig
from ..data import Splits, channel_stats
from ..models import build_model
from ..study import OBJECTIVE
from ..training import fit
from .settings import SearchSettings
from .space import SearchSpace


class KerasTunerTrial:
    """`space.TrialLike` over KerasTuner's `HyperParameters`: suggest_* registers and reads `hp.*`.

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

    `epochs` is the training length the schedule is laid out over (the search's epochs per trial),
    as in a search trial; KerasTuner's Hyperband trains a model for fewer epochs and resumes it from
    its checkpoint, and `fit` then picks the schedule, the lookahead and the data order up at the
    epoch it resumes from (`training.fit`'s `initial_epoch`). Training is `training.fit` itself:
    the same batches, schedule and weight averaging as a search trial with the same seed.
    """

    def __init__(self, space: SearchSpace, splits: Splits, epochs: int, seed: int = 0) -> None:
        super().__init__(name=f"cifar_automl_{space.name}")
        self.space, self.splits, self.epochs, self.seed = space, splits, epochs, seed
        self.mean, self.std = channel_stats(splits.x_train)

    @classmethod
    def from_settings(cls, settings: SearchSettings, space: SearchSpace, splits: Splits) -> SpaceHyperModel:
        """The HyperModel of a search's own settings (its epochs per trial and seed): the KerasTuner run
        that a `cifar-automl search` with these settings is compared with."""
        return cls(space, splits, epochs=settings.epochs, seed=settings.seed)

    def config(self, hp: kt.HyperParameters) -> TrialConfig:
        return self.space.sample(KerasTunerTrial(hp, self.space.default_params()), self.epochs)

    def build(self, hp: kt.HyperParameters) -> Any:
        """The model, uncompiled: `fit` compiles it with the configuration's optimizer and schedule."""
        cfg = self.config(hp)
        x = self.splits.x_train
        return build_model(cfg.arch, x.shape[1:], len(self.splits.class_names), mean=self.mean, std=self.std,
                           sample=x)

    def fit(self, hp: kt.HyperParameters, model: Any, x: Any, y: Any, validation_data: Any = None,
            callbacks: Any = (), epochs: int | None = None, initial_epoch: int = 0, **kwargs: Any) -> dict:
        """Train epochs [initial_epoch, epochs) of the configuration's schedule; return the best epoch's
        metrics (KerasTuner scores a trial by its objective in them)."""
        cfg = self.config(hp)
        result = fit(model, x, y, cfg.train, validation=validation_data, callbacks=list(callbacks), seed=self.seed,
                     initial_epoch=initial_epoch, stop_epoch=epochs or self.epochs)
        if validation_data is None or not result.history.get(OBJECTIVE):
            return {k: v[-1] for k, v in result.history.items()}
        _, best = result.best(OBJECTIVE)
        return {k: v[best] for k, v in result.history.items()}
