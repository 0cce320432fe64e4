import optuna
import pytest
from optuna.trial import TrialState

from cifar_automl.search import (
    TIMEOUT_REACHED,
    SearchReporter,
    workers,
)
from cifar_automl.search.space import load_space

from .common import SPLITS, run, settings


def test_worker_processes_replace_each_other_and_a_killed_worker_costs_one_trial(tmp_path):
    import multiprocessing
    import os
    import signal

    class Killing(SearchReporter):
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

    outcome = run(settings(tmp_path, trials=3, trials_per_process=2), reporter=Killing(quiet=True))
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
    import pickle
    import time

    worker_settings = settings(tmp_path, trials=5, trials_per_process=1)
    storage_url = f"sqlite:///{tmp_path}/w.db"
    optuna.create_study(study_name="w", storage=storage_url, direction="maximize")
    payload = pickle.dumps((worker_settings, load_space("tiny"), SPLITS, "w", storage_url, time.time() - 1))
    for _ in range(2):  # twice: a lost last event would show up about half the time
        exitcode, received = _run_worker(payload, timeout=120)
        assert exitcode == 0
        assert received[-1] == ("done", 0, TIMEOUT_REACHED)


def _run_worker(payload: bytes, timeout: float) -> tuple[int | None, list[tuple]]:
    """Run the real worker entry point on `payload` in a process of its own, as `run_in_workers` starts
    it: its exit code (killed if it has not exited `timeout` s after its pipe ended) and every event."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    stop, go = ctx.Event(), ctx.Event()
    go.set()
    process = ctx.Process(target=workers.run, args=(payload, writer, stop, go, True))
    process.start()
    writer.close()
    received = []
    while True:
        try:
            received.append(reader.recv())
        except EOFError:
            break
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
    return process.exitcode, received


def _worker_that_hangs_on_exit(payload, events, stop, go, quiet, gpu=None):
    """A worker whose process does not exit after its last event, as a teardown of TensorFlow can hang."""
    import pickle
    import signal
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    workers.worker_main(*pickle.loads(payload), workers._Events(events), stop, go, quiet)
    time.sleep(3600)


@pytest.mark.timeout(240)
def test_a_worker_that_does_not_exit_after_its_last_event_is_ended(tmp_path, monkeypatch):
    # the parent once waited for ever on such a worker, with the study's trials all finished. Two
    # workers for one trial: the one that does not get it says "done" having run none, which is no
    # failure to start
    import multiprocessing

    monkeypatch.setattr(workers, "run", _worker_that_hangs_on_exit)
    monkeypatch.setattr(workers, "EXIT_GRACE_SECONDS", 1.0)
    outcome = run(settings(tmp_path, trials=1, trials_per_process=1, workers=2))
    assert outcome.finished == 1 and not outcome.interrupted and outcome.ran == 1
    assert not multiprocessing.active_children()
    assert [t.state for t in outcome.study.trials if t.state != TrialState.FAIL] == [TrialState.COMPLETE]


def _name_with_a_lingering_thread(name):
    import threading
    import time

    threading.Thread(target=time.sleep, args=(3600,), daemon=False).start()
    return name


class _Lingering(str):
    """A study name that, unpickled in a worker, leaves a thread running there that is not a daemon,
    as a library's thread can: the interpreter would wait for it before the process ends."""

    def __reduce__(self):
        return (_name_with_a_lingering_thread, (str(self),))


def test_a_worker_process_ends_after_its_last_event_whatever_it_left_running(tmp_path):
    import pickle

    storage_url = f"sqlite:///{tmp_path}/w.db"
    optuna.create_study(study_name="w", storage=storage_url, direction="maximize")
    payload = pickle.dumps((settings(tmp_path, trials=1, trials_per_process=1), load_space("tiny"), SPLITS,
                            _Lingering("w"), storage_url, None))
    exitcode, received = _run_worker(payload, timeout=30)
    assert exitcode == 0 and received[-1] == ("done", 1, None)


def test_workers_stop_starting_at_the_timeout(tmp_path, monkeypatch):
    """No worker is started past --timeout, however fast or slow the machine (each worker runs one
    trial, so without the rule new ones would keep coming)."""
    import time

    started = []

    class CountedSlot(workers._Slot):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(time.time())

    monkeypatch.setattr(workers, "_Slot", CountedSlot)
    begin = time.time()
    outcome = run(settings(tmp_path, trials=50, trials_per_process=1, timeout=3.0))
    assert outcome.stopped_reason == TIMEOUT_REACHED and outcome.finished < 50
    assert started and all(t < begin + 3.0 for t in started)


def test_ctrl_c_in_worker_mode_marks_the_trial_interrupted(tmp_path):
    import multiprocessing
    import os
    import signal

    class Interrupting(SearchReporter):
        def epoch(self, number, epoch, logs):
            if number == 1:  # Ctrl-C in a terminal reaches the whole process group
                for child in multiprocessing.active_children():
                    os.kill(child.pid, signal.SIGINT)
                raise KeyboardInterrupt

    outcome = run(settings(tmp_path, trials=3, epochs=5, trials_per_process=5), reporter=Interrupting(quiet=True))
    assert outcome.interrupted and outcome.finished == 1
    failed = outcome.study.trials[1]
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"] == "interrupted"


def test_an_error_in_the_parent_stops_every_worker_and_leaves_no_trial_running(tmp_path):
    import multiprocessing

    class Failing(SearchReporter):
        def epoch(self, number, epoch, logs):
            raise OSError(28, "No space left on device")  # the parent's disk is full

    with pytest.raises(OSError, match="No space left"):
        run(settings(tmp_path, trials=3, epochs=5, trials_per_process=5), reporter=Failing(quiet=True))
    assert not multiprocessing.active_children()
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'studies' / 'tiny.db'}")
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert study.trials[0].user_attrs["fail_reason"] == "interrupted"  # re-run by the next run


def test_two_workers_sample_different_configurations_and_a_rerun_the_same_ones(tmp_path):
    """--workers 2: the workers start together, in a study of the same size, with the same --seed; they
    must not run the same random start-up configurations, and the command run again gives the same set."""
    runs = []
    for attempt in ("first", "second"):
        outcome = run(settings(tmp_path / attempt, trials=4, epochs=1, trials_per_process=2, workers=2,
                               pruner="none"))
        done = [t for t in outcome.study.trials if t.state == TrialState.COMPLETE]
        params = [tuple(sorted(t.params.items())) for t in done]
        assert outcome.finished == 4 and len(params) == 4
        runs.append(params)
        # two worker processes, training at the same time
        assert len({t.user_attrs["owner"]["pid"] for t in done}) >= 2
        assert any(a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete
                   for a in done for b in done if a.user_attrs["owner"]["pid"] != b.user_attrs["owner"]["pid"])
    assert len(set(runs[0])) == 4  # no two trials alike
    assert set(runs[0]) == set(runs[1])


def test_workers_get_the_splits_without_the_test_split():
    from cifar_automl.search.workers import without_test

    light = without_test(SPLITS)
    assert len(light.x_test) == len(light.y_test) == 0 and len(SPLITS.x_test) > 0
    assert light.x_train is SPLITS.x_train and light.info == SPLITS.info
