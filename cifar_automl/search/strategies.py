"""How a search chooses and stops trials: Optuna's samplers and pruners, by the names the CLI takes.

Adding a sampler or a pruner is one function in `SAMPLERS` or `PRUNERS`.
"""

from __future__ import annotations

import warnings
from typing import Callable

import optuna

from ..errors import UserError


def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    # multivariate + group: models the joint distribution and handles conditional parameters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


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


SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
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


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler '{name}' (choose from {', '.join(SAMPLERS)})")
    return SAMPLERS[name](seed)


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name not in PRUNERS:
        raise UserError(f"unknown pruner '{name}' (choose from {', '.join(PRUNERS)})")
    return PRUNERS[name](epochs)


def fresh_seed(seed: int, storage: optuna.storages.BaseStorage, study_name: str) -> int:
    """Sampler seed for a run: offset by the trials already in the study, so a resumed study (or a new
    worker) does not replay the random start-up trials of the first run."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return seed
    return seed + len(storage.get_all_trials(study_id, deepcopy=False))
