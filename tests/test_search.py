import optuna
import pytest
from optuna.trial import TrialState

from cifar_automl import search as search_mod
from cifar_automl.errors import StudyError, UserError
from cifar_automl.search import SearchSettings, count_finished, open_storage, run_search
from cifar_automl.spaces import load_space

from .helpers import synthetic_splits

SPLITS = synthetic_splits(n_per_class=30, size=8)


def _settings(tmp_path, **kw):
    base = dict(space="tiny", trials=3, epochs=2, studies_dir=str(tmp_path / "studies"), seed=0,
                trials_per_process=0)
    base.update(kw)
    return SearchSettings(**base)


def _run(settings, space=None, **kw):
    return run_search(settings, prepared=(space or load_space(settings.space), SPLITS), **kw)


def test_search_stores_trials_with_curves_and_attributes(tmp_path):
    outcome = _run(_settings(tmp_path, trials=4, epochs=3))
    study = outcome.study
    assert outcome.finished == 4 == count_finished(study)
    assert (tmp_path / "studies" / "tiny.db").exists()
    assert study.user_attrs["identity"]["space"] == "tiny"
    assert study.user_attrs["data"]["n_train"] == len(SPLITS.x_train)
    for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)):
        ua = t.user_attrs
        assert set(ua) >= {"config", "params", "flops", "epoch_seconds", "history", "val_accuracy",
                           "val_loss", "cifar_automl_version", "images_per_second", "normalization"}
        assert len(t.intermediate_values) == ua["epochs_run"] == len(ua["epoch_seconds"])
        assert list(t.intermediate_values.values()) == pytest.approx(ua["history"]["val_accuracy"], abs=1e-6)
        if t.state == TrialState.COMPLETE:
            assert t.value == ua["val_accuracy"] == pytest.approx(max(ua["history"]["val_accuracy"]), abs=1e-6)
        assert ua["config"]["train"]["epochs"] == 3


def test_a_new_study_first_runs_the_space_defaults_once(tmp_path):
    text = load_space("tiny").source
    text = open(text).read().replace(
        "block: {type: categorical, choices: [plain, inception, residual]}",
        "block: {type: categorical, choices: [plain, inception, residual], default: residual}",
    ).replace("learning_rate: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}",
              "learning_rate: {type: float, low: 1.0e-3, high: 1.0e-1, log: true, default: 0.01}")
    path = tmp_path / "tiny_defaults.yaml"
    path.write_text(text)
    space = load_space(str(path))
    outcome = _run(_settings(tmp_path, space=str(path), trials=2), space=space)
    first, second = outcome.study.get_trials()
    assert first.params["block"] == "residual" and first.params["learning_rate"] == 0.01
    assert first.user_attrs["warm_start"] == "space defaults" and "warm_start" not in second.user_attrs
    more = _run(_settings(tmp_path, space=str(path), trials=3), space=space)  # resuming queues nothing
    assert "warm_start" not in more.study.get_trials()[2].user_attrs


def test_after_a_run_the_sqlite_file_alone_holds_the_study(tmp_path):
    """The write-ahead log is copied into the .db at the end of a run: a copy of the .db without its
    -wal file has every trial (and later readers have nothing left to write into the file)."""
    import shutil

    outcome = _run(_settings(tmp_path, trials=2, trials_per_process=1))
    db = tmp_path / "studies" / "tiny.db"
    shutil.copy(db, tmp_path / "copy.db")
    copy = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'copy.db'}")
    assert outcome.finished == 2 and count_finished(copy) == 2
    assert [t.params for t in copy.trials] == [t.params for t in outcome.study.trials]


def test_rerun_only_runs_the_missing_trials(tmp_path):
    first = _run(_settings(tmp_path, trials=2))
    assert first.ran == 2
    again = _run(_settings(tmp_path, trials=2))
    assert again.ran == 0 and again.finished == 2
    more = _run(_settings(tmp_path, trials=3))
    assert more.ran == 1 and more.finished == 3


def test_a_study_made_with_another_space_or_epochs_is_refused_untouched(tmp_path):
    _run(_settings(tmp_path, trials=1))
    url = f"sqlite:///{tmp_path / 'studies' / 'tiny.db'}"
    before = len(optuna.load_study(study_name="tiny", storage=url).trials)
    with pytest.raises(StudyError, match="created with epochs=2, not 5"):
        _run(_settings(tmp_path, trials=2, epochs=5))
    with pytest.raises(StudyError, match="space"):
        _run(_settings(tmp_path, trials=2, study_name="tiny", space="plain"))
    assert len(optuna.load_study(study_name="tiny", storage=url).trials) == before


def test_ctrl_c_marks_the_trial_and_the_rerun_retries_its_parameters(tmp_path):
    class Interrupting(search_mod.SearchReporter):
        def epoch(self, number, epoch, logs):
            if number == 1:
                raise KeyboardInterrupt

    outcome = _run(_settings(tmp_path, trials=3), reporter=Interrupting(quiet=True))
    assert outcome.interrupted and outcome.finished == 1
    study = outcome.study
    failed = study.trials[1]
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"] == "interrupted"
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]

    resumed = _run(_settings(tmp_path, trials=3))
    assert resumed.finished == 3 and resumed.ran == 2
    retry = [t for t in resumed.study.trials if t.user_attrs.get("retry_of") == 1]
    assert len(retry) == 1 and retry[0].params == failed.params


def test_a_nan_loss_fails_the_trial_with_its_reason_and_the_search_goes_on(tmp_path, monkeypatch):
    from cifar_automl import train

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
    outcome = _run(_settings(tmp_path, trials=2))
    trials = outcome.study.trials
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["fail_reason"] == "loss became NaN at epoch 1"
    assert outcome.finished == 2


def test_a_trial_failed_by_another_worker_mid_run_does_not_stop_this_one(tmp_path):
    """A worker whose heartbeat was late finds its running trial failed (and re-queued) by a peer:
    Optuna cannot record it, and the worker goes on with the next trial instead of crashing."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    objective = search_mod.Objective(load_space("tiny"), SPLITS, epochs=2, seed=0)

    def events(event):
        if event[:3] == ("epoch", 0, 1):  # the peer's heartbeat check, during trial 0
            study._storage.set_trial_state_values(study.trials[0]._trial_id, TrialState.FAIL)

    ran, reason = search_mod.trial_loop(study, objective, target=2, deadline=None, max_trials=None,
                                        events=events)
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.FAIL
    assert ran == 3 and reason is None and count_finished(study) == 2
    assert 2 not in study.trials[0].intermediate_values  # epoch 2 was not recorded


def test_a_trial_started_beside_one_that_fills_the_target_is_failed_as_surplus(tmp_path, monkeypatch):
    """Two workers count the study in the same moment and both start a trial: the one numbered past
    --trials fails before it samples anything, its worker waits for the other, and the study ends with
    exactly --trials finished trials; reports and the failure count leave the surplus trial out."""
    from cifar_automl.config import SURPLUS
    from cifar_automl.report import trials_frame

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    objective = search_mod.Objective(load_space("tiny"), SPLITS, epochs=2, seed=0)
    optimize, peer = study.optimize, []

    def optimize_after_a_peer(*args, **kwargs):
        if not peer:
            peer.append(study.ask())  # another worker, which counted the same empty study
        return optimize(*args, **kwargs)

    def events(event):
        if event[0] == "wait" and peer[0].number not in [t.number for t in study.trials if t.state.is_finished()]:
            study.tell(peer[0], 0.5)  # the other worker finishes its trial

    monkeypatch.setattr(study, "optimize", optimize_after_a_peer)
    monkeypatch.setattr(search_mod, "WAIT_POLL_SECONDS", 0.01)
    ran, reason = search_mod.trial_loop(study, objective, target=1, deadline=None, max_trials=None,
                                        events=events)
    assert ran == 0 and reason is None
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    surplus = study.trials[1]
    assert surplus.user_attrs["fail_reason"] == SURPLUS and surplus.params == {}
    assert count_finished(study) == 1 and search_mod.consecutive_failures(study) == 0
    assert list(trials_frame(study)["number"]) == [0]


def test_a_time_budget_prunes_the_running_trial_at_its_next_epoch(tmp_path):
    import time

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize",
                                pruner=optuna.pruners.NopPruner())
    objective = search_mod.Objective(load_space("tiny"), SPLITS, epochs=4, seed=0, deadline=time.time())
    study.optimize(objective, n_trials=1)
    (t,) = study.trials
    assert t.state == TrialState.PRUNED and t.user_attrs["pruned_reason"] == "time budget"
    assert t.user_attrs["epochs_run"] == 1 and list(t.intermediate_values) == [0]


def test_bad_settings_and_storage_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--trials must be at least 1"):
        search_mod.prepare(_settings(tmp_path, trials=0))
    with pytest.raises(UserError, match="--epochs"):
        search_mod.prepare(_settings(tmp_path, epochs=-1))
    with pytest.raises(StudyError, match="cannot open storage"):
        open_storage("postgresql://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(StudyError, match="nobody:\\*\\*\\*@"):
        open_storage("postgresql://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(StudyError, match="cannot open storage"):
        open_storage("notadb://x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StudyError, match="cannot create studies directory"):
        open_storage(f"sqlite:///{blocker / 'sub' / 'x.db'}")


def test_journal_storage_works_for_one_file(tmp_path):
    outcome = _run(_settings(tmp_path, trials=1, storage=str(tmp_path / "study.log")))
    assert outcome.finished == 1 and (tmp_path / "study.log").exists()


def test_worker_processes_replace_each_other_and_a_killed_worker_costs_one_trial(tmp_path):
    import multiprocessing
    import os
    import signal

    class Killing(search_mod.SearchReporter):
        killed = False
        children: list[set[str]] = []

        def epoch(self, number, epoch, logs):
            names = {p.name for p in multiprocessing.active_children()}
            Killing.children.append(names)
            if number == 1 and not self.killed:
                # trial 1 is the first worker's last: its replacement is already getting ready
                assert names == {"cifar-automl-worker-0", "cifar-automl-worker-1"}
                (worker,) = [p for p in multiprocessing.active_children() if p.name.endswith("-0")]
                os.kill(worker.pid, signal.SIGKILL)
                Killing.killed = True

    outcome = _run(_settings(tmp_path, trials=3, trials_per_process=2), reporter=Killing(quiet=True))
    trials = outcome.study.trials
    assert Killing.children[0] == {"cifar-automl-worker-0"}  # no standby before the last trial
    assert not multiprocessing.active_children()
    assert outcome.finished == 3 and not outcome.interrupted
    assert trials[1].state == TrialState.FAIL
    assert trials[1].user_attrs["fail_reason"] == "worker process died (exit code -9)"
    # re-run with the same parameters, recorded as a retry the way Optuna's heartbeat retry does
    assert trials[2].params == trials[1].params and trials[2].system_attrs["failed_trial"] == 1
    assert trials[2].user_attrs["fail_reason"] is None
    assert [t.number for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)] == [0, 2, 3]
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_a_worker_that_stops_at_once_still_tells_the_parent_why(tmp_path):
    # a worker's last events must reach the parent even when it exits right after sending them (lost
    # "done" events once made a search past its --timeout start worker after worker, never ending)
    import multiprocessing
    import pickle
    import time

    from cifar_automl import worker

    settings = _settings(tmp_path, trials=5, trials_per_process=1)
    storage_url = f"sqlite:///{tmp_path}/w.db"
    optuna.create_study(study_name="w", storage=storage_url, direction="maximize")
    payload = pickle.dumps((settings, load_space("tiny"), SPLITS, "w", storage_url, time.time() - 1))
    ctx = multiprocessing.get_context("spawn")
    for _ in range(2):  # twice: a lost last event would show up about half the time
        reader, writer = ctx.Pipe(duplex=False)
        stop, go = ctx.Event(), ctx.Event()
        go.set()
        process = ctx.Process(target=worker.run, args=(payload, writer, stop, go, True))
        process.start()
        writer.close()
        process.join(120)
        assert process.exitcode == 0
        received = []
        while True:
            try:
                received.append(reader.recv())
            except EOFError:
                break
        assert received[-1] == ("done", 0, search_mod.TIMEOUT_REACHED)


def test_workers_stop_starting_at_the_timeout(tmp_path, monkeypatch):
    slots = []

    class CountedSlot(search_mod._Slot):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            slots.append(self)

    monkeypatch.setattr(search_mod, "_Slot", CountedSlot)
    outcome = _run(_settings(tmp_path, trials=5, trials_per_process=1, timeout=0.5))
    assert outcome.stopped_reason == search_mod.TIMEOUT_REACHED
    assert outcome.finished == 0 and len(slots) == 1  # the worker started in time, none after


def test_ctrl_c_in_worker_mode_marks_the_trial_interrupted(tmp_path):
    import multiprocessing
    import os
    import signal

    class Interrupting(search_mod.SearchReporter):
        def epoch(self, number, epoch, logs):
            if number == 1:  # Ctrl-C in a terminal reaches the whole process group
                for child in multiprocessing.active_children():
                    os.kill(child.pid, signal.SIGINT)
                raise KeyboardInterrupt

    outcome = _run(_settings(tmp_path, trials=3, epochs=5, trials_per_process=5), reporter=Interrupting(quiet=True))
    assert outcome.interrupted and outcome.finished == 1
    failed = outcome.study.trials[1]
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"] == "interrupted"
