import optuna
import pytest
from optuna.trial import TrialState

from cifar_automl.search.objective import Objective
from cifar_automl.search.space import load_space
from cifar_automl.training import projected_seconds

from .common import SPLITS, run, settings


def test_a_time_budget_prunes_the_running_trial_at_its_next_epoch(tmp_path):
    import time

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize",
                                pruner=optuna.pruners.NopPruner())
    objective = Objective(load_space("tiny"), SPLITS, epochs=4, seed=0, deadline=time.time())
    study.optimize(objective, n_trials=1)
    (t,) = study.trials
    assert t.state == TrialState.PRUNED and t.user_attrs["pruned_reason"] == "time budget"
    assert t.user_attrs["epochs_run"] == 1 and list(t.intermediate_values) == [1]


def test_a_cost_cap_stops_a_trial_once_two_epochs_show_it_would_take_longer(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize",
                                pruner=optuna.pruners.NopPruner())
    study.optimize(Objective(load_space("tiny"), SPLITS, epochs=4, seed=0, cost_cap=1e-3), n_trials=1)
    study.optimize(Objective(load_space("tiny"), SPLITS, epochs=4, seed=0, cost_cap=1e4), n_trials=1)
    capped, roomy = study.trials
    assert capped.user_attrs["pruned_reason"] == "cost cap" and capped.user_attrs["epochs_run"] == 2
    seconds = capped.user_attrs["epoch_seconds"]  # the first epoch once, the second for the three after it
    assert capped.user_attrs["projected_seconds"] == pytest.approx(seconds[0] + 3 * seconds[1], abs=3e-3)
    assert roomy.user_attrs["epochs_run"] == 4 and "pruned_reason" not in roomy.user_attrs


def test_projected_seconds_counts_the_first_epoch_once_and_the_steady_ones_for_the_rest():
    assert projected_seconds([], 4) == 0.0
    assert projected_seconds([9.0], 4) == 36.0  # nothing steady yet: the first one for all
    assert projected_seconds([9.0, 4.0, 6.0], 5) == 9.0 + 4 * 5.0
    assert projected_seconds([9.0, 4.0], 2) == 13.0  # all ran


def test_a_nan_loss_fails_the_trial_with_its_reason_and_the_search_goes_on(tmp_path, monkeypatch):
    from cifar_automl.training import callbacks as train

    original = train.EpochRecorder.on_epoch_end

    def poisoned(self, epoch, logs=None):
        if getattr(self, "_poison", None) is None:
            self._poison = poisoned.calls == 0
            poisoned.calls += 1
        logs = dict(logs or {})
        if self._poison:
            logs["loss"] = float("nan")
        original(self, epoch, logs)

    poisoned.calls = 0
    monkeypatch.setattr(train.EpochRecorder, "on_epoch_end", poisoned)
    outcome = run(settings(tmp_path, trials=2))
    trials = outcome.study.trials
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["fail_reason"] == "loss became NaN at epoch 1"
    assert outcome.finished == 2


def test_an_error_in_a_trial_is_recorded_and_five_in_a_row_stop_the_search_naming_the_last(tmp_path, monkeypatch):
    from cifar_automl.search import objective as objective_module

    def broken(*args, **kwargs):
        raise ValueError("bad configuration: 3 stages of 2x2 images")

    monkeypatch.setattr(objective_module, "build_model", broken)
    outcome = run(settings(tmp_path, trials=8))
    trials = outcome.study.trials
    assert len(trials) == 5 and all(t.state == TrialState.FAIL for t in trials)
    assert trials[-1].user_attrs["fail_reason"] == "ValueError: bad configuration: 3 stages of 2x2 images"
    assert "Traceback" in trials[-1].user_attrs["traceback"] and "broken" in trials[-1].user_attrs["traceback"]
    assert outcome.stopped_reason == (
        "5 trials in a row failed (last: ValueError: bad configuration: 3 stages of 2x2 images)")
