import optuna
from optuna.trial import TrialState

from cifar_automl.search.objective import Objective
from cifar_automl.search.space import load_space

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
