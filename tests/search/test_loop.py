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
    assert 2 not in study.trials[0].intermediate_values  # epoch 2 was not recorded (steps: epochs trained)


def test_a_trial_started_beside_one_that_fills_the_target_is_failed_as_surplus(tmp_path, monkeypatch):
    """Two workers count the study in the same moment and both start a trial: the one numbered past
    --trials fails before it samples anything, its worker waits for the other, and the study ends with
    exactly --trials finished trials; reports and the failure count leave the surplus trial out."""
    from cifar_automl.report import trials_frame
    from cifar_automl.study import SURPLUS

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    objective = Objective(load_space("tiny"), SPLITS, epochs=2, seed=0)
    ask, peer = study.ask, []

    def ask_after_a_peer(*args, **kwargs):
        if not peer:
            peer.append(ask())  # another worker, which counted the same empty study
        return ask(*args, **kwargs)

    def events(event):
        if event[0] == "wait" and peer[0].number not in [t.number for t in study.trials if t.state.is_finished()]:
            study.tell(peer[0], 0.5)  # the other worker finishes its trial

    monkeypatch.setattr(study, "ask", ask_after_a_peer)
    monkeypatch.setattr(loop, "WAIT_POLL_SECONDS", 0.01)
    ran, reason = loop.trial_loop(study, objective, target=1, deadline=None, max_trials=None,
                                        events=events)
    assert ran == 0 and reason is None
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    surplus = study.trials[1]
    assert surplus.user_attrs["fail_reason"] == SURPLUS and surplus.params == {}
    assert count_finished(study) == 1 and loop.consecutive_failures(study) == (0, None)
    assert list(trials_frame(study)["number"]) == [0]


def test_a_trial_completed_by_another_process_while_this_one_ran_is_left_and_the_loop_goes_on(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    objective = Objective(load_space("tiny"), SPLITS, epochs=2, seed=0)

    def events(event):
        if event[:3] == ("epoch", 0, 1):  # another process (the same queued trial, taken twice) completes it
            study._storage.set_trial_state_values(study.trials[0]._trial_id, TrialState.COMPLETE, [0.99])

    ran, reason = loop.trial_loop(study, objective, target=2, deadline=None, max_trials=None, events=events)
    assert reason is None and count_finished(study) == 2 and study.trials[0].value == 0.99


def test_two_commands_that_queued_the_same_configuration_run_it_once(tmp_path):
    """Two `search` commands started together both queue the space defaults (and the retry of the same
    interrupted trial): the copy queued second is skipped as a duplicate before it samples anything."""
    from cifar_automl.report import trials_frame
    from cifar_automl.search.warmstart import queue_defaults
    from cifar_automl.study import DUPLICATE

    space = load_space("airbench")
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    other = optuna.load_study(study_name="s", storage=url)
    assert queue_defaults(study, space) and queue_defaults(other, space) is False  # the attribute is seen...
    study.enqueue_trial(space.default_params(), user_attrs={"warm_start": "space defaults"})  # ...but not always
    study.enqueue_trial({"block": "plain"}, user_attrs={"retry_of": 7})
    study.enqueue_trial({"block": "plain"}, user_attrs={"retry_of": 7})
    taken = []
    for _ in range(4):
        trial = study.ask()
        taken.append(loop._skip_reason(study, trial, target=10))
        if taken[-1]:
            trial.set_user_attr("fail_reason", taken[-1])  # as the loop does
        study.tell(trial, state=TrialState.FAIL if taken[-1] else TrialState.PRUNED)
    assert taken == [None, DUPLICATE, None, DUPLICATE]
    assert loop.consecutive_failures(study) == (0, None)
    assert list(trials_frame(study)["number"]) == [0, 2]  # reports leave the duplicates out


def test_the_claim_lock_keeps_two_processes_from_taking_one_queued_trial(tmp_path):
    """SQLite has no row locks: without the lock, two processes can pop the same WAITING trial."""
    import threading

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    for i in range(30):
        study.enqueue_trial({"x": i})
    taken: list[list[int]] = [[], []]

    def worker(k):
        mine = optuna.load_study(study_name="s", storage=url)  # a connection of its own
        lock = loop.claim_lock(url)
        for _ in range(15):
            with lock():
                trial = mine.ask()
            taken[k].append(trial.number)
            mine.tell(trial, 0.0)

    threads = [threading.Thread(target=worker, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    numbers = taken[0] + taken[1]
    assert len(numbers) == len(set(numbers)) == 30
    assert all(t.state == TrialState.COMPLETE for t in study.trials) and len(study.trials) == 30
