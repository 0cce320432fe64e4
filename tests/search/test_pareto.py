"""Several objectives: the Pareto helpers, the multi-objective pruner on its own, and searches of
accuracy against parameters or latency, with limits."""

import math

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from cifar_automl.errors import UserError
from cifar_automl.pareto import (
    crowding,
    dominates,
    fronts,
    hypervolume_2d,
    ranking,
    spread,
)
from cifar_automl.search.moasha import CURVE, ParetoSuccessiveHalving
from cifar_automl.search.objectives import Goal

from .common import run, settings


def test_fronts_and_crowding_of_accuracy_against_cost():
    points = [(0.9, 10.0), (0.8, 5.0), (0.85, 20.0), (0.7, 1.0), (0.6, 6.0)]
    assert dominates(points[0], points[2]) and not dominates(points[0], points[1])
    assert fronts(points) == [[0, 1, 3], [2, 4]]
    dist = crowding(points, [0, 1, 3])
    assert math.isinf(dist[0]) and math.isinf(dist[3]) and 0 < dist[1] < math.inf
    assert ranking(points)[:3] == [0, 3, 1] and set(ranking(points)[3:]) == {2, 4}


def test_hypervolume_and_spread_along_a_front():
    # accuracy 0.5 up to cost 2, then 0.8 up to cost 4, inside the box to cost 4: 2 * 0.5 + ... = 1.0 + 0 ...
    assert hypervolume_2d([(0.5, 0.0), (0.8, 2.0)], ref_cost=4.0) == pytest.approx(2 * 0.5 + 2 * 0.8)
    assert hypervolume_2d([(0.5, 0.0), (0.4, 1.0)], ref_cost=2.0) == pytest.approx(1.0)  # dominated: adds nothing
    assert hypervolume_2d([(0.9, 5.0)], ref_cost=4.0) == 0.0  # outside the box
    front = [(0.1 * i, float(i)) for i in range(1, 11)]
    assert spread(front, 3) == [0, 4, 9] or spread(front, 3) == [0, 5, 9]
    assert spread(front, 1) == [9] and spread(front, 20) == list(range(10))


def _trial_at(study, curve, params):
    study.add_trial(create_trial(state=TrialState.RUNNING, user_attrs={CURVE: curve, "params": params}))
    return study.get_trials(deepcopy=False)[-1]


def test_the_pruner_keeps_the_leading_third_of_each_rung_by_front_and_crowding():
    study = optuna.create_study(directions=["maximize", "minimize"])
    pruner = ParetoSuccessiveHalving(["params"], min_resource=1, reduction_factor=3)
    first = _trial_at(study, [0.5], 1000)
    assert not pruner.prune(study, first)  # alone at its rung: the best of one goes on
    for acc, size in [(0.6, 500), (0.4, 2000), (0.45, 3000), (0.3, 4000)]:
        _trial_at(study, [acc], size)
    # six at rung 1: two go on, the two ends of the first front (0.6 at 500 dominates 0.5 at 1000)
    cheap_good = _trial_at(study, [0.2], 100)  # the cheapest: an end of the front, infinitely crowded-apart
    dominated = _trial_at(study, [0.35], 2500)
    assert not pruner.prune(study, cheap_good)
    assert pruner.prune(study, dominated)
    assert not pruner.prune(study, _trial_at(study, [0.3, 0.31], 9000))  # epoch 2 is no rung
    late = _trial_at(study, [0.2, 0.3, 0.9], 100)  # rung 3: alone there, the best of one
    assert not pruner.prune(study, late)


def test_goal_values_constraints_and_errors():
    goal = Goal("accuracy,params", max_params=1000, max_latency_ms=2.0)
    assert goal.metric_names == ["val_accuracy", "params"] and goal.directions == ["maximize", "minimize"]
    assert goal.constraints({"params": 1500, "latency_ms": 1.0}) == {"params": 500.0, "latency_ms": -1.0}
    assert "over --max-params" in goal.broken_limit({"params": 1500, "latency_ms": 1.0})
    assert goal.broken_limit({"params": 500, "latency_ms": 1.0}) is None
    assert goal.values(0.8, {"params": 500}) == [0.8, 500.0] and Goal().values(0.8, {}) == 0.8
    with pytest.raises(UserError, match="unknown objective"):
        Goal("accuracy,energy")
    with pytest.raises(UserError, match="--max-latency must be positive"):
        Goal(max_latency_ms=0)


def test_a_search_of_accuracy_against_parameters_finds_a_front(tmp_path):
    outcome = run(settings(tmp_path, trials=6, epochs=3, objective="accuracy,params", pruner="asha"))
    study = outcome.study
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_accuracy", "params"]
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert outcome.finished == 6 and done
    for t in done:
        assert t.values == [pytest.approx(t.user_attrs["val_accuracy"]), t.user_attrs["params"]]
        assert t.user_attrs[CURVE] == pytest.approx(t.user_attrs["history"]["val_accuracy"], abs=1e-6)
        assert not t.intermediate_values  # Optuna refuses report() with several objectives
    assert study.best_trials  # the Pareto front
    # the same study with another objective is refused in one line
    with pytest.raises(Exception, match="optimises val_accuracy,params, not val_accuracy"):
        run(settings(tmp_path, trials=7, epochs=3))


def test_a_limit_prunes_a_trial_before_it_trains_and_latency_is_measured(tmp_path):
    outcome = run(settings(tmp_path, trials=4, epochs=2, objective="accuracy,latency", max_params=3000,
                           sampler="nsga2"))
    study = outcome.study
    assert study.metric_names == ["val_accuracy", "latency_ms"]
    for t in study.trials:
        assert t.user_attrs["latency_ms"] > 0 and t.user_attrs["latency_device"].startswith(("CPU", "GPU"))
        assert t.constraints == {"params": t.user_attrs["params"] - 3000}
        if t.user_attrs["params"] > 3000:
            assert t.state == TrialState.PRUNED and t.user_attrs["epochs_run"] == 0
            assert "over --max-params 3,000" in t.user_attrs["pruned_reason"]
        else:
            assert t.state in (TrialState.COMPLETE, TrialState.PRUNED)


def test_single_objective_studies_name_their_objective(tmp_path):
    study = run(settings(tmp_path, trials=1, epochs=1)).study
    assert study.metric_names == ["val_accuracy"]


def test_a_study_of_several_objectives_reports_and_retrains(tmp_path):
    """Everything after the search reads accuracy as the first of a trial's values: the report (with
    Optuna's plots pointed at it and curves from `val_curve`) and retrain's choice of trials."""
    import pandas as pd

    from cifar_automl.cli import main
    from cifar_automl.results.retrain import pick_trials

    outcome = run(settings(tmp_path, trials=4, epochs=3, objective="accuracy,params"))
    studies = tmp_path / "studies"
    assert main(["report", "--study-name", "tiny", "--studies-dir", str(studies)]) == 0
    page = (studies / "tiny" / "report" / "index.html").read_text()
    assert "Optimization History" in page and "Figure not available" not in page
    curves = pd.read_csv(studies / "tiny" / "report" / "best_curves.csv")
    assert not curves.empty
    done = [t for t in outcome.study.trials if t.state.name == "COMPLETE"]
    best = max(done, key=lambda t: t.values[0])
    assert pick_trials(outcome.study, None, 1)[0].number == best.number
