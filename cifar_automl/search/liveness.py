"""Which running trials are still being worked on: nothing stays RUNNING for ever, on any storage.

Every trial records who runs it (`owner`: host, process id and that process's start time) as soon as
it is asked, and a sign of life (`alive_at`, seconds since the epoch) every `--heartbeat` seconds
while it runs. A RUNNING trial is stale when its owner was a process on this machine that is gone
(checked at once), or when it has given no sign of life for three heartbeats (a process on another
machine, or a machine that died). `fail_stale` fails stale trials with their reason and queues their
parameters again through Optuna's `RetryHeartbeatStaleTrialCallback` (at most twice per original
trial, recorded in the retry's system attribute `failed_trial`), on SQLite, PostgreSQL/MySQL and
journal storage alike. Optuna's own heartbeat works on databases only and skips a trial that was
killed before its first beat, so this module does not rely on it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..study import INTERRUPTED

OWNER = "owner"  # user attribute: {"host", "pid", "started"} of the process running the trial
ALIVE = "alive_at"  # user attribute: time.time() of the trial's last sign of life
STALE_BEATS = 3  # a trial silent this many heartbeats is stale
MAX_RETRY = 2  # a failed trial's parameters are re-queued at most this many times


def _started(pid: int) -> int | None:
    """The start time of a live process `pid`, in clock ticks since boot (Linux /proc); None when there
    is no such process or it has exited (a zombie waiting for its parent)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # fields[0] is field 3 of stat(5), the state
        return None if fields[0] in (b"Z", b"X") else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _started(os.getpid())}


def owner_gone(owner: dict[str, Any] | None) -> bool:
    """Whether the process that owned a trial is known to be gone: it ran on this machine and no
    process with its id and start time is running. Owners on other machines are never 'known gone'."""
    if not owner or owner.get("host") != socket.gethostname():
        return False
    pid = int(owner.get("pid", -1))
    if pid == os.getpid():
        return False
    if os.path.isdir("/proc"):
        started = _started(pid)
        return started is None or (owner.get("started") is not None and started != owner["started"])
    try:  # no /proc: whether the id exists at all
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def claim(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> None:
    """Record this process as the trial's owner, with a first sign of life."""
    storage = study._storage
    storage.set_trial_user_attr(trial._trial_id, OWNER, this_process())
    storage.set_trial_user_attr(trial._trial_id, ALIVE, time.time())


class Heartbeat:
    """While the block runs, a thread records the trial's sign of life every `interval` seconds."""

    def __init__(self, study: optuna.Study, trial_id: int, interval: float) -> None:
        self.storage, self.trial_id, self.interval = study._storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="cifar-automl-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.set_trial_user_attr(self.trial_id, ALIVE, time.time())
            except optuna.exceptions.UpdateFinishedTrialError:
                return  # failed as stale by another process: nothing left to keep alive
            except Exception:  # a storage hiccup: the next beat tries again
                continue

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def stale_reason(trial: FrozenTrial, grace: float, now: float | None = None) -> str | None:
    """Why a RUNNING trial is stale, or None while it may still be running."""
    if trial.state != TrialState.RUNNING:
        return None
    owner = trial.user_attrs.get(OWNER)
    if owner_gone(owner):
        return f"its worker process ({owner['host']}:{owner['pid']}) is gone"
    now = time.time() if now is None else now
    last = trial.user_attrs.get(ALIVE)
    if last is None and trial.datetime_start is not None:
        last = trial.datetime_start.timestamp()
    if last is not None and now - float(last) > grace:
        return f"no sign of life for {now - float(last):.0f} s"
    return None


def fail_and_requeue(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Fail a RUNNING trial with `reason` and, unless it was interrupted on purpose, queue its
    parameters again (Optuna's RetryHeartbeatStaleTrialCallback). False when the trial was no
    longer running (finished, or failed by another process meanwhile)."""
    storage = study._storage
    try:
        if storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
            return False
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
        if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # failed (and re-queued) meanwhile by another process
    if reason != INTERRUPTED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
            retry(study, storage.get_trial(trial._trial_id))
    return True


def fail_stale(study: optuna.Study, heartbeat: float) -> list[int]:
    """Fail and re-queue every stale RUNNING trial of the study; returns their numbers."""
    failed = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(t, STALE_BEATS * heartbeat, now)
        if reason is not None and fail_and_requeue(study, t, f"stale: {reason}"):
            failed.append(t.number)
    return failed
