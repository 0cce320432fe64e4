"""The search: an Optuna study whose trials build, train and score Keras models.

`run_search(settings)` creates or resumes a study (SQLite under `studies/` by default, any Optuna storage
URL otherwise) and runs trials until the study holds `settings.trials` finished (complete or pruned)
trials, so a rerun after a crash or Ctrl-C runs only the missing ones. Each trial reports validation
accuracy per epoch (pruning and optuna-dashboard's learning curves) and stores its full config and
measurements as user attributes.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import signal
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna
from optuna.trial import TrialState

from . import __version__
from .config import SURPLUS, TrialConfig
from .data import Splits, channel_stats, load_dataset, make_splits
from .errors import StudyError, UserError
from .spaces import SearchSpace, load_space

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SAMPLERS = ("tpe", "random", "cmaes", "qmc")
PRUNERS = ("hyperband", "asha", "median", "none")
OBJECTIVE = "val_accuracy"
TIMEOUT_REACHED = "--timeout reached"  # SearchOutcome.stopped_reason when --timeout ended the search
MAX_CONSECUTIVE_FAILURES = 5  # stop a search whose trials keep failing instead of burning the budget
WAIT_POLL_SECONDS = 5.0


@dataclass(frozen=True)
class SearchSettings:
    """Everything `cifar-automl search` accepts. Defaults suit a 2-core CPU; see README for a GPU."""

    space: str = "all"
    dataset: str = "cifar10"
    data_dir: str | None = None
    image_size: int | None = None
    subset: float | int | None = 10000  # images for train+val: count, or fraction of the training pool
    val_fraction: float = 0.2  # of the subset, stratified; 2,000 images score a trial to about +-1%
    test_fraction: float = 0.2  # carved (fixed seed) when the data set has no official test split
    trials: int = 20  # finished (complete + pruned) trials the study must hold
    epochs: int = 10  # maximum epochs per trial (the pruner's maximum resource)
    timeout: float | None = None  # seconds for this run; stops after the running trial
    prune_at_timeout: bool = False  # with timeout: the running trial is also pruned at its next epoch end
    seed: int = 0
    sampler: str = "tpe"
    pruner: str = "hyperband"
    study_name: str | None = None  # default: the space's name
    storage: str | None = None  # default: sqlite:///<studies_dir>/<study_name>.db
    studies_dir: str = "studies"
    cache_dir: str | None = None
    mixed_precision: bool = False
    trials_per_process: int = 10  # worker process replaced after this many trials (0: run in-process)
    heartbeat: int = 30  # seconds; a database trial silent for 3 heartbeats is failed and re-run
    workers: int = 1  # worker processes training at once on this machine
    warm_start: str | None = None  # "baselines" or a study name: its configurations are tried first


@dataclass
class SearchOutcome:
    study: optuna.Study
    storage_url: str
    finished: int
    interrupted: bool = False
    stopped_reason: str | None = None
    ran: int = 0  # trials started by this run
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- storage and study


def default_storage_url(studies_dir: str | os.PathLike, study_name: str) -> str:
    return f"sqlite:///{Path(studies_dir) / f'{study_name}.db'}"


def open_storage(url: str, heartbeat: int = 30) -> optuna.storages.BaseStorage:
    """Open an Optuna storage, with heartbeats on databases so trials of dead workers get retried.

    `*.log` paths or `journal:PATH` give Optuna's journal file storage (many processes, no server).
    """
    from sqlalchemy.exc import SQLAlchemyError

    if url.startswith("journal:") or url.endswith((".log", ".jsonl")):
        path = Path(url.removeprefix("journal:"))
        if not path.parent.is_dir():
            raise StudyError(f"cannot open storage {url}: directory {path.parent} does not exist")
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    sqlite = url.startswith("sqlite:///")
    if sqlite:
        path = Path(url.removeprefix("sqlite:///"))
        _check_writable_dir(path.parent)
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise StudyError(f"cannot open storage {url}: {path} is not readable and writable")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                # SQLite: wait for a lock held by another process (worker, dashboard) instead of failing
                engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else None,
                heartbeat_interval=heartbeat,  # seconds between a running trial's heartbeats
                grace_period=3 * heartbeat,  # a RUNNING trial silent this long is failed and re-queued
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
        if sqlite:  # write-ahead log: readers (dashboard, report) never block the workers' writes
            from sqlalchemy import text

            with storage.engine.connect() as conn:
                conn.execute(text("PRAGMA journal_mode=WAL"))
        return storage
    except (SQLAlchemyError, ValueError, ImportError, RuntimeError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise StudyError(f"cannot open storage {_redact(url)}: {reason}") from None


def checkpoint_sqlite(storage: optuna.storages.BaseStorage) -> None:
    """SQLite: copy the write-ahead log into the database file, so that after a run the .db file alone
    holds the whole study (copy or send it without its -wal file) and later readers find nothing left
    to copy into it. PASSIVE: never waits for a reader such as the dashboard."""
    if isinstance(storage, optuna.storages.RDBStorage) and storage.engine.dialect.name == "sqlite":
        from sqlalchemy import text

        with storage.engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))


def _check_writable_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StudyError(f"cannot create studies directory {directory}: {e.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StudyError(f"studies directory {directory} is not writable: pass --studies-dir or --storage")


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # multivariate + group: models the joint distribution and handles conditional parameters
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":  # CMA-ES for numbers, TPE for the categorical choices it cannot model
        return optuna.samplers.CmaEsSampler(
            seed=seed, independent_sampler=optuna.samplers.TPESampler(seed=seed),
            warn_independent_sampling=False,
        )
    if name == "qmc":
        return optuna.samplers.QMCSampler(
            seed=seed, scramble=True, independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
        )
    raise UserError(f"unknown sampler '{name}' (choose from {', '.join(SAMPLERS)})")


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"unknown pruner '{name}' (choose from {', '.join(PRUNERS)})")


def study_identity(space: SearchSpace, splits: Splits, epochs: int) -> dict[str, Any]:
    """What makes trials comparable: a study refuses to mix trials that differ in any of these."""
    info = splits.info
    return {
        "space": space.name,
        "space_fingerprint": space.fingerprint,
        "dataset": info["dataset"],
        "image_shape": list(info["image_shape"]),
        "n_train": info["n_train"],
        "n_val": info["n_val"],
        "epochs": epochs,
    }


def open_study(
    storage: optuna.storages.BaseStorage,
    storage_url: str,
    study_name: str,
    identity: dict[str, Any],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study:
    """Create the study, or load it after checking it was made for the same space, data and epochs."""
    try:
        existing = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        existing = None
    if existing is not None:
        if existing.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise StudyError(f"study '{study_name}' in {_redact(storage_url)} minimizes; it was not made by this tool")
        stored = existing.user_attrs.get("identity")
        if stored is None:
            raise StudyError(
                f"study '{study_name}' in {_redact(storage_url)} was not made by cifar-automl: pass another --study-name"
            )
        for key, value in identity.items():
            if stored.get(key) != value:
                flag = {"space": "--space", "space_fingerprint": "--space", "epochs": "--epochs"}.get(
                    key, "--dataset/--subset/--val-fraction"
                )
                raise StudyError(
                    f"study '{study_name}' was created with {key}={stored.get(key)!r}, not {value!r}: "
                    f"rerun with the same {flag}, or pass a new --study-name"
                )
        return existing
    study = optuna.create_study(
        study_name=study_name, storage=storage, sampler=sampler, pruner=pruner,
        direction="maximize", load_if_exists=True,
    )
    study.set_user_attr("identity", identity)
    study.set_user_attr("cifar_automl_version", __version__)
    return study


def data_settings(settings: SearchSettings) -> dict[str, Any]:
    """How to load the study's data again (retrain, report): stored with the study."""
    return {
        "dataset": settings.dataset,
        "data_dir": str(Path(settings.data_dir).resolve()) if settings.data_dir else None,
        "image_size": settings.image_size,
        "subset": settings.subset,
        "val_fraction": settings.val_fraction,
        "test_fraction": settings.test_fraction,
        "seed": settings.seed,
        "epochs": settings.epochs,
        "space": settings.space,
    }


def load_existing_study(
    study_name: str, storage: str | None = None, studies_dir: str | os.PathLike = "studies"
) -> tuple[optuna.Study, str]:
    """Open a study for reading (retrain, export, report); never creates one."""
    url = storage or default_storage_url(studies_dir, study_name)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise StudyError(f"no study database at {url.removeprefix('sqlite:///')}: run `cifar-automl search` first or pass --storage")
    opened = open_storage(url)
    try:
        return optuna.load_study(study_name=study_name, storage=opened), url
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(opened, include_best_trial=False)]
        raise StudyError(
            f"no study '{study_name}' in {_redact(url)} (studies there: {', '.join(names) or 'none'})"
        ) from None


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


# --------------------------------------------------------------------------- the objective


class Objective:
    """Trains one sampled model per trial; everything it measures goes into the trial's user attrs."""

    def __init__(
        self,
        space: SearchSpace,
        splits: Splits,
        epochs: int,
        seed: int,
        on_epoch: Callable[[int, int, dict], None] | None = None,
        on_start: Callable[[int], None] | None = None,
        stop_requested: Callable[[], bool] | None = None,
        deadline: float | None = None,
    ) -> None:
        self.space = space
        self.splits = splits
        self.epochs = epochs
        self.seed = seed
        self.on_epoch = on_epoch
        self.on_start = on_start
        self.stop_requested = stop_requested
        self.deadline = deadline  # running trials are pruned at the first epoch end past it
        self.training = False  # True while Keras is fitting (see _sigint_between_batches)
        self.last_number: int | None = None
        self.mean, self.std = channel_stats(splits.x_train)

    def __call__(self, trial: optuna.Trial) -> float:
        import keras
        import tensorflow as tf

        from .models import build_model, estimate_flops
        from .pipeline import images_per_epoch
        from .runtime import rss_mb
        from .train import EpochRecorder, fit

        self.last_number = trial.number
        if trial.user_attrs.get("fail_reason") is not None:  # a retry inherits its original's attrs
            trial.set_user_attr("fail_reason", None)
        if self.on_start is not None:
            self.on_start(trial.number)
        cfg = self.space.sample(trial, self.epochs)
        trial.set_user_attr("config", cfg.to_dict())
        trial.set_user_attr("cifar_automl_version", __version__)
        trial.set_user_attr("normalization", {"mean": self.mean, "std": self.std})
        trial.set_user_attr("rss_mb", round(rss_mb(), 1))  # of the process, as the trial starts
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        s = self.splits
        keras.utils.set_random_seed(self.seed + trial.number)
        recorder = EpochRecorder(images_per_epoch(len(s.x_train), cfg.train.batch_size))
        try:
            model = build_model(
                cfg.arch, s.x_train.shape[1:], len(s.class_names), mean=self.mean, std=self.std, sample=s.x_train
            )
            trial.set_user_attr("params", int(model.count_params()))
            trial.set_user_attr("flops", estimate_flops(model))
            callbacks: list[keras.callbacks.Callback] = [_pruning_callback(trial, self.epochs, self.deadline)]
            if self.stop_requested is not None:
                callbacks.append(keras.callbacks.LambdaCallback(
                    on_train_batch_end=_interrupt_if(self.stop_requested),
                    on_test_batch_end=_interrupt_if(self.stop_requested)))
            if self.on_epoch is not None:
                on_epoch, number = self.on_epoch, trial.number
                callbacks.append(keras.callbacks.LambdaCallback(
                    on_epoch_end=lambda epoch, logs: on_epoch(number, epoch + 1, logs or {})))
            self.training = True
            fit(
                model, s.x_train, s.y_train, cfg.train, validation=(s.x_val, s.y_val),
                callbacks=callbacks, recorder=recorder, seed=self.seed + trial.number,
            )
        except optuna.TrialPruned:
            _record(trial, recorder)
            raise
        except KeyboardInterrupt:
            _record(trial, recorder)
            trial.set_user_attr("fail_reason", "interrupted")
            raise
        except (tf.errors.ResourceExhaustedError, MemoryError) as e:
            _record(trial, recorder)
            trial.set_user_attr("fail_reason", f"out of memory: {str(e).splitlines()[0][:200]}")
            return float("nan")
        finally:
            self.training = False
            keras.backend.clear_session(free_memory=True)  # which collects garbage (once is enough)
        result = _record(trial, recorder)
        if result.nan_epoch is not None:
            trial.set_user_attr("fail_reason", f"loss became NaN at epoch {result.nan_epoch + 1}")
            return float("nan")  # Optuna marks the trial FAIL; the search goes on
        best, _ = result.best(OBJECTIVE)
        return best


def _interrupt_if(stop_requested: Callable[[], bool]) -> Callable[..., None]:
    """A batch-end hook that turns a stop request into KeyboardInterrupt, raised from Python between
    steps: a signal that interrupts TensorFlow inside its C code can surface as a SystemError."""

    def check(batch: int, logs: dict | None = None) -> None:
        if stop_requested():
            raise KeyboardInterrupt

    return check


def _pruning_callback(trial: optuna.Trial, epochs: int, deadline: float | None = None) -> Any:
    """optuna-integration's KerasPruningCallback, except that a trial which reached its last epoch is
    not pruned after the fact: its last value is reported and it completes. Past `deadline` (a time
    budget), a trial is pruned at its next epoch end whatever its value."""
    from optuna_integration.keras import KerasPruningCallback

    class PruneBeforeLastEpoch(KerasPruningCallback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch + 1 >= epochs:
                value = (logs or {}).get(OBJECTIVE)
                if value is not None:
                    trial.report(float(value), step=epoch)
                return
            super().on_epoch_end(epoch, logs)
            if deadline is not None and time.time() >= deadline:
                trial.set_user_attr("pruned_reason", "time budget")
                raise optuna.TrialPruned(f"time budget spent at epoch {epoch + 1}")

    return PruneBeforeLastEpoch(trial, OBJECTIVE)


def _record(trial: optuna.Trial, recorder: Any) -> Any:
    """Store the curves and timings of the epochs that ran as user attributes."""
    r = recorder.result
    trial.set_user_attr("history", {k: [round(v, 6) for v in vs] for k, vs in r.history.items()})
    trial.set_user_attr("epoch_seconds", [round(t, 3) for t in r.epoch_seconds])
    trial.set_user_attr("train_seconds", [round(t, 3) for t in r.train_seconds])
    trial.set_user_attr("epochs_run", r.epochs_run)
    trial.set_user_attr("images_per_second", round(r.images_per_second, 1))
    if r.epochs_run:
        best, epoch = r.best(OBJECTIVE)
        if not math.isnan(best):
            trial.set_user_attr("val_accuracy", best)
            trial.set_user_attr("best_epoch", epoch + 1)
            trial.set_user_attr("val_loss", r.history["val_loss"][epoch])
    return r


# --------------------------------------------------------------------------- the loop


def requeue_interrupted(study: optuna.Study) -> int:
    """Enqueue once more the parameters of trials that Ctrl-C (or SIGTERM) cut short."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    count = 0
    for t in trials:
        if (
            t.state == TrialState.FAIL
            and t.user_attrs.get("fail_reason") == "interrupted"
            and t.number not in retried
        ):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
            count += 1
    return count


def queue_defaults(study: optuna.Study, space: SearchSpace) -> bool:
    """Queue the space's defaults as a new study's first trial (as KerasTuner starts from its
    hyperparameters' defaults); a study that already has trials, or had them queued, is left alone."""
    done = study.user_attrs.get("warm_started", [])
    if "defaults" in done or study.get_trials(deepcopy=False):
        return False
    study.enqueue_trial(space.default_params(), user_attrs={"warm_start": "space defaults"})
    study.set_user_attr("warm_started", [*done, "defaults"])
    return True


def warm_start(study: optuna.Study, space: SearchSpace, settings: SearchSettings) -> list[str]:
    """Queue configurations to try first: the presets this space can express ("baselines"), or the
    five best complete trials of another study. Once per study and source (recorded in the study)."""
    source = settings.warm_start
    done = study.user_attrs.get("warm_started", [])
    if source in done:
        return []
    if source == "baselines":
        from .presets import PRESETS

        candidates = [(p.name, p.as_config()) for p in PRESETS.values() if p.as_config is not None]
    else:
        other, _ = load_existing_study(source, settings.storage, settings.studies_dir)
        best = sorted((t for t in other.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                       if "config" in t.user_attrs), key=lambda t: t.value, reverse=True)[:5]
        candidates = [(f"{source}#{t.number}", TrialConfig.from_dict(t.user_attrs["config"])) for t in best]
    queued = []
    for label, cfg in candidates:
        params = space.params_for(cfg)
        if params is not None:
            study.enqueue_trial(params, user_attrs={"warm_start": label})
            queued.append(label)
    study.set_user_attr("warm_started", [*done, source])
    return queued


def prepare(settings: SearchSettings) -> tuple[SearchSpace, Splits]:
    """Validate settings, load the space and the data (no storage touched yet)."""
    if settings.trials < 1:
        raise UserError(f"--trials must be at least 1, not {settings.trials}")
    if settings.epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {settings.epochs}")
    if settings.workers < 1:
        raise UserError(f"--workers must be at least 1, not {settings.workers}")
    if settings.workers > 1 and settings.trials_per_process == 0:
        raise UserError("--workers above 1 needs worker processes: leave --trials-per-process above 0")
    if settings.heartbeat < 1:
        raise UserError(f"--heartbeat must be at least 1 second, not {settings.heartbeat}")
    if settings.trials_per_process < 0:
        raise UserError(f"--trials-per-process must be 0 or more, not {settings.trials_per_process}")
    if settings.timeout is not None and settings.timeout <= 0:
        raise UserError(f"--timeout must be positive, not {settings.timeout}")
    if not 0 < settings.val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, not {settings.val_fraction}")
    if settings.sampler not in SAMPLERS:
        raise UserError(f"unknown sampler '{settings.sampler}' (choose from {', '.join(SAMPLERS)})")
    if settings.pruner not in PRUNERS:
        raise UserError(f"unknown pruner '{settings.pruner}' (choose from {', '.join(PRUNERS)})")
    space = load_space(settings.space)
    ds = load_dataset(
        settings.dataset, data_dir=settings.data_dir, image_size=settings.image_size,
        cache_dir=settings.cache_dir,
    )
    splits = make_splits(
        ds, val_fraction=settings.val_fraction, subset=settings.subset, seed=settings.seed,
        test_fraction=settings.test_fraction,
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
    """
    space, splits = prepared or prepare(settings)
    study_name = settings.study_name or space.name
    storage_url = settings.storage or default_storage_url(settings.studies_dir, study_name)
    storage = open_storage(storage_url, settings.heartbeat)
    identity = study_identity(space, splits, settings.epochs)
    sampler = make_sampler(settings.sampler, fresh_seed(settings.seed, storage, study_name))
    pruner = make_pruner(settings.pruner, settings.epochs)
    study = open_study(storage, storage_url, study_name, identity, sampler, pruner)
    study.set_user_attr("data", splits.info)
    study.set_user_attr("search_settings", data_settings(settings))
    study.set_user_attr("space_definition", space.to_dict())

    outcome = SearchOutcome(study=study, storage_url=storage_url, finished=count_finished(study))
    if settings.trials_per_process == 0:
        from .runtime import configure_devices

        outcome.notes.append(configure_devices(settings.mixed_precision))
    requeued = requeue_interrupted(study)
    if requeued:
        outcome.notes.append(f"re-running {requeued} trial(s) interrupted last time")
    if space.default_params() and queue_defaults(study, space):
        outcome.notes.append("the first trial runs the space's defaults")
    if settings.warm_start:
        queued = warm_start(study, space, settings)
        outcome.notes.append(f"warm start from {settings.warm_start}: {len(queued)} configuration(s) queued"
                             + (f" ({', '.join(queued)})" if queued else ""))
    reporter = reporter or SearchReporter(quiet=True)
    start = time.monotonic()
    deadline = time.time() + settings.timeout if settings.timeout else None
    reporter.start(study, settings.trials, outcome.finished, outcome.notes)
    with _sigterm_as_interrupt():
        try:
            if settings.trials_per_process == 0:
                stop = threading.Event()
                objective = Objective(space, splits, settings.epochs, settings.seed, stop_requested=stop.is_set,
                                      deadline=deadline if settings.prune_at_timeout else None)
                with _sigint_between_batches(stop, lambda: objective.training):
                    outcome.ran, outcome.stopped_reason = trial_loop(
                        study, objective, settings.trials, deadline, None, _ReporterEvents(study, reporter)
                    )
            else:
                _run_in_workers(settings, space, splits, study, storage_url, deadline, reporter, outcome)
        except KeyboardInterrupt:
            outcome.interrupted = True
    outcome.finished = count_finished(study)
    outcome.seconds = time.monotonic() - start
    checkpoint_sqlite(storage)
    reporter.close()
    return outcome


def fresh_seed(seed: int, storage: optuna.storages.BaseStorage, study_name: str) -> int:
    """Sampler seed for a run: offset by the trials already in the study, so a resumed study (or a new
    worker) does not replay the random start-up trials of the first run."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return seed
    return seed + len(storage.get_all_trials(study_id, deepcopy=False))


def consecutive_failures(study: optuna.Study) -> int:
    """Failed trials at the end of the study (interrupted and surplus ones do not count)."""
    count = 0
    for t in reversed(study.get_trials(deepcopy=False)):
        if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") not in ("interrupted", SURPLUS):
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


def mp_parent_alive() -> Callable[[], bool]:
    """In a worker process: a check that the process which started it is still there."""
    import multiprocessing as mp

    parent = mp.parent_process()
    return (lambda: True) if parent is None else parent.is_alive


class _ReporterEvents:
    """Feeds trial-loop events to a SearchReporter (in the process that owns the terminal)."""

    def __init__(self, study: optuna.Study, reporter: SearchReporter) -> None:
        self.study, self.reporter = study, reporter

    def __call__(self, event: tuple) -> None:
        if event[0] == "epoch":
            self.reporter.epoch(event[1], event[2], {OBJECTIVE: event[3]})
        elif event[0] == "trial":
            self.reporter.trial(self.study, self.study.get_trials(deepcopy=False)[event[1]])
        elif event[0] == "device":
            self.reporter.note(event[1])
        elif event[0] == "wait":
            self.reporter.note(f"waiting for {event[1]} trial(s) running in other workers (or left RUNNING by "
                               "a worker that died: those fail after the heartbeat grace period and re-run)")


def worker_main(
    settings: SearchSettings, space: SearchSpace, splits: Splits, study_name: str, storage_url: str,
    deadline: float | None, events: Any, stop: Any, go: Any,
) -> None:
    """Body of a worker process: up to `settings.trials_per_process` trials, events to the parent.

    The worker ignores SIGINT (see worker.run); the parent asks it to stop through `stop`, which the
    running trial checks after every batch. A standby worker gets ready (TensorFlow, storage, data)
    and then waits for `go`, so that it takes over without a pause from a worker that is running its
    last trial."""
    from .runtime import configure_devices

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(storage_url, settings.heartbeat)
    study = optuna.load_study(
        study_name=study_name, storage=storage,
        sampler=make_sampler(settings.sampler, fresh_seed(settings.seed, storage, study_name)),
        pruner=make_pruner(settings.pruner, settings.epochs),
    )
    events.put(("device", configure_devices(settings.mixed_precision)))
    objective = Objective(space, splits, settings.epochs, settings.seed, stop_requested=stop.is_set,
                          deadline=deadline if settings.prune_at_timeout else None)
    parent = mp_parent_alive()
    while not go.wait(0.5):
        if stop.is_set() or not parent():
            return
    try:
        ran, reason = trial_loop(study, objective, settings.trials, deadline, settings.trials_per_process,
                                 events.put, keep_going=lambda: parent() and not stop.is_set())
        events.put(("done", ran, reason))
    except KeyboardInterrupt:
        events.put(("interrupted",))


@dataclass
class _Slot:
    """A worker process seen from the parent: the trial it is running and how it ended. A standby
    slot's process is getting ready to replace a worker that runs its last trial."""

    process: Any
    go: Any  # an Event: set, the worker runs trials; a standby waits for it
    events: Any  # the reading end of the pipe the worker sends its events down
    started: int = 0  # trials it has started
    running: int | None = None
    stop_reason: str | None = None

    @property
    def standby(self) -> bool:
        return not self.go.is_set()


def _run_in_workers(
    settings: SearchSettings, space: SearchSpace, splits: Splits, study: optuna.Study, storage_url: str,
    deadline: float | None, reporter: SearchReporter, outcome: SearchOutcome,
) -> None:
    """Keep `settings.workers` worker processes busy until the study holds enough finished trials.

    Each worker runs up to `trials_per_process` trials and exits; a fresh one takes its place. It is
    started as a standby when the worker it replaces begins its last trial, so that starting Python
    and TensorFlow (5-7 s here) overlaps that trial instead of pausing the search. Each worker sends
    its events down a pipe of its own: a send is complete when it returns
    (nothing waits in a buffer when the worker exits), and a worker killed in the middle of one can
    break only its own pipe, not the others' (as with a queue's shared lock). The end of a pipe means
    its worker has exited and every event it sent has been read.
    """
    import multiprocessing as mp
    import pickle
    from multiprocessing.connection import wait as wait_for_events

    from . import worker as worker_module

    ctx = mp.get_context("spawn")  # never fork a process that has TensorFlow threads
    stop = ctx.Event()
    forward = _ReporterEvents(study, reporter)
    payload = pickle.dumps((settings, space, splits, study.study_name, storage_url, deadline))
    quiet_tf = logging_quiet()
    slots: dict[int, _Slot] = {}
    next_id = 0

    def needs_worker() -> bool:
        states = [t.state for t in study.get_trials(deepcopy=False)]
        finished = sum(states.count(st) for st in FINISHED)
        busy = sum(1 for slot in slots.values() if slot.running is not None)
        return finished < settings.trials and (
            states.count(TrialState.WAITING) > 0 or finished + busy < settings.trials
        )

    def active() -> list[_Slot]:
        return [slot for slot in slots.values() if not slot.standby]

    def spawn(ready: bool) -> None:
        nonlocal next_id
        go = ctx.Event()
        if ready:
            go.set()
        reader, writer = ctx.Pipe(duplex=False)
        process = ctx.Process(target=worker_module.run, name=f"cifar-automl-worker-{next_id}",
                              args=(payload, writer, stop, go, quiet_tf))
        process.start()
        writer.close()  # the worker holds the only writing end: when it exits, the pipe ends
        slots[next_id] = _Slot(process, go, reader)
        next_id += 1

    def retire_standbys() -> None:
        """Standby workers have run no trial and hold nothing: stop them at once, wherever they are."""
        for wid in [w for w, slot in slots.items() if slot.standby]:
            slot = slots.pop(wid)
            slot.process.terminate()
            slot.process.join()
            slot.events.close()

    def reap(wid: int) -> None:
        slot = slots.pop(wid)
        slot.process.join()
        slot.events.close()
        if slot.process.exitcode != 0:
            _fail_if_running(study, slot.running, f"worker process died (exit code {slot.process.exitcode})")
            if not slot.started:
                raise StudyError(f"a trial worker process failed to start (exit code {slot.process.exitcode})")
        if slot.stop_reason is not None:
            outcome.stopped_reason = slot.stop_reason

    # Ctrl-C / SIGTERM only set a flag that this loop checks: a KeyboardInterrupt raised at a random
    # moment can be swallowed (Python ignores exceptions raised inside weakref callbacks and __del__)
    requested = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        requested.set()

    def handle(slot: _Slot, event: tuple) -> None:
        if event[0] == "start":
            slot.running = event[1]
            slot.started += 1
            if (slot.started == settings.trials_per_process and needs_worker()
                    and sum(s.standby for s in slots.values()) < settings.workers):
                spawn(ready=False)  # to take over when this, its last trial, ends
        elif event[0] == "trial":
            slot.running = None
            outcome.ran += 1
        elif event[0] == "done":
            slot.stop_reason = event[2]
        elif event[0] == "interrupted":
            raise KeyboardInterrupt
        forward(event)

    with _on_signal(signal.SIGINT, request_stop), _on_signal(signal.SIGTERM, request_stop):
        try:
            while True:
                if requested.is_set():
                    raise KeyboardInterrupt
                if outcome.stopped_reason is None and deadline is not None and time.time() >= deadline:
                    outcome.stopped_reason = TIMEOUT_REACHED  # running trials finish; no new worker starts
                while outcome.stopped_reason is None and len(active()) < settings.workers and needs_worker():
                    standby = next((slot for slot in slots.values() if slot.standby), None)
                    if standby is not None:
                        standby.go.set()
                    else:
                        spawn(ready=True)
                if not active():
                    retire_standbys()  # the search ended before they were needed
                    return
                pipes = {slot.events: wid for wid, slot in slots.items()}
                for pipe in wait_for_events(list(pipes), timeout=0.5):
                    try:
                        event = pipe.recv()
                    except (EOFError, OSError):  # the worker has exited, and all it sent has been read
                        reap(pipes[pipe])
                        continue
                    handle(slots[pipes[pipe]], event)
        except KeyboardInterrupt:
            stop.set()  # running trials end at their next batch and are marked interrupted
            retire_standbys()
            for slot in slots.values():
                _stop(slot.process)
            for slot in slots.values():
                _fail_if_running(study, slot.running, "interrupted")
            raise


def logging_quiet() -> bool:
    """Whether workers should hide TensorFlow's start-up lines (the CLI's --debug shows them)."""
    return optuna.logging.get_verbosity() > optuna.logging.WARNING


def _stop(worker: Any) -> None:
    """Wait for a worker asked to stop to mark its trial and exit; kill it if it hangs."""
    worker.join(timeout=120)
    if worker.is_alive():
        worker.kill()
        worker.join()


def _fail_if_running(study: optuna.Study, number: int | None, reason: str) -> None:
    """Mark a trial that a dead worker left RUNNING as failed, with the reason; unless it was
    interrupted on purpose, queue it again with the same parameters, as Optuna's heartbeat retry does
    for workers on other machines (at most twice per original trial)."""
    if number is None:
        return
    trial = study.get_trials(deepcopy=False)[number]
    if trial.state != TrialState.RUNNING:
        return
    try:
        study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # failed (and re-queued) meanwhile by another worker's heartbeat check
    if reason != "interrupted":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
            retry(study, study._storage.get_trial(trial._trial_id))


class _on_signal:
    """Install `handler` for `signum` inside the block (nothing outside the main thread, where
    Python allows no signal handlers), restoring the previous one after."""

    def __init__(self, signum: int, handler: Callable[[int, Any], None]) -> None:
        self.signum, self.handler = signum, handler

    def __enter__(self) -> None:
        self._previous = None
        try:
            self._previous = signal.signal(self.signum, self.handler)
        except ValueError:  # not in the main thread
            pass

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _sigterm_as_interrupt() -> _on_signal:
    """Treat SIGTERM (cluster pre-emption, `kill`) like Ctrl-C: stop cleanly after marking the trial."""
    return _on_signal(signal.SIGTERM, _interrupt)


def _sigint_between_batches(stop: threading.Event, training: Callable[[], bool]) -> _on_signal:
    """In-process trials: Ctrl-C while Keras trains only sets `stop`, which the next batch end turns
    into KeyboardInterrupt (see _interrupt_if); at any other moment it interrupts at once."""

    def handler(signum: int, frame: Any) -> None:
        if training() and not stop.is_set():
            stop.set()
        else:
            raise KeyboardInterrupt

    return _on_signal(signal.SIGINT, handler)


# --------------------------------------------------------------------------- progress


class SearchReporter:
    """Progress bar over finished trials (best so far, ETA) and one line per trial."""

    def __init__(self, quiet: bool = False, stream: Any = None, header: str = "", open_ended: bool = False) -> None:
        self.quiet = quiet
        self.open_ended = open_ended  # no trial target worth a bar (a time budget decides): count, no ETA
        self.header = header
        self._notes: set[str] = set()
        self.stream = stream or sys.stderr
        self.bar: Any = None

    def start(self, study: optuna.Study, total: int, finished: int, notes: list[str]) -> None:
        """Called once the study is open: the header goes out only when the search really starts."""
        for line in [self.header, *notes]:
            if line:
                print(line, file=self.stream)
        if self.quiet:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=None if self.open_ended else total, initial=finished, desc=f"search {study.study_name}", unit="trial",
            file=self.stream, dynamic_ncols=True,
        )
        self._set_best(study)

    def note(self, text: str) -> None:
        """A line of information, once (e.g. the devices a new worker found)."""
        if text in self._notes:
            return
        self._notes.add(text)
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream)

    def epoch(self, number: int, epoch: int, logs: dict) -> None:
        if self.bar is not None:
            acc = logs.get(OBJECTIVE, float("nan"))
            self.bar.set_postfix_str(f"{self._best} | trial {number} epoch {epoch} val_acc {acc:.4f}")

    def trial(self, study: optuna.Study, t: optuna.trial.FrozenTrial | None) -> None:
        if t is None or self.quiet:
            return
        self.bar.write(describe_trial(t), file=self.stream)
        self.bar.n = count_finished(study)
        self._set_best(study)

    def _set_best(self, study: optuna.Study) -> None:
        try:
            best = study.best_trial
            self._best = f"best {best.value:.4f} (#{best.number})"
        except ValueError:
            self._best = "best -"
        self.bar.set_postfix_str(self._best)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def describe_trial(t: optuna.trial.FrozenTrial) -> str:
    """One line: number, outcome, score, the main choices, epochs and time."""
    ua = t.user_attrs
    cfg = TrialConfig.from_dict(ua["config"]) if "config" in ua else None
    state = {TrialState.COMPLETE: "done", TrialState.PRUNED: "pruned", TrialState.FAIL: "FAILED"}.get(
        t.state, t.state.name.lower()
    )
    acc = ua.get("val_accuracy")
    score = f"val_acc {acc:.4f}" if acc is not None else "val_acc  -    "
    what = ""
    if cfg is not None:
        a, tr = cfg.arch, cfg.train
        what = (
            f"{a.block} {a.stages}x{a.blocks_per_stage} w{a.base_filters} k{a.kernel_size} {a.activation}"
            f" | {tr.optimizer} lr {tr.learning_rate:.1e} bs {tr.batch_size} aug {tr.augment}"
        )
    secs = sum(ua.get("epoch_seconds", []))
    extra = f" ({ua['fail_reason']})" if ua.get("fail_reason") else ""
    origin = ua.get("retry_of", t.system_attrs.get("failed_trial"))
    extra += f" (retry of trial {origin})" if origin is not None else ""
    return (
        f"trial {t.number:>3} {state:<6} {score} | {what} | {ua.get('epochs_run', 0)} ep "
        f"{secs:5.1f}s{extra}"
    )
