"""`run_search(settings)`: create or resume a study and run trials until it holds `settings.trials`
finished (complete or pruned) trials, so a rerun after a crash or Ctrl-C runs only the missing ones.

Trials run in worker processes (`workers.py`), or in this process with `trials_per_process=0`
(tests, debugging); either way each runs `loop.trial_loop`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import signal
import threading
import time
from typing import Any, Callable

import numpy as np

from ..data import Splits, load_dataset, make_splits
from ..runtime import configure_devices, on_signal
from ..study import (
    checkpoint_sqlite,
    count_finished,
    default_storage_url,
    open_storage,
    open_study,
)
from .liveness import fail_stale
from .loop import claim_lock, trial_loop
from .objective import Objective
from .objectives import Goal
from .progress import ReporterEvents, SearchReporter, header
from .settings import DEFAULT_MAX_IMAGES, SearchOutcome, SearchSettings
from .space import SearchSpace, load_space
from .strategies import make_pruner, make_sampler
from .warmstart import queue_first, requeue_interrupted
from .workers import run_in_workers


def study_identity(space: SearchSpace, splits: Splits, epochs: int, seed: int) -> dict[str, Any]:
    """What makes trials comparable: a study refuses to mix trials that differ in any of these (the
    data's fingerprint is a hash of the training and validation images and labels the trials see:
    another seed, subset or data set gives another one)."""
    info = splits.info
    return {
        "space": space.name,
        "space_fingerprint": space.fingerprint,
        "dataset": info["dataset"],
        "image_shape": list(info["image_shape"]),
        "n_train": info["n_train"],
        "n_val": info["n_val"],
        "epochs": epochs,
        "seed": seed,
        "data_fingerprint": data_fingerprint(splits),
    }


def data_fingerprint(splits: Splits) -> str:
    digest = hashlib.sha256()
    for array in (splits.x_train, splits.y_train, splits.x_val, splits.y_val):
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()[:16]


def prepare(settings: SearchSettings) -> tuple[SearchSpace, Splits]:
    """Validate settings, load the space and the data (no storage touched yet)."""
    settings.validate()
    space = load_space(settings.space)
    ds = load_dataset(
        settings.dataset, data_dir=settings.data_dir, image_size=settings.image_size,
        cache_dir=settings.cache_dir,
    )
    splits = make_splits(
        ds, val_fraction=settings.val_fraction, subset=settings.subset, seed=settings.seed,
        test_fraction=settings.test_fraction, max_images=DEFAULT_MAX_IMAGES,
    )
    return space, splits


def run_search(
    settings: SearchSettings,
    *,
    prepared: tuple[SearchSpace, Splits] | None = None,
    reporter: SearchReporter | None = None,
) -> SearchOutcome:
    """Create or resume the study and run trials until it holds `settings.trials` finished trials.

    Trials run in a worker process that is replaced every `settings.trials_per_process` trials:
    TensorFlow keeps some memory of every model it trained (its graph caches are not released by
    `keras.backend.clear_session()`), so a long search in one process grows without bound. A worker
    that dies (crash, out of memory, kill -9) costs only its running trial, which is marked failed.
    `trials_per_process=0` runs trials in this process (tests, debugging).

    Example::

        outcome = run_search(SearchSettings(space="residual", trials=30, dataset="fashion_mnist"))
        print(outcome.study.best_trial.user_attrs["config"])
    """
    space, splits = prepared or prepare(settings)
    study_name = settings.study_name or space.name
    storage_url = settings.storage or default_storage_url(settings.studies_dir, study_name)
    storage = open_storage(storage_url)
    goal = settings.goal
    identity = study_identity(space, splits, settings.epochs, settings.seed)
    if goal != Goal():  # (a study of accuracy alone keeps the identity it always had)
        identity["goal"] = dataclasses.asdict(goal)
    sampler = make_sampler(settings.sampler, settings.seed)
    pruner = make_pruner(settings.pruner, settings.epochs, goal)
    study = open_study(storage, storage_url, study_name, identity, sampler, pruner, goal.directions, goal.metric_names)
    study.set_user_attr("data", splits.info)
    study.set_user_attr("search_settings", settings.data_settings())
    study.set_user_attr("space_definition", space.to_dict())

    outcome = SearchOutcome(study=study, storage_url=storage_url, finished=count_finished(study), data=splits.info)
    if settings.trials_per_process == 0:
        outcome.notes.append(configure_devices(settings.mixed_precision))
    stale = fail_stale(study, settings.heartbeat)
    if stale:
        outcome.notes.append(f"trial(s) {', '.join(map(str, stale))} were left RUNNING by a worker that is gone: "
                             "failed and queued again")
    requeued = requeue_interrupted(study)
    if requeued:
        outcome.notes.append(f"re-running {requeued} trial(s) interrupted last time")
    outcome.notes.extend(queue_first(study, space, settings))
    reporter = reporter or SearchReporter(quiet=True)
    start = time.monotonic()
    deadline = time.time() + settings.timeout if settings.timeout else None
    reporter.start(study, settings.trials, outcome.finished, outcome.notes, header(space, splits))
    forward = ReporterEvents(study, reporter)
    try:
        with on_signal(signal.SIGTERM, _interrupt):  # SIGTERM (pre-emption, `kill`) is handled as Ctrl-C
            if settings.trials_per_process == 0:
                stop = threading.Event()
                objective = Objective(space, splits, settings.epochs, settings.seed, stop_requested=stop.is_set,
                                      deadline=deadline if settings.prune_at_timeout else None, goal=goal,
                                      cost_cap=settings.cost_cap)
                with _sigint_between_batches(stop, lambda: objective.training):
                    outcome.ran, outcome.stopped_reason = trial_loop(
                        study, objective, settings.trials, deadline, None, forward, heartbeat=settings.heartbeat,
                        lock=claim_lock(storage_url),
                    )
            else:
                run_in_workers(settings, space, splits, study, storage_url, deadline, forward, outcome)
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        reporter.close()
        checkpoint_sqlite(storage)
    outcome.finished = count_finished(study)
    outcome.seconds = time.monotonic() - start
    return outcome


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _sigint_between_batches(stop: threading.Event, training: Callable[[], bool]) -> on_signal:
    """In-process trials: Ctrl-C while Keras trains only sets `stop`, which the next batch end turns
    into KeyboardInterrupt (see objective._interrupt_if); at any other moment it interrupts at once."""

    def handler(signum: int, frame: Any) -> None:
        if training() and not stop.is_set():
            stop.set()
        else:
            raise KeyboardInterrupt

    return on_signal(signal.SIGINT, handler)
