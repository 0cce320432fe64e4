"""Successive halving with several objectives (MO-ASHA, Schmucker et al., 2021), as an Optuna pruner.

At each rung (epochs 1, 3, 9, ... for reduction factor 3), a trial goes on only if it ranks in the
top 1/3 of all trials that reached that rung, ranked by non-dominated front of (validation accuracy
at that rung, costs) and, inside a front, by crowding distance: the proportion Optuna's
SuccessiveHalvingPruner keeps, with the front's order in place of one number's. The costs (latency,
parameters) are known before training, so only accuracy moves between rungs.

Where Optuna stands in the way: `Trial.report()` and `Trial.should_prune()` raise for a study with
several objectives, and multi-objective TPE fails on pruned trials that carry intermediate values. So
each trial keeps its validation curve in the user attribute `val_curve` (written every epoch by the
objective), and the objective asks this pruner through Optuna's own `BasePruner.prune(study, trial)`.
"""

from __future__ import annotations

from typing import Sequence

import optuna
from optuna.trial import FrozenTrial

from ..pareto import ranking
from ..study import CURVE


class ParetoSuccessiveHalving(optuna.pruners.BasePruner):
    """Prune a trial at a rung unless it ranks in the top `1 / reduction_factor` of that rung by
    (front, crowding distance) of (accuracy at the rung, *costs); `costs` name user attributes."""

    def __init__(self, costs: Sequence[str], min_resource: int = 1, reduction_factor: int = 3) -> None:
        if min_resource < 1 or reduction_factor < 2:
            raise ValueError("min_resource must be >= 1 and reduction_factor >= 2")
        self.costs, self.min_resource, self.reduction_factor = tuple(costs), min_resource, reduction_factor

    def is_rung(self, step: int) -> bool:
        rung = self.min_resource
        while rung < step:
            rung *= self.reduction_factor
        return rung == step

    def point(self, trial: FrozenTrial, step: int) -> tuple[float, ...] | None:
        curve = trial.user_attrs.get(CURVE) or []
        if len(curve) < step or any(trial.user_attrs.get(c) is None for c in self.costs):
            return None
        return (float(curve[step - 1]), *(float(trial.user_attrs[c]) for c in self.costs))

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = len(trial.user_attrs.get(CURVE) or [])
        if step == 0 or not self.is_rung(step):
            return False
        mine = self.point(trial, step)
        if mine is None:
            return False
        others = [p for t in study.get_trials(deepcopy=False) if t.number != trial.number
                  for p in [self.point(t, step)] if p is not None]
        points = [mine, *others]
        keep = max(1, len(points) // self.reduction_factor)
        return ranking(points).index(0) >= keep
