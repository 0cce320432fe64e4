"""Moves from the incumbent (`--sampler tpe-local`): a move changes one parameter of the best complete
trial of the whole study, stays on the distribution's grid, never repeats a configuration, and leaves
queued trials and several objectives to the base sampler."""

import math

import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from cifar_automl.search.local import IncumbentMoves
from cifar_automl.search.strategies import make_sampler
from cifar_automl.study import LOCAL_MOVE

DISTS = {
    "width": CategoricalDistribution([8, 16, 32]),
    "depth": IntDistribution(1, 6),
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "dropout": FloatDistribution(0.0, 0.5, step=0.05),
}


def _space(trial):
    return {"width": trial.suggest_categorical("width", [8, 16, 32]), "depth": trial.suggest_int("depth", 1, 6),
            "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5, step=0.05)}


def _study(sampler, values, pruner=None, directions=("maximize",)):
    study = optuna.create_study(sampler=sampler, pruner=pruner, directions=list(directions))
    for i, value in enumerate(values):
        params = {"width": [8, 16, 32][i % 3], "depth": 1 + i % 6, "lr": 10 ** (-1 - i % 3), "dropout": 0.05 * (i % 4)}
        study.add_trial(create_trial(params=params, distributions=DISTS, value=value if len(directions) == 1 else None,
                                     values=None if len(directions) == 1 else [value, i]))
    return study


def _moves(study, n):
    """Ask `n` trials; return (params, move) of each."""
    out = []
    for _ in range(n):
        trial = study.ask()
        params = _space(trial)
        out.append((params, study._storage.get_trial(trial._trial_id).system_attrs.get(LOCAL_MOVE)))
        study.tell(trial, state=TrialState.FAIL)  # no new incumbent: every move starts from the same one
    return out


def test_a_move_changes_one_parameter_of_the_best_complete_trial():
    study = _study(IncumbentMoves(optuna.samplers.RandomSampler(seed=0), seed=0, share=1.0), [0.3, 0.9, 0.5, 0.1])
    best = study.trials[1].params
    for params, move in _moves(study, 20):
        assert move is not None and move["from"] == 1
        changed = [k for k in params if params[k] != best[k]]
        assert changed == [move["param"]], (params, best, move)


def test_numbers_move_on_their_grid_and_inside_their_bounds():
    study = _study(IncumbentMoves(optuna.samplers.RandomSampler(seed=1), seed=1, share=1.0), [0.9])
    seen = {"depth": set(), "dropout": set(), "lr": set()}
    for params, move in _moves(study, 60):
        if move and move["param"] in seen:  # (no move once the incumbent's near neighbours are all held)
            seen[move["param"]].add(params[move["param"]])
    assert seen["depth"] and all(isinstance(d, int) and 1 <= d <= 6 for d in seen["depth"])
    assert seen["dropout"] and all(0.0 <= d <= 0.5 and math.isclose(d / 0.05, round(d / 0.05)) for d in seen["dropout"])
    assert seen["lr"] and all(1e-4 <= x <= 1e-1 for x in seen["lr"])
    # a step of a tenth of the log range: the moved rates stay within a few steps of the incumbent's 0.1
    assert max(abs(math.log10(x) - math.log10(0.1)) for x in seen["lr"]) < 1.5


def test_a_move_never_proposes_a_configuration_the_study_holds():
    study = _study(IncumbentMoves(optuna.samplers.RandomSampler(seed=2), seed=2, share=1.0), [0.9])
    incumbent = study.trials[0].params
    for width in (16, 32):  # every other width of the incumbent is held already
        study.add_trial(create_trial(params={**incumbent, "width": width}, distributions=DISTS, value=0.1))
    moves = [(params, move) for params, move in _moves(study, 30) if move]
    assert len(moves) >= 10
    for params, move in moves:
        assert move["param"] != "width" and params["width"] == incumbent["width"]
    configs = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(configs)) == len(configs)


def test_the_share_of_moves_and_the_base_samplers_trials():
    study = _study(IncumbentMoves(optuna.samplers.RandomSampler(seed=3), seed=3, share=0.5), [0.9, 0.2])
    moves = [move for _, move in _moves(study, 200)]
    assert 70 <= sum(m is not None for m in moves) <= 130


def test_no_move_before_a_complete_trial_for_queued_trials_or_with_several_objectives():
    sampler = IncumbentMoves(optuna.samplers.RandomSampler(seed=4), seed=4, share=1.0)
    assert all(move is None for _, move in _moves(_study(sampler, []), 5))  # nothing to move from
    study = _study(sampler, [0.9])
    study.enqueue_trial({"width": 8, "depth": 6, "lr": 0.01, "dropout": 0.5})
    params, move = _moves(study, 1)[0]
    assert move is None and params == {"width": 8, "depth": 6, "lr": 0.01, "dropout": 0.5}
    multi = _study(IncumbentMoves(optuna.samplers.RandomSampler(seed=4), seed=4, share=1.0), [0.9, 0.5],
                   directions=("maximize", "minimize"))
    assert all(move is None for _, move in _moves(multi, 5))


def test_with_a_start_moves_wait_for_that_many_finished_trials_unless_a_queued_one_is_complete():
    """`start`: no incumbent is climbed from before `start` trials have finished (complete or pruned,
    as TPE counts its start-up), unless a queued configuration (the space's defaults, a warm start) is
    complete: that one is a known-good place to start."""
    sampler = IncumbentMoves(optuna.samplers.RandomSampler(seed=12), seed=12, share=1.0, start=4)
    study = _study(sampler, [0.5, 0.7])
    pruned = create_trial(params={"width": 8, "depth": 2, "lr": 0.001, "dropout": 0.1}, distributions=DISTS,
                          state=TrialState.PRUNED, intermediate_values={0: 0.1})
    study.add_trial(pruned)
    assert all(move is None for _, move in _moves(study, 5))  # 3 finished (a failed trial does not count)
    study.add_trial(create_trial(params={"width": 16, "depth": 3, "lr": 0.002, "dropout": 0.2},
                                 distributions=DISTS, value=0.2))
    assert all(move is not None and move["from"] == 1 for _, move in _moves(study, 5))

    queued = optuna.create_study(direction="maximize", sampler=IncumbentMoves(
        optuna.samplers.RandomSampler(seed=13), seed=13, share=1.0, start=10))
    queued.enqueue_trial({"width": 16, "depth": 3, "lr": 0.01, "dropout": 0.2})
    queued.optimize(lambda t: 0.6 + 0 * len(_space(t)), n_trials=1)
    assert all(move is not None and move["from"] == 0 for _, move in _moves(queued, 5))


def test_two_workers_that_pick_the_same_move_at_once_do_not_both_run_it():
    """Worker B read the study before worker A wrote its move, so both pick the incumbent's only
    untried neighbour. B sees A's move after writing its own, gives it up, and its trial is the base
    sampler's: no configuration runs twice."""
    dists = {"flag": CategoricalDistribution([True, False]), "fixed": CategoricalDistribution([1])}
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(params={"flag": True, "fixed": 1}, distributions=dists, value=0.9))
    storage = study._storage
    a, b = (storage.get_trial(storage.create_new_trial(study._study_id)) for _ in range(2))
    before = storage.get_all_trials(study._study_id)  # what B read, before A wrote its move
    first = IncumbentMoves(optuna.samplers.RandomSampler(seed=0), seed=0, share=1.0)
    first.before_trial(study, a)
    reads = []
    real = storage.get_all_trials

    def stale_first_read(study_id, deepcopy=True, states=None):
        reads.append(study_id)
        return before if len(reads) == 1 else real(study_id, deepcopy=deepcopy, states=states)

    storage.get_all_trials = stale_first_read
    second = IncumbentMoves(optuna.samplers.RandomSampler(seed=0), seed=0, share=1.0)
    second.before_trial(study, b)
    storage.get_all_trials = real
    assert storage.get_trial(a._trial_id).system_attrs[LOCAL_MOVE]["params"] == {"flag": False, "fixed": 1}
    assert a._trial_id in first._moves
    assert len(reads) >= 2 and b._trial_id not in second._moves  # it wrote the move, then saw A's
    assert not storage.get_trial(b._trial_id).system_attrs.get(LOCAL_MOVE)  # and took it back


def test_the_incumbent_is_the_whole_studys_best_under_hyperband():
    """Optuna's Hyperband pruner shows a sampler one bracket's trials; the incumbent is still the best of
    all of them."""
    study = _study(make_sampler("tpe-local", 0), [0.2, 0.95, 0.4, 0.3, 0.1, 0.5],
                   pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3))
    froms = {move["from"] for _, move in _moves(study, 40) if move}
    assert froms == {1}


def test_a_move_that_brings_in_a_conditional_parameter_samples_it_from_the_base_sampler():
    sampler = IncumbentMoves(optuna.samplers.RandomSampler(seed=5), seed=5, share=1.0)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    dists = {"optimizer": CategoricalDistribution(["adam", "sgd"])}
    study.add_trial(create_trial(params={"optimizer": "adam"}, distributions=dists, value=0.9))
    trial = study.ask()
    optimizer = trial.suggest_categorical("optimizer", ["adam", "sgd"])
    momentum = trial.suggest_float("momentum", 0.8, 0.95) if optimizer == "sgd" else None
    assert optimizer == "sgd" and 0.8 <= momentum <= 0.95  # the only move; momentum is new


def test_tpe_hill_climbs_from_the_best_of_tpes_start_up_trials_with_every_trial_after_them():
    from cifar_automl.search.strategies import HILL_START

    study = _study(make_sampler("tpe-hill", 3), [0.1 * (1 + i % 5) for i in range(HILL_START - 1)])
    assert all(move is None for _, move in _moves(study, 3))  # one start-up trial still to finish
    study.add_trial(create_trial(params={"width": 32, "depth": 2, "lr": 0.003, "dropout": 0.1}, distributions=DISTS,
                                 value=0.95))
    best = study.trials[-1].number
    moves = [move for _, move in _moves(study, 12)]
    assert all(move is not None and move["from"] == best for move in moves)


@pytest.mark.parametrize("name", ["tpe-local", "tpe-hill"])
def test_tpe_local_and_tpe_hill_are_registered_and_seeded_per_trial(name):
    a, b = make_sampler(name, 7), make_sampler(name, 7)
    draws = []
    for sampler in (a, b):
        study = _study(sampler, [0.5, 0.7, 0.6])
        draws.append([p for p, _ in _moves(study, 6)])
    assert draws[0] == draws[1]
    assert isinstance(a._sampler, IncumbentMoves)


@pytest.mark.parametrize("share", [0.0])
def test_with_no_share_it_is_the_base_sampler(share):
    sampler = IncumbentMoves(optuna.samplers.RandomSampler(seed=6), seed=6, share=share)
    base = optuna.samplers.RandomSampler(seed=6)
    ours = [p for p, _ in _moves(_study(sampler, [0.9]), 5)]
    theirs = [p for p, _ in _moves(_study(base, [0.9]), 5)]
    assert ours == theirs


def test_the_incumbent_keeps_the_searchs_limits():
    study = _study(IncumbentMoves(optuna.samplers.RandomSampler(seed=8), seed=8, share=1.0), [0.5])
    over = create_trial(params={"width": 32, "depth": 6, "lr": 0.01, "dropout": 0.5}, distributions=DISTS,
                        value=0.99, system_attrs={"constraints:max_params": 12.0})  # better, but over a limit
    study.add_trial(over)
    froms = {move["from"] for _, move in _moves(study, 10) if move}
    assert froms == {0}


def test_the_trials_that_are_not_moves_are_the_base_samplers_own_draws():
    """The coin that picks a move has a random stream of its own. Were it the base sampler's, a trial
    left to TPE's random start-up would draw its first number from the upper half of the range only
    (the coin's own value, which said "no move")."""
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe-local", 11))
    dist = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}
    study.add_trial(create_trial(params={"x": 0.5, "y": 0.5}, distributions=dist, value=1.0))
    xs = []
    for _ in range(60):
        trial = study.ask()
        x, _ = trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("y", 0.0, 1.0)
        if LOCAL_MOVE not in study._storage.get_trial(trial._trial_id).system_attrs:
            xs.append(x)
        study.tell(trial, state=TrialState.FAIL)
    assert len(xs) >= 15 and sum(x < 0.5 for x in xs) >= 5


def test_a_retry_runs_its_own_parameters_and_shows_as_a_retry():
    from cifar_automl.report.tables import origin

    study = _study(IncumbentMoves(optuna.samplers.RandomSampler(seed=9), seed=9, share=1.0), [0.9])
    moved = study.ask()
    _space(moved)
    attrs = study._storage.get_trial(moved._trial_id).system_attrs
    study.tell(moved, state=TrialState.FAIL)
    # a stale trial's retry (Optuna's RetryFailedTrialCallback): its parameters, its system attributes
    study.add_trial(create_trial(state=TrialState.WAITING, params=dict(study.trials[-1].params),
                                 distributions=DISTS, system_attrs={**attrs, "failed_trial": moved.number}))
    retry = study.ask()
    assert _space(retry) == study.trials[-2].params
    frozen = study._storage.get_trial(retry._trial_id)
    assert frozen.system_attrs[LOCAL_MOVE] == attrs[LOCAL_MOVE]  # copied, not a new move
    assert origin(frozen) == f"retry of #{moved.number}"


def test_queued_configurations_and_other_workers_moves_count_as_held():
    study = _study(IncumbentMoves(optuna.samplers.RandomSampler(seed=10), seed=10, share=1.0), [0.9])
    incumbent = study.trials[0].params
    study.enqueue_trial({**incumbent, "width": 16})
    study.ask()  # a worker takes the queued trial and has not sampled its parameters yet
    held = [{**incumbent, "width": 16}]
    for _ in range(12):  # other workers' moves, none of which has sampled its parameters yet either
        trial = study.ask()
        move = study._storage.get_trial(trial._trial_id).system_attrs.get(LOCAL_MOVE)
        if move:
            assert move["params"] not in held
            held.append(move["params"])
    assert len(held) >= 8


def test_a_retry_of_a_random_draw_is_no_queued_start_but_a_retry_of_the_defaults_is():
    """`requeue_interrupted` queues a trial that Ctrl-C cut short once more: a random start-up draw
    repeated that way must not start the climb early; the defaults repeated that way do."""
    params = {"width": 16, "depth": 3, "lr": 0.01, "dropout": 0.2}
    for original, climbs in (({}, False), ({"warm_start": "space defaults"}, True)):
        study = optuna.create_study(direction="maximize", sampler=IncumbentMoves(
            optuna.samplers.RandomSampler(seed=14), seed=14, share=1.0, start=5))
        if original:
            study.enqueue_trial(params, user_attrs=original)
        cut = study.ask()
        assert _space(cut)
        study.tell(cut, state=TrialState.FAIL)  # interrupted
        study.enqueue_trial(study.trials[0].params, user_attrs={"retry_of": 0})
        study.optimize(lambda t: 0.6 + 0 * len(_space(t)), n_trials=1)
        assert study.trials[1].state == TrialState.COMPLETE and study.trials[1].params == study.trials[0].params
        moves = [move for _, move in _moves(study, 4)]
        assert all((move is not None and move["from"] == 1) == climbs for move in moves), (original, moves)


def test_a_finished_trial_holds_the_parameters_it_ran_not_those_its_move_carried():
    """A move to adam carries the incumbent's sgd momentum, which the trial never samples; and a move
    whose trial ended before it sampled anything (skipped, or its worker died) ran nothing. Neither may
    keep a configuration from being proposed, nor let one the study ran be proposed again."""
    dists = {"optimizer": CategoricalDistribution(["adam", "sgd"]), "momentum": CategoricalDistribution([0.8, 0.9]),
             "lr": CategoricalDistribution([1, 2])}

    study = optuna.create_study(direction="maximize", sampler=IncumbentMoves(
        optuna.samplers.RandomSampler(seed=15), seed=15, share=1.0))
    adam = {k: dists[k] for k in ("optimizer", "lr")}
    study.add_trial(create_trial(params={"optimizer": "sgd", "momentum": 0.9, "lr": 2}, distributions=dists, value=0.1))
    # the move from #0 to adam: it ran adam at lr 1 and kept the momentum it never sampled in its move
    study.add_trial(create_trial(params={"optimizer": "adam", "lr": 1}, distributions=adam, value=0.5, system_attrs={
        LOCAL_MOVE: {"from": 0, "param": "optimizer", "params": {"optimizer": "adam", "momentum": 0.9, "lr": 1}}}))
    study.add_trial(create_trial(params={"optimizer": "adam", "lr": 2}, distributions=adam, value=0.9))  # incumbent
    proposed = []
    for _ in range(6):
        trial = study.ask()
        move = study._storage.get_trial(trial._trial_id).system_attrs.get(LOCAL_MOVE)
        proposed.append(move and move["params"])
        study.tell(trial, state=TrialState.FAIL)  # ends before it samples: it ran nothing
    # from #2 the moves are lr 1 (what #1 ran: held) and sgd; the unsampled sgd moves must not hold it
    assert all(p == {"optimizer": "sgd", "lr": 2} for p in proposed), proposed
