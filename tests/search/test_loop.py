import optuna
from optuna.trial import TrialState

from cifar_automl.search import (
    loop,
)
from cifar_automl.search.objective import Objective
from cifar_automl.search.space import load_space
from cifar_automl.study import count_finished

from .common import SPLITS


def test_a_trial_failed_by_another_worker_mid_run_does_not_stop_this_one(tmp_path):
    """A worker whose heartbeat was late finds its running trial failed (and re-queued) by a peer:
    Optuna cannot record it, and the worker goes on with the next trial instead of crashing."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    objective = Objective(load_space("tiny"), SPLITS, epochs=2, seed=0)

    def events(event):
        if event[:3] == ("epoch", 0, 1):  # the peer's heartbeat check, during trial 0
            study._storage.set_trial_state_values(study.trials[0]._trial_id, TrialState.FAIL)

    ran, reason = loop.trial_loop(study, objective, target=2, deadline=None, max_trials=None,
                                        events=events)
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.FAIL
    assert ran == 3 and reason is None and count_finished(study) == 2
    assert 2 not in study.trials[0].intermediate_values  # epoch 2 was not recorded


def test_a_trial_started_beside_one_that_fills_the_target_is_failed_as_surplus(tmp_path, monkeypatch):
    """Two workers count the study in the same moment and both start a trial: the one numbered past
    --trials fails before it samples anything, its worker waits for the other, and the study ends with
    exactly --trials finished trials; reports and the failure count leave the surplus trial out."""
    from cifar_automl.report import trials_frame
    from cifar_automl.study import SURPLUS

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    objective = Objective(load_space("tiny"), SPLITS, epochs=2, seed=0)
    optimize, peer = study.optimize, []

    def optimize_after_a_peer(*args, **kwargs):
        if not peer:
            peer.append(study.ask())  # another worker, which counted the same empty study
        return optimize(*args, **kwargs)

    def events(event):
        if event[0] == "wait" and peer[0].number not in [t.number for t in study.trials if t.state.is_finished()]:
            study.tell(peer[0], 0.5)  # the other worker finishes its trial

    monkeypatch.setattr(study, "optimize", optimize_after_a_peer)
    monkeypatch.setattr(loop, "WAIT_POLL_SECONDS", 0.01)
    ran, reason = loop.trial_loop(study, objective, target=1, deadline=None, max_trials=None,
                                        events=events)
    assert ran == 0 and reason is None
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    surplus = study.trials[1]
    assert surplus.user_attrs["fail_reason"] == SURPLUS and surplus.params == {}
    assert count_finished(study) == 1 and loop.consecutive_failures(study) == 0
    assert list(trials_frame(study)["number"]) == [0]
