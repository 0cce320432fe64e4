"""The trial loop of one process: trials one at a time until the study holds enough finished trials.

`trial_loop` runs in the search's own process (`--trials-per-process 0`) and in every worker process
(`workers.py`). It stops at the trial target, at the deadline, after five failures in a row, or when a
worker runs out of its trials; it never overshoots `--trials` when several workers share the study.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
import warnings
from typing import Callable, Iterator

import optuna
from optuna.trial import TrialState

from ..study import FINISHED, INTERRUPTED, OBJECTIVE, SURPLUS, count_finished
from .objective import Objective
from .settings import TIMEOUT_REACHED

MAX_CONSECUTIVE_FAILURES = 5  # stop a search whose trials keep failing instead of burning the budget
WAIT_POLL_SECONDS = 5.0


def consecutive_failures(study: optuna.Study) -> int:
    """Failed trials at the end of the study (interrupted and surplus ones do not count)."""
    count = 0
    for t in reversed(study.get_trials(deepcopy=False)):
        if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") not in (INTERRUPTED, SURPLUS):
            count += 1
        elif t.state in FINISHED:
            break
    return count


def trial_loop(
    study: optuna.Study,
    objective: Objective,
    target: int,
    deadline: float | None,
    max_trials: int | None,
    events: Callable[[tuple], None],
    keep_going: Callable[[], bool] | None = None,
) -> tuple[int, str | None]:
    """Run trials one at a time until the study holds `target` finished trials (or a stop rule).

    Returns the number of trials run and why it stopped early (None when the target was reached or
    `max_trials` were run). `events` receives ("start", n), ("epoch", n, epoch, val_acc), ("trial", n).
    `keep_going()` false (a worker whose parent died) ends the loop before the next trial.
    """
    keep_going = keep_going or (lambda: True)
    objective.on_start = lambda n: events(("start", n))
    objective.on_epoch = lambda n, e, logs: events(("epoch", n, e, float(logs.get(OBJECTIVE, math.nan))))
    guarded = _SurplusGuard(objective, target)
    with _gc_frozen():
        ran = 0
        while (max_trials is None or ran < max_trials) and keep_going():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # trials of dead workers: failed and re-queued
            if count_finished(study) >= target:
                return ran, None
            if deadline is not None and time.time() >= deadline:
                return ran, TIMEOUT_REACHED
            failures = consecutive_failures(study)
            if failures >= MAX_CONSECUTIVE_FAILURES:
                return ran, f"{failures} trials in a row failed"
            states = [t.state for t in study.get_trials(deepcopy=False)]
            running, waiting = states.count(TrialState.RUNNING), states.count(TrialState.WAITING)
            if not waiting and count_finished(study) + running >= target:
                # other workers are running the last trials: wait for them (or for their heartbeats to
                # stop, when the trial is failed and re-queued) instead of overshooting --trials
                events(("wait", running))
                time.sleep(WAIT_POLL_SECONDS)
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.optimize(guarded, n_trials=1)
            except _Surplus:
                continue  # another worker took the last place in the same moment: wait for the others
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
                # Optuna could not record the trial because it is already finished: this worker's
                # heartbeat was late (a stalled machine) and another worker failed the trial as stale
                # and re-queued it
                if not _finished_elsewhere(study, objective.last_number):
                    raise
            ran += 1
            if objective.last_number is not None:
                events(("trial", objective.last_number))
        return ran, None


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


class _Surplus(Exception):
    pass


class _SurplusGuard:
    """The objective, behind a check that this trial is not one too many.

    Workers count the study and then start a trial; two that count at the same moment (or that both
    see the one re-queued trial of a dead worker, which only one of them gets) would both start one and
    overshoot --trials. Once its trial exists, a worker counts again the trials numbered below it that
    are finished, running or queued: if they already fill the target, the trial is failed as surplus
    before it samples or trains anything. Numbers order the trials the same way for every worker, so
    exactly the trials past the target are the surplus ones.
    """

    def __init__(self, objective: Objective, target: int) -> None:
        self.objective, self.target = objective, target

    def __call__(self, trial: optuna.Trial) -> float:
        live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        below = trial.study.get_trials(deepcopy=False, states=live)
        if sum(1 for t in below if t.number < trial.number) >= self.target:
            trial.set_user_attr("fail_reason", SURPLUS)
            raise _Surplus()
        return self.objective(trial)


def _finished_elsewhere(study: optuna.Study, number: int | None) -> bool:
    return number is not None and study.get_trials(deepcopy=False)[number].state == TrialState.FAIL
