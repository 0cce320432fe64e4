"""Samplers and pruners: every choice the CLI offers runs, the pruner prunes a clearly bad trial, and
random draws are seeded per trial."""

import optuna
import pytest
from optuna.trial import TrialState

from cifar_automl.search import PRUNERS, SAMPLERS
from cifar_automl.search.local import IncumbentMoves
from cifar_automl.search.space import parse_space
from cifar_automl.search.strategies import make_sampler, trial_seed

from .common import run, settings

SAMPLER_CLASSES = {"tpe": optuna.samplers.TPESampler, "tpe-local": IncumbentMoves, "tpe-hill": IncumbentMoves,
                   "random": optuna.samplers.RandomSampler,
                   "nsga2": optuna.samplers.NSGAIISampler,
                   "cmaes": optuna.samplers.CmaEsSampler, "qmc": optuna.samplers.QMCSampler}
PRUNER_CLASSES = {"hyperband": optuna.pruners.HyperbandPruner, "asha": optuna.pruners.SuccessiveHalvingPruner,
                  "median": optuna.pruners.MedianPruner, "none": optuna.pruners.NopPruner}


@pytest.mark.parametrize("sampler, pruner", [*[(s, "hyperband") for s in SAMPLERS],
                                             *[("tpe", p) for p in PRUNERS if p != "hyperband"]])
def test_every_sampler_and_pruner_choice_runs(tmp_path, sampler, pruner):
    outcome = run(settings(tmp_path, trials=3, epochs=2, sampler=sampler, pruner=pruner))
    assert outcome.finished == 3 and outcome.stopped_reason is None
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in outcome.study.trials)
    used = outcome.study.sampler
    used = getattr(used, "_sampler", used)  # the per-trial seeding wrapper holds the sampler it made
    assert type(used) is SAMPLER_CLASSES[sampler] and type(outcome.study.pruner) is PRUNER_CLASSES[pruner]


def test_the_pruner_prunes_a_clearly_bad_trial(tmp_path):
    """A good configuration first, then one whose learning rate is a millionth of it: after its first
    epoch it is far below, and ASHA (as Hyperband's brackets do) stops it there."""
    text = ("arch:\n  block: plain\n  stages: 1\n  base_filters: 8\n  batch_norm: true\n"
            "train:\n  optimizer: adam\n  batch_size: 16\n  augment: none\n"
            "  learning_rate: {type: float, low: 1.0e-8, high: 1.0e-1, log: true, default: 0.02}\n")
    path = tmp_path / "space.yaml"
    path.write_text(text)
    space = parse_space(text, source=str(path), default_name="space")
    search = settings(tmp_path, space=str(path), trials=1, epochs=4, pruner="asha")
    study = run(search, space=space).study  # the first trial: the default, a good learning rate
    study.enqueue_trial({"learning_rate": 2e-8})
    outcome = run(settings(tmp_path, space=str(path), trials=2, epochs=4, pruner="asha"), space=space)
    good, bad = outcome.study.trials
    assert good.state == TrialState.COMPLETE and good.user_attrs["epochs_run"] == 4
    assert bad.state == TrialState.PRUNED and bad.user_attrs["epochs_run"] == 1


def test_random_draws_depend_on_the_trial_not_on_the_process():
    first, second = optuna.create_study(), optuna.create_study()
    a, b = make_sampler("random", 7), make_sampler("random", 7)
    draws = []
    for study, sampler in ((first, a), (second, b)):
        study.sampler = sampler
        draws.append([study.ask().suggest_float("x", 0, 1) for _ in range(3)])
    assert draws[0] == draws[1] and len(set(draws[0])) == 3  # same seed: the same draws, trial by trial
    assert trial_seed(7, 0) != trial_seed(7, 1) != trial_seed(8, 1)


def test_trials_side_by_side_each_draw_from_their_own_seed():
    """Two trials begun before either samples (what `study.optimize(n_jobs=2)` does) draw what they
    would one after the other, and a trial's sampler is dropped once it is told."""
    one_by_one = optuna.create_study(sampler=make_sampler("random", 3))
    expected = []
    for _ in range(2):
        trial = one_by_one.ask()
        expected.append(trial.suggest_float("x", 0, 1))
        one_by_one.tell(trial, 0.0)
    sampler = make_sampler("random", 3)
    side_by_side = optuna.create_study(sampler=sampler)
    first, second = side_by_side.ask(), side_by_side.ask()
    drawn = [None, second.suggest_float("x", 0, 1)]
    drawn[0] = first.suggest_float("x", 0, 1)
    assert drawn == expected
    side_by_side.tell(first, 0.0)
    side_by_side.tell(second, 0.0)
    assert not sampler._running
