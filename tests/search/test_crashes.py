"""Crashes on a shared study: three `search` commands on one study, ten random SIGKILLs of their worker
processes and of the commands themselves, one kill of a whole process group (a lost machine), then the
same command again. The study ends with exactly --trials finished trials, none RUNNING, no
configuration run twice except marked retries, and every killed trial re-run once.

On PostgreSQL (`.ci/run` starts Debian's on loopback and sets CIFAR_AUTOML_TEST_POSTGRES; when the
variable is set, a server that does not answer fails the test) and on Optuna's journal file storage.
"""

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from cifar_automl.study import FINISHED, open_storage

from ..helpers import write_image_tree

POSTGRES = os.environ.get("CIFAR_AUTOML_TEST_POSTGRES")
TRIALS = 24
KILLS = 10


def _storage_url(kind: str, tmp_path: Path) -> str:
    if kind == "journal":
        return str(tmp_path / "crash.log")
    if not POSTGRES:
        pytest.skip("needs CIFAR_AUTOML_TEST_POSTGRES (bash .ci/run starts a server and sets it)")
    return POSTGRES  # set: a server that does not answer fails the test below, it is not skipped


def _command(url: str, name: str, tree: Path) -> list[str]:
    return [sys.executable, "-m", "cifar_automl", "search", "--storage", url, "--study-name", name,
            "--space", "tiny", "--dataset", "folder", "--data-dir", str(tree), "--subset", "1.0",
            "--cache-dir", str(tree.parent / "cache"), "--trials", str(TRIALS), "--epochs", "2", "--pruner", "none",
            "--trials-per-process", "3", "--heartbeat", "2", "--quiet"]


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    # a session of its own: killing its process group takes its workers too, as a lost machine would
    with open(log, "a") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _workers(parent: int) -> list[int]:
    """The worker processes of a search command (its spawned children, not multiprocessing's tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"--multiprocessing-fork" in cmdline and b"resource_tracker" not in cmdline:
            found.append(int(entry.name))
    return found


def _where(command: int) -> str:
    """What a command that does not end and its workers are doing: state and kernel wait channel."""
    lines = []
    for pid in [command, *_workers(command)]:
        try:
            state = (Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]).decode()
            lines.append(f"pid {pid}: state {state}, waiting in {Path(f'/proc/{pid}/wchan').read_text() or '-'}")
        except OSError:
            lines.append(f"pid {pid}: gone")
    return "\n".join(lines)


def _running_trial_owners(study: optuna.Study) -> set[int]:
    """The processes running a trial that is not a retry (a trial is retried at most twice: killing a
    retry again could use that up)."""
    return {t.user_attrs.get("owner", {}).get("pid") for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if "retry_history" not in t.system_attrs}


# each in a test process group of its own: they wait on events, not on the clock, and may run beside
# other tests (pyproject.toml: the suite's two test processes)
@pytest.mark.parametrize("kind", [pytest.param("postgresql", marks=pytest.mark.xdist_group("crash-postgresql")),
                                  pytest.param("journal", marks=pytest.mark.xdist_group("crash-journal"))])
def test_kills_of_workers_and_commands_cost_nothing_but_their_trials(tmp_path, kind):
    url = _storage_url(kind, tmp_path)
    name = f"crash-{uuid.uuid4().hex[:8]}"
    tree = write_image_tree(tmp_path / "tree", n_per_class=16, size=8)
    cmd = _command(url, name, tree)
    log = tmp_path / "search.log"
    rng = random.Random(0)
    commands = [_start(cmd, log)]
    deadline = time.time() + 120
    while time.time() < deadline and not _exists(url, name):  # the first creates the study
        assert commands[0].poll() is None, log.read_text()[-3000:]
        time.sleep(0.3)
    storage = open_storage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    commands += [_start(cmd, log) for _ in range(2)]
    kills: list[str] = []
    plan = ["worker"] * 6 + ["command"] * 4
    rng.shuffle(plan)
    deadline = time.time() + 300
    for what in plan:
        time.sleep(rng.uniform(1.0, 2.5))
        busy: list[tuple[subprocess.Popen, int]] = []
        while not busy and time.time() < deadline:  # a moment when some worker is in the middle of a trial
            owners = _running_trial_owners(study)
            busy = [(c, w) for c in commands if c.poll() is None for w in _workers(c.pid) if w in owners]
            time.sleep(0.2)
        if not busy:
            break
        command, worker = rng.choice(busy)
        if what == "worker":
            os.kill(worker, signal.SIGKILL)  # its trial is lost and must be re-run
        else:
            os.kill(command.pid, signal.SIGKILL)  # the command; its workers finish their trial and exit
            commands.append(_start(cmd, log))  # started again, as a job scheduler would
        kills.append(what)
    assert len(kills) == KILLS, (
        f"no busy worker to kill after {len(kills)} kills ({time.time() - deadline + 300:.0f} s): "
        f"{[c.poll() for c in commands]}\n{_summary(study.get_trials())}\n{log.read_text()[-3000:]}")
    victim = next(c for c in commands if c.poll() is None)
    os.killpg(victim.pid, signal.SIGKILL)  # the command and its workers at once: a machine lost
    for c in commands:
        try:
            c.wait(timeout=240)
        except subprocess.TimeoutExpired:
            where = _where(c.pid)
            os.killpg(c.pid, signal.SIGKILL)
            pytest.fail(f"a search command did not end:\n{where}\n{log.read_text()[-3000:]}")
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # the same command again
    assert final.returncode == 0, final.stderr[-3000:]

    trials = optuna.load_study(study_name=name, storage=open_storage(url)).get_trials()
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == TRIALS, _summary(trials)
    assert not [t for t in trials if t.state == TrialState.RUNNING], _summary(trials)
    killed = [t for t in trials if t.state == TrialState.FAIL
              and t.user_attrs.get("fail_reason", "").startswith(("worker process died", "stale:"))]
    assert killed, _summary(trials)  # the kills hit trials
    for t in killed:  # every killed trial re-run once, with the parameters it had drawn
        retries = [r for r in trials if (r.system_attrs.get("retry_history") or [None])[-1] == t.number]
        assert len(retries) == 1, (t.number, _summary(trials))
        # a kill can land between two draws: the retry keeps what was drawn and draws the rest
        assert retries[0].params.items() >= t.params.items(), (t.number, _summary(trials))
    ran = [t for t in trials if t.params]
    for t in ran:  # no configuration twice, except a marked retry of a killed trial
        twins = [o for o in ran if o.params == t.params and o.number != t.number]
        for o in twins:
            assert "failed_trial" in o.system_attrs or "failed_trial" in t.system_attrs, (t.number, o.number)


def _exists(url: str, name: str) -> bool:
    """Whether the study exists yet (a PostgreSQL server that does not answer raises: a failure)."""
    if not url.startswith("postgresql") and not Path(url).exists():
        return False
    storage = open_storage(url)
    return name in [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def _summary(trials: list) -> str:
    return "\n".join(f"{t.number} {t.state.name} {t.user_attrs.get('fail_reason')} "
                     f"retry_of={t.system_attrs.get('retry_history')}" for t in trials)
