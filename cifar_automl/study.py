"""One place for a study: storages, creating and loading studies, their identity.

Every stage opens its study here (search creates it; retrain, export, baseline, report and the
dashboard load it), never through the search package. A study records what makes its trials
comparable (`identity`), how to load its data again (`search_settings`) and the data it saw (`data`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from . import __version__
from .errors import StudyError

CURVE = "val_curve"  # per-epoch validation accuracy as a user attribute (studies of several objectives)
OBJECTIVE = "val_accuracy"  # the metric every trial reports per epoch and the study maximizes
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# a trial's "fail_reason" user attribute when workers started it beside others that already filled
# --trials: it is failed before it samples anything (search.loop), and reports leave it out
SURPLUS = "surplus: --trials already reached by other workers"
INTERRUPTED = "interrupted"  # fail_reason of a trial cut short by Ctrl-C or SIGTERM (re-run on resume)
# fail_reason of a queued trial that repeats one queued before it (two commands queued the same
# configuration at once): it is failed before it samples anything, and reports leave it out
DUPLICATE = "duplicate: the same configuration was queued by another command"
# study attribute of a replay recording (benchmarks/replay.py --record): every configuration of a grid,
# trained to the end in a random order, so the report can draw what random search would have found
RECORDING = "replay_recording"
# trial system attribute of a one-parameter move from the incumbent (`--sampler tpe-local`,
# search.local): {"from": the incumbent's number, "param": the parameter moved}
LOCAL_MOVE = "local_move"
IDENTITY_FLAGS = {"space": "--space", "space_fingerprint": "--space", "epochs": "--epochs", "seed": "--seed",
                  "data_fingerprint": "--dataset/--data-dir/--subset/--val-fraction"}


def check_study_name(name: str) -> str:
    """A study name is also a folder name (studies/<name>/retrain, .../report): no path separators,
    and not a name of the folder itself or its parent."""
    if not name or any(c in name for c in "/\\\0") or name in (".", ".."):
        raise StudyError(f"study name {name!r} cannot be a folder name: leave out / and \\")
    return name


def default_storage_url(studies_dir: str | os.PathLike, study_name: str) -> str:
    return f"sqlite:///{Path(studies_dir) / f'{study_name}.db'}"


def is_journal(url: str) -> bool:
    """`*.log` / `*.jsonl` paths and `journal:PATH` name Optuna's journal file storage."""
    return url.startswith("journal:") or url.endswith((".log", ".jsonl"))


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open an Optuna storage: an RDB URL (SQLite in write-ahead-log mode, PostgreSQL, MySQL), or a
    `*.log` path or `journal:PATH` for Optuna's journal file storage (many processes, no server).
    Trials of dead workers are found by the search itself (`search.liveness`), on every storage."""
    if is_journal(url):
        path = Path(url.removeprefix("journal:"))
        if not path.parent.is_dir():
            raise StudyError(f"cannot open storage {url}: directory {path.parent} does not exist")
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
            )
        if sqlite:  # write-ahead log: readers (dashboard, report) never block the workers' writes
            with storage.engine.connect() as conn:
                conn.execute(text("PRAGMA journal_mode=WAL"))
        return storage
    except (SQLAlchemyError, ValueError, ImportError, RuntimeError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise StudyError(f"cannot open storage {redact(url)}: {reason}") from None


def checkpoint_sqlite(storage: optuna.storages.BaseStorage) -> None:
    """SQLite: copy the write-ahead log into the database file, so that after a run the .db file alone
    holds the whole study (copy or send it without its -wal file) and later readers find nothing left
    to copy into it. PASSIVE: never waits for a reader such as the dashboard."""
    if isinstance(storage, optuna.storages.RDBStorage) and storage.engine.dialect.name == "sqlite":
        with storage.engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))


def _check_writable_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StudyError(f"cannot create studies directory {directory}: {e.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StudyError(f"studies directory {directory} is not writable: pass --studies-dir or --storage")


SECRET_PARAMS = ("password", "passwd", "pwd", "pass", "secret", "token", "sslpassword")


def redact(url: str) -> str:
    """A storage URL fit to print: the password of `user:password@host` and the values of query
    parameters such as `?password=` are replaced by ***."""
    if "://" not in url or ("@" not in url and "?" not in url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        creds, host = netloc.rsplit("@", 1)
        netloc = f"{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else netloc
    query = "&".join(
        f"{key}=***" if key.lower() in SECRET_PARAMS else f"{key}={value}" if value or "=" in pair else key
        for pair in parts.query.split("&") if pair
        for key, _, value in [pair.partition("=")]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def open_study(
    storage: optuna.storages.BaseStorage,
    storage_url: str,
    study_name: str,
    identity: dict[str, Any],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    directions: Sequence[str] = ("maximize",),
    metric_names: Sequence[str] = (OBJECTIVE,),
) -> optuna.Study:
    """Create the study, or load it after checking it was made with the same `identity` (space, data,
    epochs, objectives: what makes its trials comparable). Its objectives are named (`metric_names`),
    so optuna-dashboard labels its plots with them."""
    check_study_name(study_name)
    try:
        existing = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        existing = None
    if existing is not None:
        if [d.name.lower() for d in existing.directions] != list(directions):
            if existing.directions[0] != optuna.study.StudyDirection.MAXIMIZE:
                raise StudyError(f"study '{study_name}' in {redact(storage_url)} minimizes; it was not made by this tool")
            made = ",".join(existing.metric_names or []) or f"{len(existing.directions)} objective(s)"
            raise StudyError(f"study '{study_name}' optimises {made}, not {','.join(metric_names)}: rerun with its "
                             "--objective, or pass a new --study-name")
        stored = existing.user_attrs.get("identity")
        if stored is None:
            raise StudyError(
                f"study '{study_name}' in {redact(storage_url)} was not made by cifar-automl: pass another --study-name"
            )
        for key, value in identity.items():
            if key in stored and stored[key] != value:  # (keys a study from an older version lacks are not checked)
                flag = IDENTITY_FLAGS.get(key, "--dataset/--subset/--val-fraction")
                raise StudyError(
                    f"study '{study_name}' was created with {key}={stored.get(key)!r}, not {value!r}: "
                    f"rerun with the same {flag}, or pass a new --study-name"
                )
        if stored.get("goal") != identity.get("goal"):  # objectives and limits (absent: accuracy alone)
            raise StudyError(
                f"study '{study_name}' was created with {_goal_text(stored.get('goal'))}, not "
                f"{_goal_text(identity.get('goal'))}: rerun with the same --objective/--max-latency/--max-params, "
                "or pass a new --study-name")
        return existing
    study = optuna.create_study(
        study_name=study_name, storage=storage, sampler=sampler, pruner=pruner,
        directions=list(directions), load_if_exists=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(metric_names))
    study.set_user_attr("identity", identity)
    study.set_user_attr("cifar_automl_version", __version__)
    return study


def _goal_text(goal: dict[str, Any] | None) -> str:
    goal = goal or {"objective": "accuracy"}
    limits = [f"{flag} {goal[key]}" for key, flag in (("max_latency_ms", "--max-latency"), ("max_params", "--max-params"))
              if goal.get(key) is not None]
    return f"--objective {goal['objective']}" + "".join(f", {limit}" for limit in limits)


def load_existing_study(
    study_name: str, storage: str | None = None, studies_dir: str | os.PathLike = "studies"
) -> tuple[optuna.Study, str]:
    """Open an existing study for reading (retrain, export, report); never creates one."""
    check_study_name(study_name)
    url = storage or default_storage_url(studies_dir, study_name)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise StudyError(f"no study database at {url.removeprefix('sqlite:///')}: run `cifar-automl search` first or pass --storage")
    opened = open_storage(url)
    try:
        return optuna.load_study(study_name=study_name, storage=opened), url
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(opened, include_best_trial=False)]
        raise StudyError(
            f"no study '{study_name}' in {redact(url)} (studies there: {', '.join(names) or 'none'})"
        ) from None


def search_settings_of(study: optuna.Study) -> dict[str, Any]:
    """How the study's data was loaded and split (the `search_settings` the search stored)."""
    settings = study.user_attrs.get("search_settings")
    if settings is None:
        raise StudyError(f"study '{study.study_name}' does not record its data settings: was it made by cifar-automl?")
    return settings


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def accuracy(trial: optuna.trial.FrozenTrial) -> float | None:
    """A finished trial's validation accuracy: its value, or its first value in a study with several
    objectives (where `trial.value` raises)."""
    return trial.values[0] if trial.values else None


def repeats(trial: optuna.trial.FrozenTrial) -> int | None:
    """The number of the trial this one runs again, if it is a retry: of a trial whose worker went
    silent (Optuna's `RetryFailedTrialCallback`: the last of its `retry_history`), or of one that Ctrl-C
    cut short (`retry_of`, `search.warmstart.requeue_interrupted`)."""
    history = trial.system_attrs.get("retry_history")
    return history[-1] if history else trial.user_attrs.get("retry_of")


def curve(trial: optuna.trial.FrozenTrial) -> dict[int, float]:
    """A trial's validation accuracy by epochs trained: its intermediate values, or (several objectives,
    where Optuna refuses `report`) its user attribute `val_curve`."""
    if trial.intermediate_values:
        return dict(trial.intermediate_values)
    return {step: float(v) for step, v in enumerate(trial.user_attrs.get(CURVE) or [], start=1)}
