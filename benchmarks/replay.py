"""Replay benchmark: search methods against recorded learning curves, over many seeds, in minutes.

    python benchmarks/replay.py --record            # once: train the grid for real (~70 min on 2 cores)
    python benchmarks/replay.py --seeds 20          # replay every method against the recording
    python benchmarks/replay.py --record --dataset fashion_mnist    # the same grid on other data, then
    python benchmarks/replay.py --seeds 20 --warm-from benchmarks/data/replay-fashion_mnist.json.gz
                                                    # also replays a search warm-started from that one

Recording: every configuration of `replay_space.yaml` (the built-in `residual` space on a grid of five
parameters, 180 configurations) is trained for real by `cifar-automl search` itself (the search's own
objective, data split and `training.fit`), for the full `--epochs` of its schedule, without pruning, on
a subset of the CIFAR-10 archive. Each epoch's validation accuracy and wall seconds (the first epoch
includes building and tracing the model) go into `data/<space>.json.gz` (`data/replay.json.gz`) with the machine, date
and commit. A pruned trial and a Hyperband rung both see a prefix of that run: a trial's schedule is
laid over the search's `--epochs` whatever its rung, as in a real search, and KerasTuner's Hyperband
resumes a promoted model from its checkpoint on the same schedule (`SpaceHyperModel`).

Replay: each method runs through its real code and pays the recorded seconds for each epoch it asks for.
- Optuna's samplers and pruners, built by the package's own `make_sampler`/`make_pruner` and sampling
  through the space's own `SearchSpace.sample`: the objective reports each recorded epoch, and the
  pruner decides as in a search;
- KerasTuner's `Hyperband` and `BayesianOptimization` tuners on the package's `SpaceHyperModel`, whose
  `fit` returns the recorded epochs (`ReplayHyperModel`): KerasTuner's own oracles, brackets,
  checkpoints and resumption.
Per seed, KerasTuner's Hyperband (max_epochs = the recorded epochs, factor 3, one iteration) runs to
its end; its total seconds are the budget and its final best validation accuracy the target. Each other
method runs for the same budget; its time to reach the target (the budget's end when it never does)
gives its speed-up, KerasTuner's time to its own best divided by the method's.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gzip
import importlib.util
import itertools
import json
import math
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SPACE = HERE / "replay_space.yaml"
ARCHIVE = HERE.parent.parent / "shared" / "datasets" / "cifar10-train-jpeg.tar.gz"
DATA = HERE / "data"


# --- recording --------------------------------------------------------------------------------------

def grid_of(space) -> dict[str, list[Any]]:
    """The grid the space spans: each searched parameter's choices (all must be categorical)."""
    params = [*space.arch, *(p for ps in space.blocks.values() for p in ps), *space.train]
    grid = {}
    for p in params:
        if p.kind == "fixed":
            continue
        if p.kind != "categorical" or p.when:
            raise SystemExit(f"error: {p.name} is not an unconditional categorical: the replay space must be a grid")
        grid[p.name] = list(p.choices)
    return grid


def table_path(space_name: str, dataset: str = "folder") -> Path:
    """The recording of a space: `data/<space>.json.gz` on the CIFAR-10 archive, `data/<space>-<dataset>.json.gz`
    on another data set."""
    return DATA / (f"{space_name}.json.gz" if dataset == "folder" else f"{space_name}-{dataset}.json.gz")


def record(args: argparse.Namespace) -> None:
    """Train every grid point of the space for real (resumable: run again to finish an interrupted
    recording), then write the table. `--schedules R ...` also trains each for complete schedules of R
    epochs (warm-up and decay over R epochs: what a rung would run if it trained a schedule of its own)."""
    from cifar_automl.search import SearchSettings, prepare

    folder = args.dataset == "folder"
    settings = SearchSettings(
        space=str(args.space), dataset=args.dataset, data_dir=str(args.data_dir) if folder else None,
        subset=args.subset, epochs=args.epochs, seed=0, sampler="random", pruner="none", trials=1,
        study_name="replay-record" if folder else f"replay-record-{args.dataset}",
        studies_dir=str(args.studies_dir), trials_per_process=20,
    )
    prepared = prepare(settings)
    space = prepared[0]
    grid = grid_of(space)
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    # in a fixed random order: failures that cluster in the grid (no batch norm at the highest rate)
    # must not come five in a row, which stops a search
    random.Random(0).shuffle(points)
    points = points[: args.limit] if args.limit else points
    study = record_study(settings, prepared, points, grid)
    shorts = {}
    for epochs in args.schedules or ():
        shorts[epochs] = record_study(dataclasses.replace(settings, epochs=epochs,
                                                          study_name=f"{settings.study_name}-e{epochs}"),
                                      prepared, points, grid)
    write_table(study, shorts, space, grid, settings, args.dataset)


def record_study(settings, prepared, points: list[dict[str, Any]], grid: dict[str, list[Any]]):
    """One study holding a trial of every point, trained by `run_search` itself (without pruning)."""
    import optuna

    from cifar_automl.search import run_search
    from cifar_automl.study import RECORDING, default_storage_url, open_storage

    run_search(settings, prepared=prepared)  # creates the study (its first trial: one random grid point)
    storage_url = default_storage_url(settings.studies_dir, settings.study_name)
    study = optuna.load_study(study_name=settings.study_name, storage=open_storage(storage_url))
    # marks it for the report, which then draws random search over the grid (its exact expectation)
    study.set_user_attr(RECORDING, {"grid": grid, "epochs": settings.epochs, "points": len(points)})
    have = {_key(t.params, grid) for t in study.get_trials(deepcopy=False)
            if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING,
                           optuna.trial.TrialState.RUNNING)
            or (t.user_attrs.get("fail_reason") or "").startswith("loss became NaN")}
    for p in points:
        if _key(p, grid) not in have:
            study.enqueue_trial(p)
    print(f"{settings.study_name}: {len(points)} configurations of {settings.epochs} epochs "
          f"({len(points) - len(have)} to train)", flush=True)
    run_search(dataclasses.replace(settings, trials=len(points)), prepared=prepared)
    return study


def _runs(study, grid: dict[str, list[Any]]) -> dict[tuple, dict[str, Any]]:
    """Each grid point's recorded run in a study (a point recorded twice: its last run)."""
    runs = {}
    for t in study.get_trials(deepcopy=False):
        history = t.user_attrs.get("history") or {}
        if not history.get("val_accuracy") or set(t.params) != set(grid) or t.state.name not in ("COMPLETE", "FAIL"):
            continue
        runs[_key(t.params, grid)] = {
            "params": t.params,
            "n_params": t.user_attrs.get("params"),
            "val_accuracy": history["val_accuracy"],
            "seconds": t.user_attrs["epoch_seconds"],
            "failed": t.user_attrs.get("fail_reason"),
        }
    return runs


def write_table(study, shorts: dict[int, Any], space, grid: dict[str, list[Any]], settings, dataset: str) -> None:
    from cifar_automl.runtime import cpu_name, source_commit

    runs = _runs(study, grid)
    for epochs, short in shorts.items():
        for key, run in _runs(short, grid).items():
            if key in runs:
                runs[key].setdefault("short", {})[str(epochs)] = {
                    "val_accuracy": run["val_accuracy"], "seconds": run["seconds"], "failed": run["failed"]}
    table = {
        "space": space.name, "grid": grid, "epochs": settings.epochs, "subset": settings.subset,
        "schedules": sorted(shorts),
        "data": {k: (Path(v).name if k == "source" else v) for k, v in (study.user_attrs.get("data") or {}).items()},
        "cpu": cpu_name() + (" (AVX-512)" if _avx512() else ""), "cores": _cores(), "python": platform.python_version(),
        "date": datetime.date.today().isoformat(), "commit": source_commit(),
        "command": f"python benchmarks/replay.py --record --subset {settings.subset} --epochs {settings.epochs}"
                   + (f" --schedules {' '.join(map(str, sorted(shorts)))}" if shorts else "")
                   + ("" if dataset == "folder" else f" --dataset {dataset}"),
        "configs": list(runs.values()),
    }
    DATA.mkdir(exist_ok=True)
    path = table_path(space.name, dataset)
    with gzip.open(path, "wt") as f:
        json.dump(table, f, separators=(",", ":"))
    print(f"{len(runs)} of {math.prod(len(v) for v in grid.values())} configurations written to "
          f"{path.relative_to(HERE.parent)}")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _avx512() -> bool:
    try:
        return " avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _key(params: dict[str, Any], grid: dict[str, list[Any]]) -> tuple:
    return tuple(params.get(name) for name in grid)



# --- replay -----------------------------------------------------------------------------------------

@dataclass
class Recorded:
    """One configuration's recorded run: validation accuracy and seconds of each epoch it trained."""

    params: dict[str, Any]
    val_accuracy: list[float]
    seconds: list[float]
    failed: str | None = None
    n_params: int | None = None
    short: dict[str, dict[str, Any]] | None = None  # "R": the run of a complete R-epoch schedule


class Table:
    def __init__(self, data: dict[str, Any]) -> None:
        self.meta = {k: v for k, v in data.items() if k != "configs"}
        self.grid: dict[str, list[Any]] = data["grid"]
        self.epochs: int = data["epochs"]
        self.schedules: list[int] = data.get("schedules", [])
        self.configs = {_key(c["params"], self.grid): Recorded(**c) for c in data["configs"]}

    @classmethod
    def load(cls, path: Path) -> Table:
        with gzip.open(path, "rt") as f:
            return cls(json.load(f))

    def __getitem__(self, params: dict[str, Any]) -> Recorded:
        return self.configs[_key(params, self.grid)]

    @property
    def best(self) -> float:
        return max(max(c.val_accuracy) for c in self.configs.values())


@dataclass
class Clock:
    """Simulated wall time: each epoch a method asks for costs its recorded seconds."""

    budget: float = math.inf
    t: float = 0.0
    events: list[tuple[float, float]] = field(default_factory=list)  # (time, val accuracy) per epoch
    trials: int = 0
    fits: list[tuple[int, int]] = field(default_factory=list)  # KerasTuner: (initial_epoch, epochs) per fit

    def pay(self, seconds: float, value: float) -> None:
        self.t += seconds
        self.events.append((self.t, value))

    @property
    def spent(self) -> bool:
        return self.t >= self.budget

    def best(self) -> float:
        return max((v for t, v in self.events if t <= self.budget), default=math.nan)

    def time_to(self, target: float) -> float | None:
        return next((t for t, v in self.events if v >= target - 1e-9 and t <= self.budget), None)


def run_optuna(table: Table, space, sampler: str, pruner: str, seed: int, budget: float,
               fidelity: str = "prefix", *, defaults: bool = False, warm: Table | None = None,
               warm_first: bool = False) -> Clock:
    """One search through Optuna with the package's sampler and pruner, paying recorded seconds.

    `fidelity`: `prefix`, as a search runs today (one schedule over all epochs, pruned at a rung: the
    rung sees a prefix of the full run); `restart`, each rung trains a complete schedule of its own
    length (the table's `--schedules` runs) and a promoted trial starts again at the next rung's length.
    `defaults`: the space's defaults are queued, as a new `cifar-automl search` queues them
    (`warmstart.queue_defaults`). `warm`: another recording of the same grid (another data set): its
    best configurations are queued, as `cifar-automl search --warm-start STUDY` queues another study's
    (`warm_starts`): before the defaults (`warm_first`), as the package does (`warmstart.queue_first`),
    or after them."""
    import optuna

    from cifar_automl.search.objective import PruneAtEpochEnd
    from cifar_automl.search.strategies import PerTrialSeed, make_pruner, make_sampler
    from cifar_automl.search.warmstart import queue_defaults

    clock = Clock(budget)
    if sampler in CANDIDATE_SAMPLERS:
        make = CANDIDATE_SAMPLERS[sampler]
        chosen = PerTrialSeed(lambda s: make(s, space), seed)
    else:
        chosen = make_sampler(sampler, seed)
    # a fixed name: Optuna's Hyperband pruner assigns trials to brackets by a hash of it
    study = optuna.create_study(study_name=f"replay-{seed}", direction="maximize", sampler=chosen,
                                pruner=make_pruner(pruner, table.epochs))
    rungs = [r for r in table.schedules if r < table.epochs] + [table.epochs]
    if defaults and not warm_first:
        queue_defaults(study, space)  # the package's own: the first trial
    held = [space.default_params()] if defaults else []
    for params in warm_starts(warm, skip=held) if warm is not None else ():
        study.enqueue_trial(params, user_attrs={"warm_start": "recording"})
    if defaults and warm_first:
        queue_defaults(study, space)  # behind the warm start, as the package queues them

    def prefix(trial: optuna.Trial, run: Recorded) -> float:
        prune = PruneAtEpochEnd(trial, table.epochs)  # the search's own: reports, and prunes at a rung
        for epoch in range(table.epochs):
            if epoch >= len(run.val_accuracy):  # the loss became NaN: the trial fails
                return math.nan
            clock.pay(run.seconds[epoch], run.val_accuracy[epoch])
            prune.on_epoch_end(epoch, {"val_accuracy": run.val_accuracy[epoch]})
            if epoch + 1 < table.epochs and clock.spent:
                raise optuna.TrialPruned()
        return math.nan if run.failed else max(run.val_accuracy)

    def restart(trial: optuna.Trial, run: Recorded) -> float:
        for rung in rungs:
            recorded = (run.short or {}).get(str(rung))
            if rung < table.epochs and recorded is None:  # its short run was not recorded (it failed)
                return math.nan
            short = run if rung == table.epochs else Recorded(run.params, **recorded)
            for value, seconds in zip(short.val_accuracy, short.seconds):
                clock.pay(seconds, value)
            if short.failed or len(short.val_accuracy) < rung:
                return math.nan
            trial.report(max(short.val_accuracy), rung)
            if rung < table.epochs and (trial.should_prune() or clock.spent):
                raise optuna.TrialPruned()
        return max(run.val_accuracy)

    def objective(trial: optuna.Trial) -> float:
        space.sample(trial, table.epochs)  # the space's own suggest_* calls
        clock.trials += 1
        return (restart if fidelity == "restart" else prefix)(trial, table[trial.params])

    def stop_at_budget(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if clock.spent or len(study.trials) > 20 * len(table.configs):
            study.stop()

    study.optimize(objective, callbacks=[stop_at_budget])
    return clock


def run_kerastuner(table: Table, space, tuner: str, seed: int, budget: float, workdir: Path) -> Clock:
    """One search by KerasTuner's own tuner (`hyperband`: one iteration to its end; `bayes`: until the
    budget is spent) on `ReplayHyperModel`."""
    import keras_tuner as kt
    import numpy as np

    random.seed(seed)  # parts of KerasTuner draw from the global generators
    np.random.seed(seed)
    clock = Clock(budget)
    hypermodel = ReplayHyperModel(space, table, clock)
    common = dict(objective="val_accuracy", seed=seed, directory=str(workdir), project_name=f"{tuner}-{seed}",
                  overwrite=True)
    if tuner == "hyperband":
        t = kt.Hyperband(hypermodel, max_epochs=table.epochs, factor=3, hyperband_iterations=1, **common)
    else:
        t = kt.BayesianOptimization(hypermodel, max_trials=20 * len(table.configs), **common)
    hypermodel.on_budget_spent = lambda: setattr(t.oracle, "max_trials", len(t.oracle.trials))
    t.search(verbose=0)
    return clock


def _replay_hypermodel():
    import keras
    import keras_tuner as kt

    from cifar_automl.search.kerastuner import SpaceHyperModel

    class ReplayHyperModel(SpaceHyperModel):
        """The package's `SpaceHyperModel` (same space, same `KerasTunerTrial` sampling) whose model is a
        stand-in and whose `fit` replays the recorded epochs [initial_epoch, epochs) through KerasTuner's
        callbacks (its checkpointing of the best epoch, which Hyperband resumes from)."""

        def __init__(self, space, table: Table, clock: Clock) -> None:
            kt.HyperModel.__init__(self, name=f"replay_{space.name}")
            self.space, self.table, self.clock, self.epochs = space, table, clock, table.epochs
            self.on_budget_spent: Callable[[], None] = lambda: None

        def build(self, hp):
            self.config(hp)  # registers the space's parameters with KerasTuner
            model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
            model.compile(loss="mse")
            return model

        def fit(self, hp, model, *args, callbacks=(), epochs=None, initial_epoch=0, **kwargs):
            run = self.table[{name: hp.values[name] for name in self.table.grid}]
            stop = min(epochs or self.epochs, self.epochs)
            self.clock.fits.append((initial_epoch, stop))
            if initial_epoch == 0:
                self.clock.trials += 1
            for cb in callbacks:
                cb.set_model(model)
            values = []
            for epoch in range(initial_epoch, min(stop, len(run.val_accuracy))):
                value = run.val_accuracy[epoch]
                self.clock.pay(run.seconds[epoch], value)
                values.append(value)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, {"val_accuracy": value})
            if self.clock.spent:
                self.on_budget_spent()
            return {"val_accuracy": max(values) if values else 0.0}

    return ReplayHyperModel


def ReplayHyperModel(space, table: Table, clock: Clock):  # noqa: N802 (a class made on first use: keras)
    return _replay_hypermodel()(space, table, clock)


def _candidate_tpe(**kwargs: Any) -> Callable[[int, Any], Any]:
    def make(seed: int, space: Any = None) -> Any:
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, **kwargs)
    return make


def warm_starts(table: Table, skip: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The configurations `--warm-start` would queue from a study that recorded `table`: its
    WARM_STARTS best complete runs by their best validation accuracy, leaving out those in `skip`
    (queued already), as `search.warmstart.warm_start` does."""
    from cifar_automl.search.warmstart import WARM_STARTS

    done = [c for c in table.configs.values() if not c.failed and len(c.val_accuracy) == table.epochs]
    best = [c.params for c in sorted(done, key=lambda c: max(c.val_accuracy), reverse=True) if c.params not in skip]
    return best[:WARM_STARTS]


# --- a candidate that did not measure better: start-up trials drawn around the defaults -------------
# The prior half of PriorBand (Mallik et al., "PriorBand: Practical Hyperparameter Optimization in the Age
# of Deep Learning", NeurIPS 2023). TPE spends its first STARTUP trials (per Hyperband bracket, the study
# its sampler sees) sampling uniformly at random; `PriorStart` draws them from a prior around the space's
# defaults instead: each parameter keeps its default with probability c / (c + n - 1) for n choices
# (PriorBand's categorical prior at its "medium" confidence, c = CONFIDENCE: 0.67 of three choices, 0.5 of
# five), else takes one of the other choices. The recorded grid is all choices, so numbers (a parameter
# that is not a choice) are left to the base sampler.
# Replayed on the Fashion-MNIST recording it reached KerasTuner's best no sooner than TPE behind the
# defaults (RESULTS.md), so the package does not carry it.

STARTUP = 10  # TPE's start-up trials (Optuna's default n_startup_trials)
CONFIDENCE = 4.0  # PriorBand's "medium" confidence: the default's weight against 1 for each other choice


def _prior_start() -> type:
    """The `PriorStart` sampler class (made on first use: Optuna is imported where a replay needs it)."""
    import numpy as np
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    def same(a: Any, b: Any) -> bool:
        return a == b and isinstance(a, bool) == isinstance(b, bool)

    def holds(dist: Any, value: Any) -> bool:  # a choice among the distribution's
        return isinstance(dist, CategoricalDistribution) and any(same(c, value) for c in dist.choices)

    class PriorStart(optuna.samplers.BaseSampler):
        """`base` (TPE with `startup` start-up trials), its start-up trials drawn around `prior` (parameter
        name -> default value); parameters without a default are the base's (random in the start-up)."""

        def __init__(self, base: Any, prior: dict[str, Any], seed: int | None = None, startup: int = STARTUP):
            self._base, self._prior, self._startup = base, dict(prior), startup
            # a stream of its own, as `IncumbentMoves` keeps: not tied to the base sampler's draws
            self._rng = np.random.RandomState(
                None if seed is None else np.random.SeedSequence([seed, 2]).generate_state(1))

        def before_trial(self, study, trial) -> None:
            self._base.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self._base.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._base.sample_relative(study, trial, search_space)  # {} in TPE's start-up

        def sample_independent(self, study, trial, param_name, param_distribution):
            # the start-up as TPE counts it: finished trials of the study it is shown (a Hyperband bracket)
            finished = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED),
                                         use_cache=True)
            default = self._prior.get(param_name)
            if len(finished) < self._startup and default is not None and holds(param_distribution, default):
                return self.draw(param_distribution, default)
            return self._base.sample_independent(study, trial, param_name, param_distribution)

        def draw(self, dist: Any, default: Any) -> Any:
            """One draw of the prior around `default` (one of the categorical `dist`'s choices)."""
            n = len(dist.choices)
            if n == 1 or self._rng.random_sample() < CONFIDENCE / (CONFIDENCE + n - 1):
                return default
            others = [c for c in dist.choices if not same(c, default)]
            return others[self._rng.randint(len(others))]

        def after_trial(self, study, trial, state, values) -> None:
            self._base.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._base.reseed_rng()

    return PriorStart


# --- a candidate: BOHB's model across rungs ----------------------------------------------------------
# BOHB (Falkner et al., "BOHB: Robust and Efficient Hyperparameter Optimization at Scale", ICML 2018) fits
# its model on the largest budget that has enough observations (one more than the parameters), and
# samples a third of its trials at random. `RungModel` does that with Optuna's multivariate TPE as the
# model: every finished trial of the whole study (all Hyperband brackets: Optuna's Hyperband pruner shows
# a sampler only the trial's bracket, and its TPE waits for 10 trials of that bracket) is scored by its
# validation accuracy at the highest epoch that enough trials reached.

def _rung_model() -> type:
    """The `RungModel` sampler class (made on first use)."""
    import numpy as np
    import optuna
    from optuna.trial import TrialState, create_trial

    class RungModel(optuna.samplers.BaseSampler):
        def __init__(self, seed: int, random_share: float = 1 / 3) -> None:
            self._seed, self._share = seed, random_share
            self._rng = np.random.RandomState(np.random.SeedSequence([seed, 3]).generate_state(1))
            self._random = optuna.samplers.RandomSampler(seed=seed)
            self._planned: dict[int, dict[str, Any]] = {}

        def infer_relative_search_space(self, study, trial):
            if trial.params or "fixed_params" in trial.system_attrs or self._rng.random_sample() < self._share:
                return {}
            trials = [t for t in study._storage.get_all_trials(study._study_id, deepcopy=False)
                      if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.intermediate_values]
            names = {name for t in trials for name, d in t.distributions.items() if not d.single()}
            reached: dict[int, list] = {}
            for t in trials:
                for step in t.intermediate_values:
                    reached.setdefault(step, []).append(t)
            enough = [step for step, ts in reached.items() if len(ts) >= len(names) + 1]
            if not enough:
                return {}
            step = max(enough)
            shadow = optuna.create_study(direction=study.direction)
            for t in reached[step]:
                shadow.add_trial(create_trial(params=t.params, distributions=t.distributions,
                                              value=t.intermediate_values[step]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tpe = optuna.samplers.TPESampler(seed=int(self._rng.randint(2**31)), multivariate=True,
                                                 group=True, n_startup_trials=0)
            dummy = shadow._storage.get_trial(shadow._storage.create_new_trial(shadow._study_id))
            space = tpe.infer_relative_search_space(shadow, dummy)
            self._planned[trial._trial_id] = tpe.sample_relative(shadow, dummy, space)
            return space

        def sample_relative(self, study, trial, search_space):
            return self._planned.pop(trial._trial_id, {}) if search_space else {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._random.sample_independent(study, trial, param_name, param_distribution)

        def reseed_rng(self) -> None:
            self._random.reseed_rng()

    return RungModel


def _prior_tpe(local: bool) -> Callable[[int, Any], Any]:
    """TPE whose start-up trials are drawn around the space's defaults (`PriorStart`), with half its
    trials one-parameter moves from the incumbent as `tpe-local` makes them (`local`)."""
    def make(seed: int, space: Any) -> Any:
        from cifar_automl.search.local import IncumbentMoves

        sampler = _prior_start()(_candidate_tpe()(seed), space.default_params(), seed)
        return IncumbentMoves(sampler, seed) if local else sampler
    return make


def _local(share: float, start: int = 1) -> Callable[[int, Any], Any]:
    """`tpe-local` with `share` of the trials moves from the incumbent instead of its half, from the
    `start`-th finished trial on (or once a queued one is complete)."""
    def make(seed: int, space: Any = None) -> Any:
        from cifar_automl.search.strategies import tpe_local

        return tpe_local(seed, share=share, start=start)
    return make


# samplers tried as the new default, beside the package's own (`strategies.SAMPLERS`), seeded per trial;
# each is made from a seed and the space
CANDIDATE_SAMPLERS: dict[str, Callable[[int, Any], Any]] = {
    "tpe-local75": _local(0.75),
    "tpe-local100": _local(1.0),
    "tpe-local100-after5": _local(1.0, start=5),
    "tpe-local100-after10": _local(1.0, start=10),
    "tpe5": _candidate_tpe(n_startup_trials=5),
    "gp": lambda seed, space=None: __import__("optuna").samplers.GPSampler(seed=seed),
    "tpe-prior": _prior_tpe(local=False),
    "tpe-local-prior": _prior_tpe(local=True),
    "bohb": lambda seed, space=None: _rung_model()(seed),
}

@dataclass(frozen=True)
class Method:
    """How a replayed method runs: KerasTuner's tuner `search`, or Optuna's sampler `search` with
    `pruner`; `fidelity` as in `run_optuna`; `defaults`: the space's defaults queued; `warm`: the best
    configurations of the `--warm-from` recording queued, before the defaults if `warm_first` (the
    package's order), else after them."""

    kind: str  # "kerastuner" or "optuna"
    search: str
    pruner: str = "none"
    fidelity: str = "prefix"
    defaults: bool = False
    warm: bool = False
    warm_first: bool = False


METHODS: dict[str, Method] = {
    "kerastuner-hyperband": Method("kerastuner", "hyperband"),
    "kerastuner-bayes": Method("kerastuner", "bayes"),
    "random": Method("optuna", "random"),
    "random+hyperband": Method("optuna", "random", "hyperband"),
    "tpe": Method("optuna", "tpe"),
    "tpe+hyperband": Method("optuna", "tpe", "hyperband"),
    "tpe+asha": Method("optuna", "tpe", "asha"),
    "tpe5+hyperband": Method("optuna", "tpe5", "hyperband"),
    "gp": Method("optuna", "gp"),
    "gp+hyperband": Method("optuna", "gp", "hyperband"),
    "tpe+hyperband, rung schedules": Method("optuna", "tpe", "hyperband", "restart"),  # needs --schedules runs
    "tpe+hyperband, defaults first": Method("optuna", "tpe", "hyperband", defaults=True),
    "tpe+hyperband, warm start": Method("optuna", "tpe", "hyperband", warm=True),  # needs --warm-from
    "tpe+hyperband, defaults + warm start": Method("optuna", "tpe", "hyperband", defaults=True, warm=True),
    # the default with `--warm-start OTHER_STUDY`: the other study's best, then the space's defaults
    "tpe+hyperband, warm start + defaults": Method("optuna", "tpe", "hyperband", defaults=True, warm=True,
                                                   warm_first=True),
    "tpe-prior+hyperband, defaults first": Method("optuna", "tpe-prior", "hyperband", defaults=True),
    "tpe-local-prior+hyperband, defaults first": Method("optuna", "tpe-local-prior", "hyperband", defaults=True),
    "bohb+hyperband": Method("optuna", "bohb", "hyperband"),
    "bohb+hyperband, defaults first": Method("optuna", "bohb", "hyperband", defaults=True),
    "tpe-local+hyperband": Method("optuna", "tpe-local", "hyperband"),
    "tpe-local75+hyperband, defaults first": Method("optuna", "tpe-local75", "hyperband", defaults=True),
    "tpe-local100+hyperband, defaults first": Method("optuna", "tpe-local100", "hyperband", defaults=True),
    "tpe-local100+hyperband": Method("optuna", "tpe-local100", "hyperband"),
    "tpe-local100-after5+hyperband": Method("optuna", "tpe-local100-after5", "hyperband"),
    "tpe-local100-after10+hyperband": Method("optuna", "tpe-local100-after10", "hyperband"),
    "tpe-local+hyperband, defaults first": Method("optuna", "tpe-local", "hyperband", defaults=True),
    # the package's `--sampler tpe-hill`: tpe-local100-after5 (climbing from the defaults or the best of 5)
    "tpe-hill+hyperband": Method("optuna", "tpe-hill", "hyperband"),
    "tpe-hill+hyperband, defaults first": Method("optuna", "tpe-hill", "hyperband", defaults=True),
    "tpe-local+hyperband, defaults + warm start": Method("optuna", "tpe-local", "hyperband", defaults=True,
                                                         warm=True),
    "tpe-local+hyperband, warm start + defaults": Method("optuna", "tpe-local", "hyperband", defaults=True,
                                                         warm=True, warm_first=True),
}
REFERENCE = "kerastuner-hyperband"
BASELINE = "tpe+hyperband"  # Optuna's TPE with its Hyperband pruner, without the space's defaults
DEFAULTS_CHOSEN_ON = DATA / "replay.json.gz"  # the recording the residual space's defaults were chosen on


def default_method(space) -> str:
    """The method `cifar-automl search` runs with its defaults on `space` (a space with defaults runs
    them first)."""
    from cifar_automl.search import SearchSettings

    s = SearchSettings()
    name = s.sampler if s.pruner == "none" else f"{s.sampler}+{s.pruner}"
    return f"{name}, defaults first" if space.default_params() else name


def run_method(method: Method, table: Table, space, seed: int, budget: float, workdir: Path,
               warm: Table | None) -> Clock:
    if method.kind == "kerastuner":
        return run_kerastuner(table, space, method.search, seed, budget, workdir)
    return run_optuna(table, space, method.search, method.pruner, seed, budget, method.fidelity,
                      defaults=method.defaults, warm=warm if method.warm else None, warm_first=method.warm_first)


def replay(args: argparse.Namespace) -> None:
    import optuna

    from cifar_automl.search import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(str(args.space))
    path = args.table or table_path(space.name, args.dataset)
    if not path.exists():
        raise SystemExit(f"error: no recording at {path}: run python benchmarks/replay.py --record first")
    table = Table.load(path)
    default = default_method(space)
    warm = Table.load(args.warm_from) if args.warm_from else None
    if warm is not None and warm.grid != table.grid:
        raise SystemExit(f"error: {args.warm_from} records another grid than {path}")
    methods = args.methods or [m for m, how in METHODS.items()
                               if (how.fidelity != "restart" or table.schedules) and (not how.warm or warm)]
    if warm is None and any(METHODS[m].warm for m in methods):
        raise SystemExit("error: a warm-started method needs --warm-from: a recording of the grid on other data")
    if importlib.util.find_spec("torch") is None:  # Optuna's GPSampler needs PyTorch
        skipped = [m for m in methods if METHODS[m].search == "gp"]
        methods = [m for m in methods if m not in skipped]
        if skipped:
            print(f"skipped (Optuna's GPSampler needs PyTorch): {', '.join(skipped)}")
    for i, name in enumerate(dict.fromkeys((REFERENCE, default, BASELINE))):
        if name not in methods:
            methods.insert(i, name)
    m = table.meta
    print(f"recording: {len(table.configs)} configurations of '{m['space']}', {m['epochs']} epochs, "
          f"{m['data']['n_train']} train / {m['data']['n_val']} val images of {m['data']['source']}; "
          f"{m['cpu']}, {m['cores']} cores, {m['date']}, commit {m['commit']}; best of the table "
          f"{table.best:.4f}")
    times: dict[str, list[float]] = {n: [] for n in methods}  # time to the target, per seed
    bests: dict[str, list[float]] = {n: [] for n in methods}
    trials: dict[str, list[int]] = {n: [] for n in methods}
    reached: dict[str, int] = {n: 0 for n in methods}
    budgets, targets = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            ref = run_kerastuner(table, space, "hyperband", seed, math.inf, Path(tmp))
            budget, target = ref.t, ref.best()
            budgets.append(budget)
            targets.append(target)
            ref.budget = budget
            for name in methods:
                start = time.time()
                clock = ref if name == REFERENCE else run_method(METHODS[name], table, space, seed,
                                                                 budget * args.budget_factor, Path(tmp), warm)
                hit = clock.time_to(target)
                reached[name] += hit is not None
                times[name].append(hit if hit is not None else clock.budget)
                bests[name].append(clock.best())
                trials[name].append(clock.trials)
                if args.verbose:
                    print(f"  seed {seed:2d} {name:38s} best {clock.best():.4f} target {target:.4f} "
                          f"{'at %6.0f s' % hit if hit is not None else 'not reached'} of {clock.budget:.0f} s "
                          f"({clock.trials} trials, {time.time() - start:.1f} s to replay)", flush=True)
    n = args.seeds
    longer = f", times {args.budget_factor:g} for the other methods" if args.budget_factor != 1 else ""
    print(f"\nbudget per seed: KerasTuner Hyperband's own run, median {statistics.median(budgets) / 60:.1f} "
          f"min of recorded training{longer}; target: its final best validation accuracy. A seed that never "
          f"reaches the target counts the budget as its time, so a method's speed-up is an upper bound where "
          f"it missed\n")
    header = ("method", "reached", "median min to target", f"speed-up vs {REFERENCE}",
              f"speed-up vs {BASELINE}", "best val acc (mean)", "trials (median)")
    # on the recording the defaults were chosen on, a method that starts from them is scored in-sample
    in_sample = path.resolve() == DEFAULTS_CHOSEN_ON.resolve()
    rows = []
    for name in methods:
        up = _geomean([r / t for r, t in zip(times[REFERENCE], times[name])])
        up_base = _geomean([d / t for d, t in zip(times[BASELINE], times[name])])
        label = name + (" (default)" if name == default else "") + (" *" if in_sample and METHODS[name].defaults else "")
        rows.append((label, f"{reached[name]}/{n}",
                     f"{statistics.median(times[name]) / 60:.1f}", f"{up:.2f}x", f"{up_base:.2f}x",
                     f"{statistics.mean(bests[name]):.4f}", f"{statistics.median(trials[name]):.0f}"))
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if in_sample and any(METHODS[name].defaults for name in methods):
        print("\n* starts from the space's defaults, which were chosen on this recording (in-sample): "
              "replay the Fashion-MNIST recording (--table data/replay-fashion_mnist.json.gz) for an "
              "out-of-sample figure")
    if args.budget_factor != 1:
        print_ranks(table, methods, bests)
    else:  # the ceilings are computed against KerasTuner's own budget
        print_ceilings(table, space, targets, budgets, times[REFERENCE], times[BASELINE])
    if args.pareto:
        replay_pareto(args, table, space)
    speedup = _geomean([r / t for r, t in zip(times[REFERENCE], times[default])])
    print(f"\ngeomean speed-up vs KerasTuner Hyperband: {speedup:.2f}x over {n} seeds")


def time_to(run: Recorded, target: float) -> float | None:
    """Seconds a configuration trained from scratch takes to reach `target` (None: it never does)."""
    spent = 0.0
    for value, seconds in zip(run.val_accuracy, run.seconds):
        spent += seconds
        if value >= target - 1e-9:
            return spent
    return None


def ceilings(table: Table, space, targets: list[float], budgets: list[float]) -> dict[str, list[float]]:
    """Per seed, the least time a method of a kind could take to reach the target, knowing the table and
    training each configuration's one recorded schedule from its start (the `prefix` fidelity; the
    rung schedules of `--schedules` are not counted): `oracle`, the one configuration that gets there
    soonest, trained first; `defaults, then oracle`, the space's defaults trained first (to their end
    unless they reach it, as a search's first trial runs), then that configuration, which is the best a
    method that trains the defaults' trial first can do. Capped at the budget."""
    runs = [c for c in table.configs.values() if c.val_accuracy]
    defaults = table[space.default_params()] if space.default_params() else None
    out: dict[str, list[float]] = {"oracle": [], "defaults, then oracle": []}
    for target, budget in zip(targets, budgets):
        best = min((t for t in (time_to(c, target) for c in runs) if t is not None), default=budget)
        out["oracle"].append(min(best, budget))
        if defaults is not None:
            own = time_to(defaults, target)
            out["defaults, then oracle"].append(min(own if own is not None else sum(defaults.seconds) + best, budget))
    return {k: v for k, v in out.items() if v}


def print_ceilings(table: Table, space, targets: list[float], budgets: list[float], reference: list[float],
                   baseline: list[float]) -> None:
    """The speed-ups a method of each kind in `ceilings` cannot pass on this recording: what a target asks
    of the table, before any search is run."""
    print("\nceilings (a method that knew the table; the geomean speed-up it would reach):")
    for name, times in ceilings(table, space, targets, budgets).items():
        up = _geomean([r / t for r, t in zip(reference, times)])
        up_base = _geomean([b / t for b, t in zip(baseline, times)])
        print(f"- {name}: {up:.2f}x vs {REFERENCE}, {up_base:.2f}x vs {BASELINE}")


def print_ranks(table: Table, methods: list[str], bests: dict[str, list[float]]) -> None:
    """Where each method's final best ranks among the recording's configurations (1: the grid's best),
    over the seeds: what a longer search ends with, beside how soon it passed KerasTuner's best."""
    scores = sorted((max(c.val_accuracy) for c in table.configs.values()), reverse=True)

    def rank(best: float) -> int:
        return 1 + sum(s > best + 1e-9 for s in scores)

    print(f"\nfinal best's rank among the {len(scores)} configurations (1: the recording's best), over the seeds:")
    print("| method | median rank | seeds ending on the best | seeds ending in the top 5 |")
    print("|---|---:|---:|---:|")
    for name in methods:
        ranks = [rank(b) for b in bests[name]]
        print(f"| {name} | {statistics.median(ranks):.0f} | {sum(r == 1 for r in ranks)}/{len(ranks)} | "
              f"{sum(r <= 5 for r in ranks)}/{len(ranks)} |")


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.mean(math.log(v) for v in values))



# --- several objectives: accuracy against parameters ------------------------------------------------

# method -> (sampler, pruner, objective); "limit": single-objective accuracy under --max-params
PARETO_METHODS: dict[str, tuple[str, str, str]] = {
    "mo-tpe+moasha": ("tpe", "hyperband", "accuracy,params"),  # the package's default for accuracy,params
    "mo-tpe": ("tpe", "none", "accuracy,params"),
    "nsga2": ("nsga2", "none", "accuracy,params"),
    "tpe+hyperband, --max-params": ("tpe", "hyperband", "limit"),
}
PARETO_REFERENCE = "nsga2"


def run_pareto(table: Table, space, method: str, seed: int, budget: float, max_params: int) -> list[tuple[float, float]]:
    """One search of (validation accuracy, parameters) through Optuna, as `cifar-automl search --objective
    accuracy,params` runs it (the package's sampler, its multi-objective pruner fed by the objective's
    own `ParetoPruneAtEpochEnd`), paying recorded seconds; returns (seconds, hypervolume of the finished
    trials' front; accuracy 0..1 against parameters over 1.1x the grid's largest count) after each trial. Its parameters are counted before training, as a search does."""
    import optuna

    from cifar_automl.pareto import hypervolume_2d
    from cifar_automl.search.objective import ParetoPruneAtEpochEnd, PruneAtEpochEnd
    from cifar_automl.search.objectives import Goal
    from cifar_automl.search.strategies import make_pruner, make_sampler

    sampler, pruner, objective = PARETO_METHODS[method]
    goal = Goal("accuracy", max_params=max_params) if objective == "limit" else Goal(objective)
    study = optuna.create_study(study_name=f"replay-{seed}", directions=goal.directions,
                                sampler=make_sampler(sampler, seed),
                                pruner=make_pruner(pruner, table.epochs, goal))
    ref_params = max(c.n_params for c in table.configs.values()) * 1.1
    clock, points, curve = Clock(budget), [], []

    def run(trial: optuna.Trial) -> float | list[float]:
        space.sample(trial, table.epochs)
        rec = table[trial.params]
        attrs = {"params": rec.n_params}
        trial.set_user_attr("params", rec.n_params)
        if goal.limited:
            for name, value in goal.constraints(attrs).items():
                trial.set_constraint(name, value)
            if goal.broken_limit(attrs):
                raise optuna.TrialPruned()  # known before training: it costs nothing
        prune = (ParetoPruneAtEpochEnd if goal.multi else PruneAtEpochEnd)(trial, table.epochs)
        for epoch in range(min(table.epochs, len(rec.val_accuracy))):
            clock.pay(rec.seconds[epoch], rec.val_accuracy[epoch])
            prune.on_epoch_end(epoch, {"val_accuracy": rec.val_accuracy[epoch]})  # may raise TrialPruned
            if clock.spent and epoch + 1 < table.epochs:
                raise optuna.TrialPruned()
        if rec.failed or len(rec.val_accuracy) < table.epochs:
            return math.nan
        best = max(rec.val_accuracy)
        points.append((best, rec.n_params / ref_params))  # parameters as a share of the reference point's
        return goal.values(best, attrs)

    def after(study: optuna.Study, trial) -> None:
        curve.append((clock.t, hypervolume_2d(points, ref_cost=1.0)))
        if clock.spent or len(study.trials) > 20 * len(table.configs):
            study.stop()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(run, callbacks=[after])
    return curve


def replay_pareto(args: argparse.Namespace, table: Table, space) -> None:
    params = sorted(c.n_params for c in table.configs.values())
    max_params = params[len(params) // 2]
    total = sum(sum(c.seconds) for c in table.configs.values())
    budget = total * args.budget_share
    curves = {m: [run_pareto(table, space, m, seed, budget, max_params) for seed in range(args.seeds)]
              for m in PARETO_METHODS}

    def hv_at(curve, spent):
        return max((hv for s, hv in curve if s <= spent), default=0.0)

    finals = [hv_at(c, budget) for c in curves[PARETO_REFERENCE]]
    target = 0.95 * statistics.median(finals)
    print(f"\naccuracy against parameters, {args.seeds} seeds; budget {budget / 60:.0f} min of recorded training "
          f"({args.budget_share:.0%} of the whole grid's); limit for the single-objective search: "
          f"{max_params:,} parameters (the grid's median)")
    print(f"| method | median HV at 1/3 of the budget | median HV at all of it | seeds reaching 95% of "
          f"{PARETO_REFERENCE}'s final HV | median compute to reach it (share of the budget) |")
    print("|---|---:|---:|---:|---:|")
    for m, cs in curves.items():
        hits = [next((s for s, hv in c if hv >= target and s <= budget), None) for c in cs]
        got = [h for h in hits if h is not None]
        share = f"{statistics.median(got) / budget:.2f}" if got else "-"
        print(f"| {m} | {statistics.median(hv_at(c, budget / 3) for c in cs):.4f} | "
              f"{statistics.median(hv_at(c, budget) for c in cs):.4f} | {len(got)}/{len(cs)} | {share} |")


# --- command line -----------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", action="store_true", help="train the grid for real and write the table")
    ap.add_argument("--space", type=Path, default=SPACE)
    ap.add_argument("--dataset", default="folder", choices=["folder", "fashion_mnist"],
                    help="the recording's data: the CIFAR-10 archive (folder, default) or Fashion-MNIST")
    ap.add_argument("--data-dir", type=Path, default=ARCHIVE, help="the CIFAR-10 archive (for --record)")
    ap.add_argument("--subset", type=int, default=3600, help="train+val images (for --record)")
    ap.add_argument("--epochs", type=int, default=9, help="epochs of every recorded schedule (for --record)")
    ap.add_argument("--studies-dir", type=Path, default=Path("studies") / "replay",
                    help="where --record keeps its study (resumable)")
    ap.add_argument("--schedules", type=int, nargs="*", default=None,
                    help="--record: also train each configuration for complete schedules of these epochs")
    ap.add_argument("--limit", type=int, default=None, help="record only this many configurations (a smoke test)")
    ap.add_argument("--table", type=Path, default=None, help="the recording (default: data/<space>.json.gz)")
    ap.add_argument("--warm-from", type=Path, default=None,
                    help="a recording of the same grid on other data (data/<space>-fashion_mnist.json.gz): "
                         "replays 'tpe+hyperband, warm start', which queues its best configurations first")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--methods", nargs="+", default=None, choices=list(METHODS),
                    help="methods to replay (KerasTuner's Hyperband and the default always run)")
    ap.add_argument("--verbose", action="store_true", help="a line per seed and method")
    ap.add_argument("--budget-factor", type=float, default=1.0,
                    help="give every method but KerasTuner's Hyperband this many times its budget (a longer "
                         "search; prints where each method's final best ranks instead of the ceilings)")
    ap.add_argument("--pareto", action="store_true",
                    help="also replay searches of accuracy against parameters (the multi-objective pruner)")
    ap.add_argument("--budget-share", type=float, default=0.25,
                    help="--pareto: each search's budget, as a share of the whole grid's recorded seconds")
    args = ap.parse_args()
    if args.budget_factor <= 0:
        raise SystemExit(f"error: --budget-factor must be positive, not {args.budget_factor:g}")
    if args.record:
        record(args)
    else:
        replay(args)


if __name__ == "__main__":
    main()
