"""`SearchSettings`: everything a search accepts, declared once; `SearchOutcome`: what it gives back.

Each field carries its command-line help (`config.option`), so `cifar-automl search` and `auto` build
their flags from this class (`cli.add_settings_args`), and `auto`, the KerasTuner comparison and the
benchmarks fill the same class. Adding a search flag is one field here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ..config import option
from ..data import dataset_names, parse_subset
from ..errors import UserError
from ..runtime import visible_gpus
from .objectives import OBJECTIVES, Goal
from .strategies import PRUNERS, SAMPLERS

DATA = "data"  # the argument group of the fields that say which data to load
TIMEOUT_REACHED = "--timeout reached"  # a search's stopped_reason when --timeout ended it
# without --subset, a search takes at most this many train + validation images: a quarter of CIFAR-10's
# pool keeps an epoch of a small net to 10-30 s on 2 cores; a smaller data set is taken whole
DEFAULT_MAX_IMAGES = 10_000


@dataclass(frozen=True)
class SearchSettings:
    """Everything `cifar-automl search` accepts. Defaults suit a 2-core CPU; see README for a GPU."""

    space: str = option("all", "built-in space name or path to a YAML file (default: %(default)s)")
    trials: int = option(20, "finished trials the study must hold (default: %(default)s)")
    epochs: int = option(10, "max epochs per trial: the pruner's maximum resource (default: %(default)s)")
    timeout: float | None = option(None, "stop starting new trials after this many seconds")
    # with timeout: the running trial is also pruned at its next epoch end (auto's search share)
    prune_at_timeout: bool = option(False, "", cli=False)
    # a trial whose projected unpruned seconds exceed this is stopped once its speed is known (auto's first
    # trial, when it would leave no room for a search: it then times the retrain as --search-share 0 does)
    cost_cap: float | None = option(None, "", cli=False)
    subset: float | int | None = option(
        None, f"images for train+val: a count or a fraction of the training pool, 1.0 = all (default: all, "
        f"at most {DEFAULT_MAX_IMAGES:,})", type=parse_subset)
    val_fraction: float = option(
        0.2, "validation share of the subset, stratified (default: %(default)s)")
    test_fraction: float = option(
        0.2, "test share carved (fixed seed) when the data has no official test split (default: %(default)s)")
    seed: int = option(0, "seed for sampling, splits and training (default: %(default)s)")
    objective: str = option(
        "accuracy", "what to optimise: validation accuracy alone, or against latency (ms per image at batch 1) "
        "or parameters, as a Pareto front (default: %(default)s)", choices=lambda: OBJECTIVES)
    max_latency: float | None = option(None, "limit: ms per image at batch 1, measured in each trial", metavar="MS")
    max_params: int | None = option(None, "limit: parameters", metavar="N")
    sampler: str = option("tpe", "(default: %(default)s; tpe-local: TPE with half its trials one-parameter moves "
                                 "from the incumbent; tpe-hill: all of them, from the space's defaults or the best "
                                 "of TPE's first 5 start-up trials)", choices=lambda: tuple(SAMPLERS))
    pruner: str = option("hyperband", "per-epoch pruning on val accuracy (default: %(default)s)",
                         choices=lambda: tuple(PRUNERS))
    study_name: str | None = option(None, "default: the space's name")
    storage: str | None = option(None, "Optuna storage URL (default: sqlite:///STUDIES_DIR/STUDY_NAME.db)")
    studies_dir: str = option("studies", "home of study databases and artifacts (default: %(default)s)")
    mixed_precision: bool = option(False, "float16 compute on a GPU (bfloat16 on a CPU)")
    trials_per_process: int = option(
        10, "trials per worker process before a fresh one takes over, keeping memory flat; 0 runs trials in "
        "this process (default: %(default)s)")
    warm_start: str | None = option(
        None, "try first the presets this space can express, or the 5 best trials of another study",
        metavar="baselines|STUDY")
    workers: int = option(
        1, "worker processes training at once on this machine; auto: one per visible GPU, each pinned to its "
        "card (default: %(default)s)", type=lambda text: parse_workers(text), metavar="K|auto")
    heartbeat: int = option(
        30, "seconds between heartbeats of a running trial (database storages); a trial silent for 3 "
        "heartbeats is failed and re-run with the same parameters (default: %(default)s)")
    dataset: str = option("cifar10", "data set (default: %(default)s)", choices=dataset_names, group=DATA)
    data_dir: str | None = option(
        None, "local copy: cifar-10-python.tar.gz or its folder, IDX .gz files, or an image tree "
        "(ROOT/train/<class>/*.jpg or ROOT/<class>/*.jpg; a .tar.gz of one works too)", group=DATA)
    image_size: int | None = option(None, "resize folder images to this size (default: most common)", group=DATA)
    cache_dir: str | None = option(None, "where decoded arrays are cached (default: ~/.cache/cifar-automl)",
                                   group=DATA)

    def __post_init__(self) -> None:
        if self.workers == "auto":  # the Python API's spelling of --workers auto
            object.__setattr__(self, "workers", parse_workers("auto"))

    @property
    def goal(self) -> Goal:
        return Goal(self.objective, self.max_latency, self.max_params)

    def validate(self) -> None:
        """One clear error for a value no search can run with (before any data or storage is touched)."""
        goal = self.goal  # checks the objective and the limits
        if goal.multi and self.pruner == "median":
            raise UserError("--pruner median ranks one objective: use asha, hyperband or none with several")
        if goal.multi and self.sampler == "cmaes":
            raise UserError("--sampler cmaes takes one objective: use tpe, nsga2, random or qmc with several")
        if self.trials < 1:
            raise UserError(f"--trials must be at least 1, not {self.trials}")
        if self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, not {self.epochs}")
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1, not {self.workers}")
        if self.workers > 1 and self.trials_per_process == 0:
            raise UserError("--workers above 1 needs worker processes: leave --trials-per-process above 0")
        if self.heartbeat < 1:
            raise UserError(f"--heartbeat must be at least 1 second, not {self.heartbeat}")
        if self.trials_per_process < 0:
            raise UserError(f"--trials-per-process must be 0 or more, not {self.trials_per_process}")
        if self.timeout is not None and self.timeout <= 0:
            raise UserError(f"--timeout must be positive, not {self.timeout}")
        if not 0 < self.val_fraction < 1:
            raise UserError(f"--val-fraction must be between 0 and 1, not {self.val_fraction}")
        if self.sampler not in SAMPLERS:
            raise UserError(f"unknown sampler '{self.sampler}' (choose from {', '.join(SAMPLERS)})")
        if self.pruner not in PRUNERS:
            raise UserError(f"unknown pruner '{self.pruner}' (choose from {', '.join(PRUNERS)})")

    def data_settings(self) -> dict[str, Any]:
        """How to load the study's data again (retrain, report): stored with the study."""
        return {
            "dataset": self.dataset,
            "data_dir": str(Path(self.data_dir).resolve()) if self.data_dir else None,
            "image_size": self.image_size,
            "subset": self.subset,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
            "epochs": self.epochs,
            "space": self.space,
        }


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
    data: dict[str, Any] = field(default_factory=dict)  # the search's splits (Splits.info)


def parse_workers(text: str) -> int:
    """A --workers value: a count, or `auto` (one worker per visible GPU; one without a GPU)."""
    if text.strip() == "auto":
        return max(1, len(visible_gpus()))
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--workers takes a number or auto, not '{text}'") from None
