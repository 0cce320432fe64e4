"""The trial loop of one process: trials one at a time until the study holds enough finished trials.

`trial_loop` runs in the search's own process (`--trials-per-process 0`) and in every worker process
(`workers.py`). Each trial is asked for, claimed (`liveness.claim`: who runs it), kept alive by a
heartbeat while it trains, and told its outcome. The loop stops at the trial target, at the
deadline, after five failures in a row, or when a worker has run its share; it never overshoots
`--trials` when several workers share the study, never runs a queued configuration twice, and goes on
when another process has already finished a trial it was running (failed as stale after a stall).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import math
import time
from pathlib import Path
from typing import Callable, ContextManager, Iterator

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..study import (
    DUPLICATE,
    FINISHED,
    INTERRUPTED,
    OBJECTIVE,
    SURPLUS,
    count_finished,
    is_journal,
)
from .liveness import Heartbeat, claim, fail_stale
from .objective import Objective
from .settings import TIMEOUT_REACHED

MAX_CONSECUTIVE_FAILURES = 5  # stop a search whose trials keep failing instead of burning the budget
WAIT_POLL_SECONDS = 5.0
NOT_FAILURES = (INTERRUPTED, SURPLUS, DUPLICATE)  # failed trials that say nothing about the search
QUEUE_KEYS = ("retry_of", "warm_start")  # user attributes that name what a queued trial repeats


def consecutive_failures(study: optuna.Study) -> tuple[int, str | None]:
    """Failed trials at the end of the study, and the fail reason of the last of them.

    Interrupted, surplus and duplicate trials do not count, nor a trial that was queued again (its
    worker died, or it went silent): its retry says whether the configuration fails."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs["retry_history"][-1] for t in trials if t.system_attrs.get("retry_history")}
    count, last = 0, None
    for t in reversed(trials):
        if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") not in NOT_FAILURES and t.number not in retried:
            count += 1
            last = last or t.user_attrs.get("fail_reason")
        elif t.state in FINISHED:
            break
    return count, last


def claim_lock(storage_url: str) -> Callable[[], ContextManager[None]]:
    """A lock around taking the next trial, for storages without row locks.

    SQLite (and the journal file) have none: two processes can pop the same queued trial and run it
    twice. Processes on one machine serialise the pop with an exclusive lock on a file beside the
    database; PostgreSQL and MySQL lock the row themselves."""
    if url_path := _local_file(storage_url):
        lock_path = Path(f"{url_path}.claim-lock")  # not ".lock": the journal backend uses that name itself

        @contextlib.contextmanager
        def locked() -> Iterator[None]:
            with open(lock_path, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

        return locked
    return contextlib.nullcontext


def _local_file(url: str) -> str | None:
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    if is_journal(url):
        return url.removeprefix("journal:")
    return None


def trial_loop(
    study: optuna.Study,
    objective: Objective,
    target: int,
    deadline: float | None,
    max_trials: int | None,
    events: Callable[[tuple], None],
    keep_going: Callable[[], bool] | None = None,
    heartbeat: float = 30.0,
    lock: Callable[[], ContextManager[None]] = contextlib.nullcontext,
) -> tuple[int, str | None]:
    """Run trials one at a time until the study holds `target` finished trials (or a stop rule).

    Returns the number of trials run and why it stopped early (None when the target was reached or
    `max_trials` were run). `events` receives ("start", n) as soon as trial n is claimed,
    ("epoch", n, epoch, val_acc) and ("trial", n). `keep_going()` false (a worker whose parent died)
    ends the loop before the next trial. `heartbeat`: seconds between a running trial's signs of life;
    `lock`: held while a trial is taken (`claim_lock`).
    """
    keep_going = keep_going or (lambda: True)
    objective.on_epoch = lambda n, e, logs: events(("epoch", n, e, float(logs.get(OBJECTIVE, math.nan))))
    with _gc_frozen():
        ran = 0
        while (max_trials is None or ran < max_trials) and keep_going():
            fail_stale(study, heartbeat)  # trials of dead workers: failed and re-queued
            if count_finished(study) >= target:
                return ran, None
            if deadline is not None and time.time() >= deadline:
                return ran, TIMEOUT_REACHED
            failures, last = consecutive_failures(study)
            if failures >= MAX_CONSECUTIVE_FAILURES:
                return ran, f"{failures} trials in a row failed (last: {last})"
            states = [t.state for t in study.get_trials(deepcopy=False)]
            running, waiting = states.count(TrialState.RUNNING), states.count(TrialState.WAITING)
            if not waiting and count_finished(study) + running >= target:
                # other workers are running the last trials: wait for them (or for them to be found
                # stale and re-queued) instead of overshooting --trials
                events(("wait", running, STALE_NOTE))
                time.sleep(WAIT_POLL_SECONDS)
                continue
            trial = None
            try:
                with lock():
                    trial = study.ask()
                    claim(study, trial)
                events(("start", trial.number))
                skip = _skip_reason(study, trial, target)
                if skip is not None:  # it ran nothing: wait for the others, or take the next
                    trial.set_user_attr("fail_reason", skip)
                    _tell(study, trial, state=TrialState.FAIL)
                    events(("skipped", trial.number, skip))
                    continue
                with Heartbeat(study, trial._trial_id, heartbeat):
                    _run(study, trial, objective)
            except KeyboardInterrupt:  # Ctrl-C at any moment of the trial: marked, re-run by the next run
                if trial is not None and study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
                    trial.set_user_attr("fail_reason", INTERRUPTED)
                    _tell(study, trial, state=TrialState.FAIL)
                raise
            ran += 1
            events(("trial", trial.number))
        return ran, None


STALE_NOTE = "those left RUNNING by a worker that died are failed and re-run once found stale"


def _skip_reason(study: optuna.Study, trial: optuna.Trial, target: int) -> str | None:
    """Why a trial just taken must not run, or None.

    Surplus: workers count the study and then take a trial; two that count at the same moment (or
    both see the one re-queued trial of a dead worker, which only one of them gets) would both take
    one and overshoot --trials. Once its trial exists, a worker counts again the trials numbered
    below it that are finished, running or queued: if they already fill the target, the trial is one
    too many. Numbers order the trials the same way for every worker, so exactly the trials past
    the target are the surplus ones.

    Duplicate: two `search` commands started together can both queue the same configuration (the
    space defaults, the retry of an interrupted trial): a queued trial whose marker (`QUEUE_KEYS`) an
    earlier trial carries, queued, running or finished, is skipped. An earlier copy that failed does
    not count: this one may be its retry (Optuna's retries copy the original's user attributes).
    """
    trials = study.get_trials(deepcopy=False)
    mine = trials[trial.number]
    for key in QUEUE_KEYS:
        value = mine.user_attrs.get(key)
        if value is not None and any(t.user_attrs.get(key) == value and t.state != TrialState.FAIL
                                     for t in trials[: trial.number]):
            return DUPLICATE
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    if sum(1 for t in trials[: trial.number] if t.state in live) >= target:
        return SURPLUS
    return None


def _run(study: optuna.Study, trial: optuna.Trial, objective: Objective) -> None:
    """Run the objective on the trial and tell the study how it ended."""
    try:
        value = objective(trial)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # another process failed it as stale while this one stalled: go on with the next
    except optuna.TrialPruned:
        _tell(study, trial, state=TrialState.PRUNED)
    except Exception as e:  # storage errors and the like: the trial fails with them, the loop stops
        trial.storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"{type(e).__name__}: {_first_line(e)}")
        _tell(study, trial, state=TrialState.FAIL)
        raise
    else:
        if isinstance(value, float) and math.isnan(value):
            _tell(study, trial, state=TrialState.FAIL)  # the objective recorded why
        else:
            _tell(study, trial, value)


def _tell(study: optuna.Study, trial: optuna.Trial, value: float | list[float] | None = None,
          state: TrialState | None = None) -> FrozenTrial | None:
    """`study.tell`, except that a trial another process has finished meanwhile (failed as stale
    while this one stalled) is left as it is: the loop goes on with the next trial."""
    try:
        return study.tell(trial, value, state=state, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else ""


@contextlib.contextmanager
def _gc_frozen() -> Iterator[None]:
    """The ~350k objects of TensorFlow, Keras and the data exist before the first trial and outlive the
    trial loop: frozen, every garbage collection (one per trial, many more while graphs are traced)
    skips them; measured 0.37 -> 0.15 s per collection here."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
