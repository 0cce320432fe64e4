"""Local moves from the incumbent beside a model-based sampler (`--sampler tpe-local`, `tpe-hill`).

TPE models where good configurations lie, but on a budget of a few dozen trials it mostly samples
broadly: the best trial so far is rarely refined. `IncumbentMoves` makes a share of the trials
(`LOCAL_SHARE`) a one-parameter move from the study's best complete trial, the incumbent: one of its
parameters takes another value (another choice; for a number, a Gaussian step of `STEP` of its
range, on a log scale where the distribution is log, on the distribution's step grid), the others
stay. The rest of the trials are the base sampler's. This is the local half of PriorBand's mix of
prior, incumbent and model; the prior half is the space's defaults, queued as a new study's first
trial (`warmstart.queue_defaults`).

`start`: moves begin once that many trials have finished (complete or pruned, as TPE counts its
random start-up), or at once when a queued trial is complete (the space's defaults, a warm start; a
retry counts as the trial it repeats): a known-good place to climb from. `--sampler tpe-hill` makes
every trial a move (share 1.0) from the defaults or from the best of TPE's first five start-up trials;
`tpe-local` moves half of them from the first complete trial on.

The incumbent is the best complete trial that keeps the search's limits, read from the whole study:
Optuna's Hyperband pruner shows a sampler only the trials of the trial's bracket, which would make
each bracket refine its own best. A move never proposes a configuration the study already holds
(finished, queued, or another worker's move not yet sampled), and two workers that pick the same move
at the same moment do not both run it (`_claim`). Trials that were queued (defaults,
warm starts, retries) run their own parameters, and with several objectives there is no single
incumbent: the base sampler decides those. A move is recorded in the trial's system attribute
`local_move` ({"from": number, "param": name, "params": the configuration}), which the report shows
as the trial's origin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from ..study import LOCAL_MOVE, repeats

LOCAL_SHARE = 0.5  # share of the trials that are moves from the incumbent
STEP = 0.1  # a numeric move's standard deviation, as a share of the parameter's (log) range
_TRIES = 20  # draws before a move gives up on finding a configuration not yet held
_CLAIMS = 3  # moves a trial writes before it leaves the trial to the base sampler (another worker took each)


class IncumbentMoves(optuna.samplers.BaseSampler):
    """`base`'s trials, and with probability `share` a one-parameter move from the incumbent."""

    def __init__(self, base: optuna.samplers.BaseSampler, seed: int | None = None,
                 share: float = LOCAL_SHARE, step: float = STEP, start: int = 1) -> None:
        self._base, self._share, self._step, self._start = base, share, step, start
        # a stream of its own: the base sampler's random draws come from RandomState(seed), and sharing
        # them would tie the coin to the base's first draw (a trial that is not a move would then draw
        # its first parameter from the upper half of the range)
        self._rng = np.random.RandomState(None if seed is None else np.random.SeedSequence([seed, 1]).generate_state(1))
        self._moves: dict[int, dict[str, Any]] = {}  # trial id -> the move's parameters

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)
        if self._wants_move(study, trial):
            params = self._claim(study, trial)
            if params is not None:
                self._moves[trial._trial_id] = params

    def _wants_move(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if len(study.directions) > 1 or trial.params or {"fixed_params", "failed_trial"} & set(trial.system_attrs):
            return False  # several objectives; a queued trial; the retry of a stale one (it repeats its params)
        return self._rng.random_sample() < self._share

    def _claim(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any] | None:
        """A move that no other trial holds, written into the trial's system attributes.

        Workers sample at the same time: two that read the study before either wrote its move could
        pick the same one. So a move counts only once it is written and a read after the write shows no
        other trial holding it; of two that wrote the same move, the one that reads last sees the
        other's and picks again (both may, never neither)."""
        storage, claimed = study._storage, False
        for _ in range(_CLAIMS):
            move = self._move(study, trial)
            if move is None:
                break
            params, source, name = move
            storage.set_trial_system_attr(trial._trial_id, LOCAL_MOVE,
                                          {"from": source, "param": name, "params": params})
            claimed = True
            others = [t for t in storage.get_all_trials(study._study_id, deepcopy=False)
                      if t._trial_id != trial._trial_id]
            if not any(_holds(h, params) for h in map(_held, others) if h):
                return params
        if claimed:  # every move it wrote was another trial's: it is the base sampler's trial after all
            storage.set_trial_system_attr(trial._trial_id, LOCAL_MOVE, None)
        return None

    def _move(self, study: optuna.Study, trial: FrozenTrial) -> tuple[dict[str, Any], int, str] | None:
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)  # every bracket's
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
                and not math.isnan(t.value) and _feasible(t)]
        finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        if not done or (finished < self._start and not any(_queued(t, trials) for t in done)):
            return None  # no incumbent yet, or none worth climbing from: no queued one and too few to pick from
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        incumbent = (max if maximize else min)(done, key=lambda t: t.value)
        movable = [name for name, d in incumbent.distributions.items() if not d.single()]
        if not movable:
            return None
        held = [h for h in map(_held, trials) if h]  # (this trial's own earlier pick, when it lost a claim)
        for _ in range(_TRIES):
            name = movable[self._rng.randint(len(movable))]
            value = self._neighbour(incumbent.distributions[name], incumbent.params[name])
            if value is None:
                continue
            params = {**incumbent.params, name: value}
            if not any(_holds(p, params) for p in held):
                return params, incumbent.number, name
        return None

    def _neighbour(self, dist: BaseDistribution, value: Any) -> Any:
        """Another value of `dist` near `value` (None when a draw lands back on it)."""
        if isinstance(dist, CategoricalDistribution):
            others = [c for c in dist.choices if c != value]
            return others[self._rng.randint(len(others))]
        if isinstance(dist, (IntDistribution, FloatDistribution)):
            lo, hi, x = float(dist.low), float(dist.high), float(value)
            if dist.log:
                lo, hi, x = math.log(lo), math.log(hi), math.log(x)
            x = x + self._rng.normal(0.0, self._step * (hi - lo))
            x = math.exp(x) if dist.log else x
            grid = dist.step or (1 if isinstance(dist, IntDistribution) else None)
            if grid:  # back onto the distribution's grid
                x = dist.low + round((x - dist.low) / grid) * grid
            x = min(max(x, dist.low), dist.high)  # inside its bounds (after exp: no rounding past them)
            x = int(round(x)) if isinstance(dist, IntDistribution) else float(x)
            return None if math.isclose(x, value, rel_tol=1e-9, abs_tol=1e-12) else x
        return None

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if trial._trial_id in self._moves:
            return {}
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if trial._trial_id in self._moves:
            return {}
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        move = self._moves.get(trial._trial_id, {})
        if param_name in move and _contains(param_distribution, move[param_name]):
            return move[param_name]
        # a parameter the move brought in (a block's option, the momentum of sgd): the base sampler's
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self._moves.pop(trial._trial_id, None)
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._base.reseed_rng()


def _holds(held: dict[str, Any], params: dict[str, Any]) -> bool:
    """Whether a trial with parameters `held` ran the configuration `params` (a trial cut short before
    it sampled all of them counts when it agrees on those it sampled)."""
    return all(params.get(k) == v for k, v in held.items())


def _contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return dist._contains(dist.to_internal_repr(value))
    except (ValueError, TypeError):  # a value of another distribution under the same name
        return False


def _feasible(trial: FrozenTrial) -> bool:
    """Whether a trial keeps every limit it was given (`Trial.set_constraint`: a value <= 0 keeps it)."""
    return all(c <= 0 for c in trial.constraints.values())


def _queued(trial: FrozenTrial, trials: list[FrozenTrial]) -> bool:
    """Whether a trial ran a configuration queued for it (the space's defaults, a warm start, one the user
    enqueued), or is a retry of one. A retry of a trial that Ctrl-C cut short is queued too
    (`warmstart.requeue_interrupted`), but when the trial it repeats was a random draw it is no known-good
    place to start from: such retries count as what they repeat."""
    by_number, seen = {t.number: t for t in trials}, set()
    while (number := repeats(trial)) is not None and number not in seen:
        seen.add(number)
        if number not in by_number:
            return False
        trial = by_number[number]
    return "fixed_params" in trial.system_attrs


def _held(trial: FrozenTrial) -> dict[str, Any]:
    """The configuration a trial runs or will run: its parameters so far, those it was queued with,
    or the move it was given (another worker's trial that has not sampled them yet). A finished trial
    holds what it ran, its parameters alone: a move's parameters that it never sampled (the momentum of
    sgd after a move to adam) or never reached (a trial that ended before it sampled) hold nothing."""
    if trial.state.is_finished():
        return dict(trial.params)
    move = trial.system_attrs.get(LOCAL_MOVE) or {}
    return {**move.get("params", {}), **trial.system_attrs.get("fixed_params", {}), **trial.params}
