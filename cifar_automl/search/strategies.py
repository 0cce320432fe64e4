"""How a search chooses and stops trials: Optuna's samplers and pruners, by the names the CLI takes.

Adding a sampler or a pruner is one function in `SAMPLERS` or `PRUNERS`.

Seeds: a sampler's random draws (TPE's start-up trials, random search) are seeded per trial, from
`--seed` and the trial's number (`PerTrialSeed`). Numbers are unique in a study, so workers and
machines that start together sample different configurations, a resumed study does not replay its
first trials, and the same command with the same seed draws the same configurations again.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Callable

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from ..errors import UserError
from .local import LOCAL_SHARE, IncumbentMoves
from .moasha import ParetoSuccessiveHalving
from .objectives import Goal


def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    # multivariate + group: models the joint distribution and handles conditional parameters; with
    # several objectives it is Optuna's multi-objective TPE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


def tpe_local(seed: int, share: float = LOCAL_SHARE, start: int = 1) -> optuna.samplers.BaseSampler:
    """TPE with `share` of the trials (half by default) moving the incumbent by one parameter (`local`),
    once `start` trials are complete or a queued one is."""
    return IncumbentMoves(_tpe(seed), seed, share=share, start=start)


# without a queued trial the climb starts from the best of this many of TPE's random start-up trials
# (5 of its 10 measured best: benchmarks/RESULTS.md, "A hill climb as an option")
HILL_START = 5


def tpe_hill(seed: int) -> optuna.samplers.BaseSampler:
    """Every trial a one-parameter move from the incumbent: a hill climb that never repeats a
    configuration. It climbs from a queued trial once one is complete (the space's defaults, a warm
    start), else from the best of TPE's first `HILL_START` random start-up trials; TPE also decides a
    trial when no untried move is found."""
    return IncumbentMoves(_tpe(seed), seed, share=1.0, start=HILL_START)


def _nsga2(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed)


def _cmaes(seed: int) -> optuna.samplers.BaseSampler:
    # CMA-ES for numbers, TPE for the categorical choices it cannot model
    return optuna.samplers.CmaEsSampler(
        seed=seed, independent_sampler=optuna.samplers.TPESampler(seed=seed), warn_independent_sampling=False,
    )


def _qmc(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.QMCSampler(
        seed=seed, scramble=True, independent_sampler=optuna.samplers.RandomSampler(seed=seed),
        warn_independent_sampling=False,
    )


# TPE and NSGA-II read the trials' constraints (Trial.set_constraint: --max-latency, --max-params)
SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "tpe-local": tpe_local,
    "tpe-hill": tpe_hill,
    "nsga2": _nsga2,
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": _cmaes,
    "qmc": _qmc,
}

# each takes the search's epochs per trial (the pruners' maximum resource)
PRUNERS: dict[str, Callable[[int], optuna.pruners.BasePruner]] = {
    "hyperband": lambda epochs: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3),
    "asha": lambda epochs: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    "median": lambda epochs: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    "none": lambda epochs: optuna.pruners.NopPruner(),
}

# samplers whose draws follow a sequence of the study (QMC: the scrambled sequence's next point)
# rather than a process's random state: one seed for the whole study, not one per trial
STUDY_SEEDED = {"qmc"}


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler '{name}' (choose from {', '.join(SAMPLERS)})")
    if name in STUDY_SEEDED:
        return SAMPLERS[name](seed)
    return PerTrialSeed(SAMPLERS[name], seed)


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial `number` of a search seeded with `seed`."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class PerTrialSeed(optuna.samplers.BaseSampler):
    """A sampler made afresh for every trial, seeded with `trial_seed(seed, trial.number)`.

    The samplers here keep their model in the study (the trials, or the system attributes CMA-ES
    writes), not in the object, so a fresh one per trial samples as the long-lived one would; only
    its random state differs, and that now depends on the trial, not on the process. Each running
    trial keeps its own sampler until it ends, so trials run side by side in threads
    (`study.optimize(n_jobs=2)`) draw from their own seeds, not from whichever trial started last."""

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._sampler = make(seed)  # outside a trial (Optuna's reseed_rng, a trial begun elsewhere)
        self._running: dict[int, optuna.samplers.BaseSampler] = {}
        self._lock = threading.Lock()

    def _of(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        with self._lock:
            return self._running.get(trial.number, self._sampler)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        sampler = self._make(trial_seed(self._seed, trial.number))
        with self._lock:
            self._running[trial.number] = sampler
        sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._of(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._of(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._of(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Any) -> None:
        try:
            self._of(trial).after_trial(study, trial, state, values)
        finally:
            with self._lock:
                self._running.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self._sampler.reseed_rng()


def make_pruner(name: str, epochs: int, goal: Goal | None = None) -> optuna.pruners.BasePruner:
    """The pruner `name`; with several objectives, `hyperband` and `asha` are multi-objective successive
    halving (`moasha`), as Optuna's own pruners rank one value."""
    if name not in PRUNERS:
        raise UserError(f"unknown pruner '{name}' (choose from {', '.join(PRUNERS)})")
    if goal is not None and goal.multi and name != "none":
        if name == "median":
            raise UserError("--pruner median ranks one objective: use asha, hyperband or none with several")
        return ParetoSuccessiveHalving(goal.costs, min_resource=1, reduction_factor=3)
    return PRUNERS[name](epochs)
