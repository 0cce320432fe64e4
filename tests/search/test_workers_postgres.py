"""Several workers on one study in a real PostgreSQL, one of them killed (SIGKILL) twice mid-trial.

Needs a PostgreSQL server: `.ci/run` starts Debian's on loopback and sets CIFAR_AUTOML_TEST_POSTGRES
to its URL. Skipped when the variable is unset or the server does not answer.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from ..helpers import TIMED, write_image_tree

URL = os.environ.get("CIFAR_AUTOML_TEST_POSTGRES")


def _reachable(url):
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


pytestmark = [
    pytest.mark.skipif(not URL or not _reachable(URL), reason="needs CIFAR_AUTOML_TEST_POSTGRES"),
    TIMED,
]


def _worker(tree, study, trials, log_path):
    cmd = [sys.executable, "-m", "cifar_automl", "search", "--storage", URL, "--study-name", study,
           "--space", "tiny", "--dataset", "folder", "--data-dir", str(tree), "--subset", "1.0",
           "--cache-dir", str(tree.parent / "cache"), "--trials", str(trials), "--epochs", "3",
           "--heartbeat", "1", "--trials-per-process", "3", "--pruner", "none", "--quiet"]
    # a session of its own, so SIGKILL to the group takes the worker's trial process too (a lost machine)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log_path
    return proc


_STORAGE = []


def _storage():
    """One storage (one connection pool) for all the test's polling: a new one per poll would use up
    the server's connection slots."""
    if not _STORAGE:
        _STORAGE.append(optuna.storages.RDBStorage(URL))
    return _STORAGE[0]


def _running(study_name):
    study = optuna.load_study(study_name=study_name, storage=_storage())
    return [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]


def test_three_workers_one_killed_twice(tmp_path):
    tree = write_image_tree(tmp_path / "tree", n_per_class=20, size=10)
    name = f"workers-{uuid.uuid4().hex[:8]}"
    trials = 8
    procs = [_worker(tree, name, trials, tmp_path / "worker0.log")]
    # let the first worker create the study, then start the other two
    deadline = time.time() + 120
    while time.time() < deadline and not _study_exists(name):
        time.sleep(0.5)
    procs += [_worker(tree, name, trials, tmp_path / f"worker{i}.log") for i in (1, 2)]
    victim = procs[0]
    kills = 0
    deadline = time.time() + 600
    while time.time() < deadline and kills < 2:
        # kill the victim while it is in the middle of a trial
        if victim.poll() is None and _runs_a_trial(victim, name):
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
            kills += 1
            victim = _worker(tree, name, trials, tmp_path / f"worker{len(procs)}.log")  # the machine comes back
            procs.append(victim)
        time.sleep(0.3)
    assert kills == 2, "the victim never ran a trial"
    for p in procs:
        if p.poll() is None:
            p.wait(timeout=600)
    for p in procs:
        assert p.returncode in (0, -signal.SIGKILL), p.log_path.read_text()[-4000:]

    study = optuna.load_study(study_name=name, storage=_storage())
    all_trials = study.get_trials(deepcopy=False)
    finished = [t for t in all_trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == trials, [(t.number, t.state.name) for t in all_trials]
    assert not [t for t in all_trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    numbers = [t.number for t in all_trials]
    assert len(numbers) == len(set(numbers))
    failed = [t for t in all_trials if t.state == TrialState.FAIL]
    assert len(failed) >= 2  # the killed trials, failed by the heartbeat of a live worker
    retried = [t for t in all_trials if t.system_attrs.get("failed_trial") is not None]
    assert retried  # a retry that two workers raced for may end as surplus, with no parameters sampled
    assert all(t.params == all_trials[t.system_attrs["failed_trial"]].params for t in retried if t in finished)


def _study_exists(name):
    try:
        optuna.load_study(study_name=name, storage=_storage())
        return True
    except KeyError:
        return False


def _runs_a_trial(proc, study_name):
    """Whether a RUNNING trial was started by a process of this worker's session."""
    out = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    pids = {line.strip() for line in out.stdout.splitlines()}
    return any(t.user_attrs.get("worker", ":").rsplit(":", 1)[1] in pids for t in _running(study_name))
