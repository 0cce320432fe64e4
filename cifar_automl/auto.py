"""One command under a wall-time budget: search -> choose -> retrain -> test -> report (`run_auto`).

`cifar-automl auto --budget 2h` searches for `search_share` of the budget, then retrains one of the best
trials on all training data for as many epochs as the rest of the budget holds, evaluates it on the
test split and writes the report. Epoch times on the retrain data are estimated from the trial's own
recorded training speed (images/s of its steady-state epochs, plus a 10% margin), so the plan needs no
extra runs.
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from .errors import UserError
from .report import write_report
from .results import (
    RetrainResult,
    RetrainSettings,
    load_study_data,
    retrain_dir,
    retrain_trial,
)
from .search import (
    TIMEOUT_REACHED,
    SearchOutcome,
    SearchReporter,
    SearchSettings,
    run_search,
)
from .study import accuracy
from .training import images_per_epoch, matching_tta

SEARCH_SHARE = 0.5  # of the budget, for the search
AUTO_TRIALS = 10_000  # `auto` searches until its share of the budget is spent, unless --trials says less
RESERVE_SHARE = 0.04  # of the budget, kept for loading data, the test evaluation and the report
TOP_CANDIDATES = 3  # retrain one of this many best trials
MAX_EPOCH_MULTIPLE = 15  # retrain at most this many times the trial's search epochs
# Retrain epochs on all the data ran 0.9-1.25x the time the trial's steady search epochs predicted in
# the measured runs (benchmarks/RESULTS.md), two of them over budget: plan with a 10% margin
EPOCH_MARGIN = 1.1
_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """'90m', '2h', '1h30m', '45s' or plain seconds ('5400') -> seconds."""
    s = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        seconds = float(s)
    elif re.fullmatch(r"(\d+(\.\d+)?[hms])+", s):
        seconds = sum(float(n) * _UNITS[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)([hms])", s))
    else:
        raise UserError(f"cannot read the duration '{text}': use e.g. 2h, 90m, 1h30m or seconds")
    if seconds <= 0:
        raise UserError(f"the duration must be positive, not '{text}'")
    return seconds


@dataclass(frozen=True)
class BudgetPlan:
    total: float
    search: float
    retrain: float
    reserve: float

    def describe(self) -> str:
        return (f"budget {self.total / 60:.0f} min: search {self.search / 60:.0f} min, retrain + test "
                f"{self.retrain / 60:.0f} min, {self.reserve / 60:.1f} min kept for data, evaluation and report")


def plan_budget(total_seconds: float, search_share: float = SEARCH_SHARE) -> BudgetPlan:
    if not 0 < search_share < 1:
        raise UserError(f"--search-share must be between 0 and 1, not {search_share}")
    reserve = RESERVE_SHARE * total_seconds
    search = search_share * (total_seconds - reserve)
    return BudgetPlan(total_seconds, search, total_seconds - reserve - search, reserve)


@dataclass(frozen=True)
class RetrainChoice:
    trial: int
    epochs: int
    epoch_seconds: float  # estimated, on the retrain data
    val_accuracy: float
    reason: str


def trained_images(trial: FrozenTrial, images: int) -> int:
    """Images an epoch of `images` trains on with this trial's batch size (training drops the last
    partial batch: see training.steps_per_epoch)."""
    batch = ((trial.user_attrs.get("config") or {}).get("train") or {}).get("batch_size")
    return images_per_epoch(images, int(batch)) if batch else images


def seconds_per_image(trial: FrozenTrial, search_train_images: int) -> float | None:
    """Training seconds per image of this trial, from its steady-state epochs (the first one also traces
    the graph); None when the trial recorded no epoch."""
    train = trial.user_attrs.get("train_seconds") or []
    steady = train[1:] or train
    if not steady or search_train_images <= 0:
        return None
    return statistics.median(steady) / trained_images(trial, search_train_images)


def choose_retrain(
    trials: Sequence[FrozenTrial], seconds: float, retrain_images: int, search_train_images: int,
    test_images: int = 0, top: int = TOP_CANDIDATES,
) -> RetrainChoice:
    """Which trial to retrain, and for how many epochs, so the retrain and test fit in `seconds`.

    The best trial is taken if the time allows at least the epochs it was scored with; otherwise the
    next best of the `top` that does; otherwise, of those, the one that gets the most epochs (the
    fastest, for one epoch, when none fits one). More epochs
    than MAX_EPOCH_MULTIPLE x its search epochs are not planned (the schedule's gains flatten out).
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and accuracy(t) is not None
                and not math.isnan(accuracy(t))]
    if not complete:
        raise UserError("the search finished no trial within its share of the budget: give a larger --budget "
                        "or a larger --search-share")
    ranked = sorted(complete, key=accuracy, reverse=True)[:top]
    options = []
    for rank, t in enumerate(ranked):
        per_image = seconds_per_image(t, search_train_images)
        if per_image is None:
            continue
        epoch = per_image * trained_images(t, retrain_images) * EPOCH_MARGIN
        test = per_image * test_images  # inference (with flip TTA) costs about a training pass / 1.5
        affordable = int(max(0.0, seconds - test) // epoch)
        searched = len(t.user_attrs.get("train_seconds") or []) or 1
        epochs = min(affordable, MAX_EPOCH_MULTIPLE * searched)
        options.append((rank, t, epochs, epoch, searched))
    if not options:
        raise UserError("no finished trial recorded its epoch times")
    for rank, t, epochs, epoch, searched in options:
        if epochs >= searched:
            why = "the best trial" if rank == 0 else (
                f"rank {rank + 1}: the better ones get fewer epochs than they were searched with")
            return RetrainChoice(t.number, epochs, epoch, float(accuracy(t)), why)
    if max(o[2] for o in options) == 0:  # not one epoch fits: the fastest trial, one epoch
        rank, t, epochs, epoch, _ = min(options, key=lambda o: o[3])
        return RetrainChoice(t.number, 1, epoch, float(accuracy(t)),
                             "less than one epoch of any candidate is left: the fastest, one epoch")
    rank, t, epochs, epoch, _ = max(options, key=lambda o: (o[2], -o[0]))
    return RetrainChoice(t.number, epochs, epoch, float(accuracy(t)),
                         "the budget left is short: the trial that gets the most epochs")


def study_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


@dataclass
class AutoOutcome:
    """What `run_auto` did: the search, and (when the search ended as planned) the retrain."""

    plan: BudgetPlan
    search: SearchOutcome
    choice: RetrainChoice | None = None
    result: RetrainResult | None = None
    report: Path | None = None
    seconds: float = 0.0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def run_auto(
    settings: SearchSettings,
    budget: float,
    search_share: float = SEARCH_SHARE,
    *,
    overwrite: bool = False,
    progress: bool = False,
    reporter: SearchReporter | None = None,
    on_search_end: Callable[[SearchOutcome], None] | None = None,
    say: Callable[[str], None] = _stderr,
) -> AutoOutcome:
    """Search for `search_share` of `budget` seconds, retrain one of the best trials for what is left,
    test it and write the report.

    The search is `run_search(settings)` with the share as its timeout (running trials are pruned when
    it is spent); `on_search_end` sees its outcome. If the search was interrupted or stopped early
    (failures), nothing more is done: `AutoOutcome.result` is None. `say` receives the plan and the
    retrain choice as lines of text.
    """
    start = time.time()
    if settings.timeout is not None:
        raise UserError("auto plans the search time from --budget and --search-share: leave out --timeout")
    plan = plan_budget(budget, search_share)
    say(plan.describe())
    search = run_search(dataclasses.replace(settings, timeout=plan.search, prune_at_timeout=True), reporter=reporter)
    outcome = AutoOutcome(plan, search)
    if on_search_end is not None:
        on_search_end(search)
    if search.interrupted or (search.stopped_reason and search.stopped_reason != TIMEOUT_REACHED):
        return outcome
    study = search.study
    rs = RetrainSettings(study_name=study.study_name, storage=settings.storage, studies_dir=settings.studies_dir,
                         seed=settings.seed, cache_dir=settings.cache_dir, overwrite=overwrite, progress=progress,
                         mixed_precision=settings.mixed_precision)
    splits, ss = load_study_data(study, rs)
    left = start + plan.total - plan.reserve - time.time()
    choice = choose_retrain(
        study_trials(study), left, retrain_images=len(splits.x_train) + len(splits.x_val),
        search_train_images=search.data["n_train"], test_images=len(splits.y_test),
    )
    trial = study.get_trials(deepcopy=False)[choice.trial]
    out = retrain_dir(settings.studies_dir, study.study_name, choice.trial)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists (the search is saved): pass --overwrite, or run cifar-automl "
                        f"retrain --study-name {study.study_name} --trial {choice.trial} --epochs {choice.epochs} --overwrite")
    tta = matching_tta(trial.user_attrs["config"]["train"]["augment"])
    say(f"retrain trial {choice.trial} (val {choice.val_accuracy:.4f}, {choice.reason}) for {choice.epochs} "
        f"epochs of ~{choice.epoch_seconds / 60:.1f} min on {len(splits.x_train) + len(splits.x_val)} images"
        f"{'' if tta == 'none' else f', {tta} TTA'}; {left / 60:.0f} min left")
    rs = dataclasses.replace(rs, trial=choice.trial, epochs=choice.epochs, tta=tta)
    outcome.choice = choice
    outcome.result = retrain_trial(study, trial, splits, ss, rs)
    outcome.report = write_report(study.study_name, storage=settings.storage, studies_dir=settings.studies_dir)
    outcome.seconds = time.time() - start
    return outcome
