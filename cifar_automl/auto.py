"""One command under a wall-time budget: search -> choose -> retrain -> test -> report (`run_auto`).

`cifar-automl auto --budget 2h` searches for `search_share` of the budget, then retrains one of the best
trials on all training data for what the rest of the budget holds, evaluates it on the test split and
writes the report. Epoch times on the retrain data are estimated from the trial's own recorded
training speed (images/s of its steady-state epochs, plus a 10% margin), so the plan needs no extra
runs. When whole epochs would leave more than 5% of the budget unused, the retrain's schedule is sized
in steps to the time left (its last epoch cut short).

A space with defaults (a known-good recipe) runs them as the first trial, after the best of a
`--warm-start` source when one is given. If the search share holds fewer than MIN_SEARCH_TRIALS trials
as long as the first one, a search cannot be expected to pay for itself: `auto` says so, stops
searching, and spends the rest of the budget retraining that first trial. It can know this from the
first trial's second epoch on, and stops that trial as soon as its epochs show it (`first_trial_cap`),
so that such a budget costs what --search-share 0 costs. A share the user set (--search-share) stands:
`auto` warns when it holds fewer trials than that, and searches unless it cannot hold the first trial.

A search share is paid for with retrain epochs. Without --search-share, after a known-good first trial
`auto` searches only for as long as MIN_SEARCH_TRIALS trials like it take, and only if that share costs
the retrain less than what such a search was measured to buy (`retrain_cost`, KNOWN_GOOD_SEARCH_GAIN):
measured on Fashion-MNIST, half the budget cost the retrain three and a half times what the search bought.
A space without defaults (and no warm start) searches for half the budget.
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
from typing import Callable, NamedTuple, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from .errors import SearchError, UserError
from .report import write_report
from .results import (
    RetrainResult,
    RetrainSettings,
    load_study_data,
    retrain_dir,
    retrain_trial,
)
from .search import (
    COST_CAP,
    TIMED_EPOCHS,
    TIMEOUT_REACHED,
    SearchOutcome,
    SearchReporter,
    SearchSettings,
    load_space,
    run_search,
)
from .study import accuracy, repeats
from .training import images_per_epoch, matching_tta, projected_seconds, steps_per_epoch
from .training.evaluate import TTA_VIEWS

SEARCH_SHARE = 0.5  # of the budget, for a search from scratch (a space without defaults, no warm start)
# What a search share costs the retrain: it trains (1 - share) of the epochs, and test error grew as
# epochs ** -RETRAIN_ERROR_EXPONENT when the airbench space's defaults and a search's winner were retrained
# for fewer epochs on all of Fashion-MNIST (0.11 and 0.13; benchmarks/RESULTS.md, "What the search share
# costs and buys")
RETRAIN_ERROR_EXPONENT = 0.12
# What a search of MIN_SEARCH_TRIALS trials bought over a known-good first trial, as a relative cut in test
# error at equal retrain epochs: its winner against airbench's defaults, both retrained 6 and 10 epochs on
# Fashion-MNIST (1.6% and 3.3%, the same RESULTS section)
KNOWN_GOOD_SEARCH_GAIN = 0.025
AUTO_TRIALS = 10_000  # `auto` searches until its share of the budget is spent, unless --trials says less
RESERVE_SHARE = 0.04  # of the budget, kept for loading data, the test evaluation and the report
# once the retrain's data are loaded, what the reserve still keeps beside the estimated test pass: saving
# the model, timing its latency, the report (measured at 2 h: about 5 s of them, the report 1.5 s)
FINISH_SECONDS = 20.0
TOP_CANDIDATES = 3  # retrain one of this many best trials
MAX_EPOCH_MULTIPLE = 15  # retrain at most this many times the trial's search epochs
# Retrain epochs on all the data ran 0.9-1.25x the time the trial's steady search epochs predicted in
# the measured runs (benchmarks/RESULTS.md), two of them over budget: plan with a 10% margin
EPOCH_MARGIN = 1.1
# the retrain may leave at most this share of the budget unused: when whole epochs would leave more, the
# schedule is sized in steps to the time left (its last epoch cut short)
FILL_SHARE = 0.05
# a search pays for itself only if its share of the budget holds this many trials of the space's
# defaults (each as long as the first, unpruned, one): on NAS-Bench-201 (benchmarks/nb201.py) TPE needs
# a median of ~30 trials to reach random search's 200-trial best, and with pruning a trial costs about a
# third of a full one; a search that holds fewer cannot be expected to beat a known-good default
MIN_SEARCH_TRIALS = 10
# --search-share 0 times the first trial (the defaults) with this many epochs: the first epoch also
# builds and traces the model. A first trial too slow for a search stops there too (`first_trial_cap`)
NO_SEARCH_EPOCHS = TIMED_EPOCHS
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

    def describe(self, first: str = "the space's defaults") -> str:
        """The plan in words; `first`: what a plan without search retrains."""
        if not self.search:
            return (f"budget {self.total / 60:.0f} min: no search: two epochs of {first} time them, then "
                    f"they retrain for the rest ({self.retrain / 60:.0f} min with the test), {self.reserve / 60:.1f} "
                    "min kept for data, evaluation and report")
        return (f"budget {self.total / 60:.0f} min: search {self.search / 60:.0f} min, retrain + test "
                f"{self.retrain / 60:.0f} min, {self.reserve / 60:.1f} min kept for data, evaluation and report")

    @property
    def share(self) -> float:
        """The share of the budget (less the reserve) that searches."""
        return self.search / (self.search + self.retrain) if self.search + self.retrain else 0.0

    def seconds_left(self, start: float) -> float:
        """The seconds a retrain and its test pass may take, its data loaded, of a budget begun at `start`
        (`time.time()`): of the reserve only what the end needs beside the test pass (saving, the report)."""
        return start + self.total - min(self.reserve, FINISH_SECONDS) - time.time()


def retrain_cost(share: float) -> float:
    """How much more test error (relative) the retrain is expected to end with when a search takes `share`
    of the budget: its epochs shrink to (1 - share)."""
    return (1 - min(share, 0.999)) ** -RETRAIN_ERROR_EXPONENT - 1


def runs_known_first(settings: SearchSettings) -> bool:
    """Whether a new study of these settings runs a known-good first trial: the space's defaults, or a
    `--warm-start` source's best."""
    return bool(load_space(settings.space).default_params() or settings.warm_start)


def default_search_share(known_first: bool) -> float:
    """`auto`'s search share when none is given. From scratch (no defaults, no warm start): SEARCH_SHARE.
    After a known-good first trial (the space's defaults or a warm start's best): at most the share whose
    `retrain_cost` is what a search around such a trial was measured to buy (KNOWN_GOOD_SEARCH_GAIN), about
    0.19; `run_auto` then searches only for as long as MIN_SEARCH_TRIALS trials like the first take."""
    if not known_first:
        return SEARCH_SHARE
    return 1 - (1 + KNOWN_GOOD_SEARCH_GAIN) ** (-1 / RETRAIN_ERROR_EXPONENT)


def plan_budget(total_seconds: float, search_share: float = SEARCH_SHARE) -> BudgetPlan:
    if not 0 <= search_share < 1:
        raise UserError(f"--search-share must be at least 0 and below 1, not {search_share}")
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
    steps: int | None = None  # the schedule's length in steps when its last epoch is cut short
    steps_per_epoch: int | None = None
    # the seconds its training may take and its most epochs: the retrain re-sizes its schedule to the time
    # left once its first epoch is timed (training.fit_within)
    train_seconds: float | None = None
    max_epochs: int | None = None
    # the test pass after it, estimated (with the margin): the retrain keeps them, scaled as its epochs
    # speed up or slow down (a machine that slows down during a long retrain slows its test too)
    test_seconds: float = 0.0

    @property
    def time_limit(self) -> float | None:
        """The seconds the retrain's training and test pass may take."""
        return None if self.train_seconds is None else self.train_seconds + self.test_seconds

    @property
    def length(self) -> str:
        if self.steps is None or not self.steps_per_epoch:
            return f"{self.epochs} epochs"
        return f"{self.steps / self.steps_per_epoch:.2f} epochs ({self.steps} steps)"


def _train_setting(trial: FrozenTrial, name: str) -> object:
    """A setting of the trial's training config (None when it recorded none)."""
    return ((trial.user_attrs.get("config") or {}).get("train") or {}).get(name)


def _batch_size(trial: FrozenTrial) -> int | None:
    batch = _train_setting(trial, "batch_size")
    return int(batch) if batch else None


def trained_images(trial: FrozenTrial, images: int) -> int:
    """Images an epoch of `images` trains on with this trial's batch size (training drops the last
    partial batch: see training.steps_per_epoch)."""
    batch = _batch_size(trial)
    return images_per_epoch(images, batch) if batch else images


def seconds_per_image(trial: FrozenTrial, search_train_images: int) -> float | None:
    """Training seconds per image of this trial, from its steady-state epochs (the first one also traces
    the graph); None when the trial recorded no epoch."""
    train = trial.user_attrs.get("train_seconds") or []
    steady = train[1:] or train
    if not steady or search_train_images <= 0:
        return None
    return statistics.median(steady) / trained_images(trial, search_train_images)


def seconds_per_view(trial: FrozenTrial, search_val_images: int) -> float | None:
    """Evaluation seconds per image and view of this trial: its steady epochs' validation passes (an
    epoch's time past its training steps) over the validation images; None without a steady epoch."""
    epochs, train = trial.user_attrs.get("epoch_seconds") or [], trial.user_attrs.get("train_seconds") or []
    passes = [e - t for e, t in zip(epochs, train)][1:]  # the first one also traces the evaluation step
    typical = statistics.median(passes) if passes else 0.0
    if typical <= 0 or search_val_images <= 0:
        return None  # no validation pass was timed
    return typical / search_val_images


def choose_retrain(
    trials: Sequence[FrozenTrial], seconds: float, retrain_images: int, search_train_images: int,
    test_images: int = 0, top: int = TOP_CANDIDATES, slack: float | None = None, search_val_images: int = 0,
) -> RetrainChoice:
    """Which trial to retrain, and for how many epochs, so the retrain and test fit in `seconds`.

    The best trial is taken if the time allows at least the epochs it was scored with; otherwise the
    next best of the `top` that does; otherwise, of those, the one that gets the most epochs (the
    fastest, for one epoch, when none fits one). More epochs
    than MAX_EPOCH_MULTIPLE x its search epochs are not planned (the schedule's gains flatten out).

    `slack`: the seconds the plan may leave unused. When whole epochs would leave more, the schedule is
    sized in steps to the time left (`RetrainChoice.steps`: its last epoch, or its only one, is cut
    short). None plans whole epochs only. `search_val_images`: the search's validation images, whose
    passes time the test pass (`_estimate`).
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and accuracy(t) is not None
                and not math.isnan(accuracy(t))]
    if not complete:
        raise UserError("the search finished no trial within its share of the budget: give a larger --budget "
                        "or a larger --search-share")
    ranked = sorted(complete, key=accuracy, reverse=True)[:top]
    options = [_Option(rank, t, *estimate) for rank, t in enumerate(ranked)
               for estimate in [_estimate(t, seconds, retrain_images, search_train_images, test_images,
                                          search_val_images=search_val_images)]
               if estimate is not None]
    if not options:
        raise UserError("no finished trial recorded its epoch times")
    fits = [o for o in options if o.epochs >= o.searched]
    if fits:
        o = fits[0]
        why = "the best trial" if o.rank == 0 else (
            f"rank {o.rank + 1}: the better ones get fewer epochs than they were searched with")
    elif max(o.epochs for o in options) == 0:  # not one epoch fits: the fastest trial, one (or what fits of it)
        o = min(options, key=lambda o: o.epoch_seconds)
        why = "less than one epoch of any candidate is left: the fastest"
    else:
        o = max(options, key=lambda o: (o.epochs, -o.rank))
        why = "the budget left is short: the trial that gets the most epochs"
    return _fill(RetrainChoice(o.trial.number, max(1, o.epochs), o.epoch_seconds, float(accuracy(o.trial)), why,
                               test_seconds=o.test),
                 o.trial, o.left, retrain_images, slack, MAX_EPOCH_MULTIPLE * o.searched)


class _Option(NamedTuple):
    """A candidate retrain: the trial's rank, the trial, and `_estimate`'s figures for it."""

    rank: int
    trial: FrozenTrial
    epochs: int
    epoch_seconds: float
    searched: int
    left: float
    test: float


def _estimate(t: FrozenTrial, seconds: float, retrain_images: int, search_train_images: int,
              test_images: int, searched_epochs: int | None = None,
              search_val_images: int = 0) -> tuple[int, float, int, float, float] | None:
    """For retraining trial `t` in `seconds`: the whole epochs that fit (at most MAX_EPOCH_MULTIPLE x its
    search epochs), the estimated seconds of one, its search epochs, the seconds left for training once
    the test pass is paid for, and the test pass's (timed by the trial's validation passes over
    `search_val_images`, when it recorded them: `seconds_per_view`); None if it recorded no epoch time."""
    per_image = seconds_per_image(t, search_train_images)
    if per_image is None:
        return None
    epoch = per_image * trained_images(t, retrain_images) * EPOCH_MARGIN
    # the test pass: the trial's own validation passes per image, for each test-time view (with the
    # margin); without a steady epoch, a third of a training step per image (right on one machine at 2 h,
    # 75 s for 76; twice the 3.2 min measured on another, where evaluation took 0.15 of a training step)
    view = seconds_per_view(t, search_val_images)
    view = per_image / 3 if view is None else view * EPOCH_MARGIN
    test = view * test_images * TTA_VIEWS[matching_tta(_train_setting(t, "augment") or "none")]
    affordable = int(max(0.0, seconds - test) // epoch)
    searched = searched_epochs or len(t.user_attrs.get("train_seconds") or []) or 1
    return min(affordable, MAX_EPOCH_MULTIPLE * searched), epoch, searched, seconds - test, test


def retrain_plan_of(trial: FrozenTrial, seconds: float, retrain_images: int, search_train_images: int,
                    test_images: int = 0, slack: float | None = None, reason: str = "",
                    searched_epochs: int | None = None, search_val_images: int = 0) -> RetrainChoice:
    """The retrain of this one trial that fits in `seconds` (at least part of one epoch).
    `searched_epochs`: the epochs the cap on the retrain's length counts from (default: the trial's)."""
    estimate = _estimate(trial, seconds, retrain_images, search_train_images, test_images, searched_epochs,
                         search_val_images)
    if estimate is None:
        raise UserError(f"trial {trial.number} recorded no epoch time")
    epochs, epoch, searched, left, test = estimate
    value = accuracy(trial) if trial.values else trial.user_attrs.get("val_accuracy")
    choice = RetrainChoice(trial.number, max(1, epochs), epoch, float("nan") if value is None else float(value),
                           reason, test_seconds=test)
    return _fill(choice, trial, left, retrain_images, slack, MAX_EPOCH_MULTIPLE * searched)


def _fill(choice: RetrainChoice, trial: FrozenTrial, seconds: float, retrain_images: int, slack: float | None,
          cap: int) -> RetrainChoice:
    """`choice` with its schedule sized in steps to `seconds` when whole epochs leave more than `slack`
    unused (and the trial's batch size is known)."""
    choice = dataclasses.replace(choice, train_seconds=max(0.0, seconds), max_epochs=cap)
    batch = _batch_size(trial)
    if slack is None or batch is None or choice.epochs >= cap:
        return choice
    epochs = max(0.0, seconds) / choice.epoch_seconds  # affordable, fractional
    whole = math.floor(epochs)
    if whole >= 1 and (epochs - whole) * choice.epoch_seconds <= slack:
        return choice
    per_epoch = steps_per_epoch(retrain_images, batch)
    steps = math.floor(min(epochs, cap) * per_epoch + 1e-6)
    if steps < 1:  # a whole epoch would run past the budget by as long as it takes
        raise UserError(f"not one training step of trial {trial.number} fits in the {max(0.0, seconds) / 60:.1f} min "
                        f"left (an epoch of it on {retrain_images} images takes ~{choice.epoch_seconds / 60:.1f} min): "
                        f"give a larger --budget (the study is saved: `cifar-automl retrain` trains any of its trials)")
    if steps == whole * per_epoch:
        return choice
    return dataclasses.replace(choice, epochs=math.ceil(steps / per_epoch), steps=steps, steps_per_epoch=per_epoch)


def trial_seconds(trial: FrozenTrial, epochs: int) -> float:
    """The wall seconds of this trial trained for all `epochs` unpruned: what it took, or, if it was
    stopped early, its first epoch (which also builds and traces the model) and its steady epochs'
    median for the rest (0 if it recorded no epoch); for a trial stopped by its cost cap, the
    projection that stopped it."""
    if trial.user_attrs.get("pruned_reason") == COST_CAP and trial.user_attrs.get("projected_seconds"):
        return float(trial.user_attrs["projected_seconds"])
    return projected_seconds(trial.user_attrs.get("epoch_seconds") or [], epochs)


def first_trial_cap(plan: BudgetPlan, sized: bool = True) -> float:
    """The most seconds a first trial may take unpruned and still leave room for a search: `size_search`
    runs none when a sized search's share (the most it may take) holds fewer than MIN_SEARCH_TRIALS
    trials like it, or when an explicit --search-share (`sized` False) cannot hold the first trial
    itself. A slower first trial stops once TIMED_EPOCHS epochs show it, as --search-share 0's two
    timing epochs do, so that a budget with no room for a search costs no more than no search."""
    return plan.search / MIN_SEARCH_TRIALS if sized else plan.search


def size_search(plan: BudgetPlan, cost: float, sized: bool, what: str) -> tuple[BudgetPlan | None, str | None]:
    """Once the first trial (`what`) is timed (`cost`: its seconds unpruned), the plan the search goes on
    under, or None when no search pays (the first trial is retrained), and what to say about it (None:
    nothing new). A search needs MIN_SEARCH_TRIALS trials like the first to pay for itself. `sized` (no
    --search-share, after a known-good first trial): it gets just that long, if that costs the retrain
    less than KNOWN_GOOD_SEARCH_GAIN (`plan` holds the most it may take). Otherwise the share was asked
    for (--search-share) and stands: a share that holds fewer trials than that is searched with a
    warning, one that cannot hold the first trial is not searched."""
    held = plan.search / cost if cost else math.inf
    if sized:
        needed = MIN_SEARCH_TRIALS * cost / (plan.search + plan.retrain)  # the share such a search takes
        lead = (f"{MIN_SEARCH_TRIALS} trials like the first, {what} ({cost / 60:.1f} min each), take {needed:.0%} "
                f"of the budget and cost the retrain about {retrain_cost(needed):.1%} more test error")
        if needed >= 1:
            return None, (f"{MIN_SEARCH_TRIALS} trials like the first, {what} ({cost / 60:.1f} min each), take more "
                          f"than the whole budget ({needed:.0%} of it): no search, the rest of the budget goes to "
                          f"retraining {what}")
        if held < MIN_SEARCH_TRIALS:
            return None, (f"{lead}, more than the {KNOWN_GOOD_SEARCH_GAIN:.1%} a search around a known-good trial "
                          f"bought when measured: no search, the rest of the budget goes to retraining {what}")
        searched = plan_budget(plan.total, needed)
        return searched, (f"{lead}, less than the {KNOWN_GOOD_SEARCH_GAIN:.1%} a search around a known-good trial "
                          f"bought when measured: the search runs {searched.search / 60:.1f} min")
    if held < 1:
        return None, (f"the search share ({plan.search / 60:.1f} min) cannot hold one trial like the first, {what} "
                      f"({cost / 60:.1f} min unpruned): no search, the rest of the budget goes to retraining {what}")
    if held < MIN_SEARCH_TRIALS:
        return plan, (f"warning: the search share ({plan.search / 60:.1f} min) holds about {held:.1f} trials like "
                      f"the first, {what} ({cost / 60:.1f} min each), fewer than the {MIN_SEARCH_TRIALS} a search "
                      f"needs to pay for itself when measured; searching anyway, as --search-share asks (without "
                      f"it, auto decides)")
    return plan, None


def first_trial(study: optuna.Study, *, usable: bool = False) -> FrozenTrial | None:
    """The trial a new study queued first (`warmstart.queue_first`: a `--warm-start` source's best, or
    the space's defaults), or None if the study queued none. `usable`: the first queued trial that
    trained (`_usable`): the one queued after the first when the first failed. A trial that was queued
    again (Ctrl-C cut it short, or its worker went silent) is not one: its retry, which carries its
    label, stands for it."""
    trials = study.get_trials(deepcopy=False)
    retried = {repeats(t) for t in trials}
    return next((t for t in trials if "warm_start" in t.user_attrs and t.number not in retried
                 and (not usable or _usable(t))), None)


def _what(trial: FrozenTrial) -> str:
    """What a queued trial runs, in words: "the space's defaults", or the warm start it came from."""
    label = trial.user_attrs["warm_start"]
    return "the space's defaults" if label == "space defaults" else f"the warm start {label}"


def _usable(trial: FrozenTrial | None) -> bool:
    """A first trial that trained (complete, or pruned after recording epochs)."""
    return (trial is not None and trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
            and bool(trial.user_attrs.get("train_seconds")))


def _ended_early(search: SearchOutcome) -> bool:
    """Interrupted, or stopped by failures: `auto` does nothing more."""
    return search.interrupted or bool(search.stopped_reason and search.stopped_reason != TIMEOUT_REACHED)


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
    search_share: float | None = None,
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
    it is spent); the first trial (the --warm-start source's best, or the space's defaults) runs alone
    first, and `size_search` decides on it: the search stops there when the share cannot hold
    MIN_SEARCH_TRIALS trials like it, or an explicit `search_share` not even that one (that trial is
    then retrained with all the time left). With
    `search_share` None after such a first trial, the share is sized on it: MIN_SEARCH_TRIALS trials'
    worth, if that is at most `default_search_share`; from scratch, SEARCH_SHARE. `on_search_end` sees
    the search's outcome.
    If the search was interrupted or stopped early (failures), nothing more is done:
    `AutoOutcome.result` is None. `say` receives the plan and the retrain choice as lines of text.
    """
    start = time.time()
    if settings.timeout is not None:
        raise UserError("auto plans the search time from --budget and --search-share: leave out --timeout")
    queues_first = runs_known_first(settings)
    sized = search_share is None and queues_first  # the search is sized on the first trial, at most this share
    plan = plan_budget(budget, default_search_share(queues_first) if search_share is None else search_share)
    if not plan.search and not queues_first:
        raise UserError(f"--search-share 0 retrains the space's defaults (or a --warm-start's best), and space "
                        f"'{settings.space}' has none")
    what_first = (f"the first of --warm-start {settings.warm_start}" if settings.warm_start
                  else "the space's defaults")
    if sized:
        say(f"budget {plan.total / 60:.0f} min: {what_first} run first; a search of {MIN_SEARCH_TRIALS} trials like "
            f"it follows if they take at most {plan.share:.0%} of the budget, the share a search around a known-good "
            f"trial was measured to pay back (--search-share sets one); then the retrain and test, "
            f"{plan.reserve / 60:.1f} min kept for data, evaluation and report")
    else:
        say(plan.describe(what_first))
    searching = dataclasses.replace(settings, timeout=plan.search, prune_at_timeout=True)
    known = None  # the first trial (the space's defaults or a warm start), when the share cannot pay for a search
    if not plan.search:  # no search: two epochs of the first trial (a study of 2-epoch trials) time it, unpruned
        # (resumed after Ctrl-C, its retry would otherwise meet the cut original's score in Hyperband's rung)
        search = run_search(dataclasses.replace(settings, trials=1, epochs=NO_SEARCH_EPOCHS, pruner="none"),
                            reporter=reporter)
        known = first_trial(search.study, usable=True)  # the one queued after the first when the first failed
        if not _ended_early(search) and known is None:
            first = first_trial(search.study)
            if first is None:
                raise UserError(f"study '{search.study.study_name}' queued no first trial (it holds trials already, "
                                "or the --warm-start source gave none): pass a new --study-name")
            reason = first.user_attrs.get("fail_reason") or first.user_attrs.get("pruned_reason")
            raise SearchError(f"{_what(first)} did not train: {reason or first.state.name.lower()}")
    elif queues_first:
        # the first trial (the --warm-start source's best, or the space's defaults) tells whether the share
        # holds a search worth running
        search = run_search(dataclasses.replace(searching, trials=1, cost_cap=first_trial_cap(plan, sized)),
                            reporter=reporter)
        first = first_trial(search.study)
        if first is not None and first.state == TrialState.FAIL:
            say(f"{_what(first)} failed ({first.user_attrs.get('fail_reason')}): the search goes on without it")
        if first is None and sized and not _ended_early(search):  # the --warm-start source queued nothing
            plan = plan_budget(budget, SEARCH_SHARE)
            say(f"--warm-start {settings.warm_start} queued nothing this space can run: a search from scratch, "
                f"{plan.share:.0%} of the budget")
        timed = first_trial(search.study, usable=True)  # the one queued after it, when the first failed
        if not _ended_early(search) and timed is not None:
            searched, message = size_search(plan, trial_seconds(timed, settings.epochs), sized, _what(timed))
            if message:
                say(message)
            if searched is None:
                known = timed
            else:
                plan = searched
        if known is None and not _ended_early(search) and settings.trials > 1:
            left = plan.search - (time.time() - start)
            if left > 0:
                search = run_search(dataclasses.replace(searching, timeout=left), reporter=reporter)
    else:
        search = run_search(searching, reporter=reporter)
    outcome = AutoOutcome(plan, search)
    if on_search_end is not None:
        on_search_end(search)
    if _ended_early(search):
        return outcome
    study = search.study
    rs = RetrainSettings(study_name=study.study_name, storage=settings.storage, studies_dir=settings.studies_dir,
                         seed=settings.seed, cache_dir=settings.cache_dir, overwrite=overwrite, progress=progress,
                         mixed_precision=settings.mixed_precision)
    splits, ss = load_study_data(study, rs)
    left = plan.seconds_left(start)
    sizes = dict(retrain_images=len(splits.x_train) + len(splits.x_val), search_train_images=search.data["n_train"],
                 search_val_images=search.data["n_val"], test_images=len(splits.y_test),
                 slack=FILL_SHARE * plan.total)
    if known is not None:
        choice = retrain_plan_of(known, left, reason=f"{_what(known)}: no search",
                                 searched_epochs=settings.epochs, **sizes)
    else:
        choice = choose_retrain(study_trials(study), left, **sizes)
    trial = study.get_trials(deepcopy=False)[choice.trial]
    out = retrain_dir(settings.studies_dir, study.study_name, choice.trial)
    if out.exists() and not overwrite:
        again = "" if choice.steps else (f", or run cifar-automl retrain --study-name {study.study_name} --trial "
                                         f"{choice.trial} --epochs {choice.epochs} --overwrite")
        raise UserError(f"{out} already exists (the search is saved): pass --overwrite{again}")
    tta = matching_tta(trial.user_attrs["config"]["train"]["augment"])
    resized = (choice.steps / choice.steps_per_epoch if choice.steps else choice.epochs) > 1  # fit.resizable
    say(f"retrain trial {choice.trial} (val {choice.val_accuracy:.4f}, {choice.reason}) for {choice.length} "
        f"{'(re-sized to the time left as its epochs are timed) ' if resized else ''}"
        f"of ~{choice.epoch_seconds / 60:.1f} min on {len(splits.x_train) + len(splits.x_val)} images"
        f"{'' if tta == 'none' else f', {tta} TTA'}; {left / 60:.0f} min left")
    rs = dataclasses.replace(rs, trial=choice.trial, epochs=choice.epochs, steps=choice.steps, tta=tta,
                             time_limit=choice.time_limit, max_epochs=choice.max_epochs,
                             test_seconds=choice.test_seconds)
    outcome.result = retrain_trial(study, trial, splits, ss, rs)
    trained = outcome.result.metrics  # the length trained: the schedule was re-sized to the time left
    per_epoch = steps_per_epoch(len(splits.x_train) + len(splits.x_val), _batch_size(trial) or 1)
    outcome.choice = dataclasses.replace(
        choice, epochs=trained["epochs"], steps_per_epoch=per_epoch,
        steps=None if trained["schedule_steps"] == trained["epochs"] * per_epoch else trained["schedule_steps"])
    outcome.report = write_report(study.study_name, storage=settings.storage, studies_dir=settings.studies_dir)
    outcome.seconds = time.time() - start
    return outcome
