"""The question users ask: for the same wall time, does `auto` beat no search, and KerasTuner?

    python benchmarks/search_value.py --budget 30m --seeds 0 1 2                          # CIFAR-10 archive
    python benchmarks/search_value.py --budget 2h --seeds 0 1 2 --dataset fashion_mnist

Per seed, three runs of the same budget, space, data and held-out test split (the carved one for the
CIFAR-10 archive, the official one for Fashion-MNIST), one after another:
- (a) `auto`: `run_auto` with --search-share, or its own share when none is given (its search, its
  retrain plan);
- (b) no search: `auto --search-share 0`, the space's defaults retrained for the whole budget;
- (c) KerasTuner: its `Hyperband` on the same space (`SpaceHyperModel`: the same models, training and
  data) for the same search share (without --search-share, the most `auto` would take), stopped when
  the share is spent, then its best configuration retrained by the same planner for the rest of the
  budget.
Printed: each run's test accuracy and minutes, then per method the mean, the spread (standard
deviation over seeds) and the minutes used. Each run is appended to `data/search_value.jsonl` as it
ends (with date, commit, CPU and the machine's speed; one that was stopped or failed is not), and a run
already there is not repeated: the grid (3 seeds x 2 data sets x 2 budgets x 3 methods, about 45 hours on 2 cores)
fills over several sittings, and `--table-only` prints what it holds. A space with defaults is needed
for (b): `airbench`, `plain`, `inception` or `residual`.

Sittings can land on different machines, and CPUs sold under one name ("AMD EPYC") have trained the
same epoch 6x faster or slower from one day to the next: a run on a slower machine gets fewer epochs in
the same budget, which would read as a spread between seeds. Before it runs anything, the script times
a training step of a fixed small network (`step_seconds`) and records it with each run; it refuses to
add runs to a cell whose runs were timed more than `MACHINE_TOLERANCE` times faster or slower
(`--any-machine` adds them anyway, and the table then says by how much its machines differ).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import TrialState, create_trial  # noqa: E402

from cifar_automl.auto import (  # noqa: E402
    FILL_SHARE,
    SEARCH_SHARE,
    default_search_share,
    parse_duration,
    plan_budget,
    retrain_plan_of,
    run_auto,
    runs_known_first,
)
from cifar_automl.results import RetrainSettings, load_study_data, retrain_trial  # noqa: E402
from cifar_automl.search import SearchSettings, prepare  # noqa: E402
from cifar_automl.search.kerastuner import SpaceHyperModel  # noqa: E402
from cifar_automl.training import EpochRecorder, images_per_epoch, matching_tta  # noqa: E402

ARCHIVE = HERE.parent.parent / "shared" / "datasets" / "cifar10-train-jpeg.tar.gz"
METHODS = ("auto", "no search", "KerasTuner + retrain")
MACHINE_TOLERANCE = 1.5  # runs of one cell come from machines within this factor of each other's speed


class SearchShareSpent(BaseException):
    """Raised between batches once KerasTuner's search share is spent (KerasTuner catches `Exception`
    as a failed trial; this ends its search instead)."""


class TimedHyperModel(SpaceHyperModel):
    """`SpaceHyperModel` that keeps each configuration's seconds per epoch, in training and in all, which
    the retrain plan reads as a search trial's `train_seconds` and `epoch_seconds` (their difference,
    the validation pass, times the test pass)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.train_seconds: dict[str, list[float]] = {}
        self.epoch_seconds: dict[str, list[float]] = {}

    def fit(self, hp, model, x, y, validation_data=None, callbacks=(), **kwargs):
        recorder = EpochRecorder(images_per_epoch(len(x), self.config(hp).train.batch_size))
        try:
            return super().fit(hp, model, x, y, validation_data=validation_data,
                               callbacks=[*callbacks, recorder], **kwargs)
        finally:
            key = self.config(hp).to_json()
            self.train_seconds[key] = self.train_seconds.get(key, []) + list(recorder.result.train_seconds)
            self.epoch_seconds[key] = self.epoch_seconds.get(key, []) + list(recorder.result.epoch_seconds)


def run_kerastuner(settings: SearchSettings, budget: float, share: float, workdir: Path) -> dict:
    start = time.time()
    plan = plan_budget(budget, share)
    space, splits = prepare(settings)
    hypermodel = TimedHyperModel(space, splits, epochs=settings.epochs, seed=settings.seed)
    tuner = kt.Hyperband(hypermodel, objective="val_accuracy", max_epochs=settings.epochs, factor=3,
                         hyperband_iterations=1000, seed=settings.seed, directory=str(workdir / "kt"),
                         project_name="search", overwrite=True, max_consecutive_failed_trials=10)
    deadline = start + plan.search

    def stop_at_deadline(batch, logs=None):
        if time.time() >= deadline:
            raise SearchShareSpent

    try:
        tuner.search(splits.x_train, splits.y_train, validation_data=(splits.x_val, splits.y_val), verbose=0,
                     callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=stop_at_deadline)])
    except SearchShareSpent:
        pass
    finished = tuner.oracle.get_best_trials(1)
    if not finished:
        return {"accuracy": math.nan, "minutes": (time.time() - start) / 60, "note": "no KerasTuner trial finished"}
    best = finished[0]
    cfg = hypermodel.config(best.hyperparameters)
    # the best configuration as a study trial, so that the package's retrain plans and trains it
    study = optuna.create_study(storage=f"sqlite:///{workdir / 'kerastuner.db'}", study_name="kerastuner",
                                direction="maximize")
    study.set_user_attr("search_settings", settings.data_settings())
    study.set_user_attr("data", splits.info)
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=float(best.score), user_attrs={
        "config": cfg.to_dict(), "train_seconds": hypermodel.train_seconds.get(cfg.to_json(), []),
        "epoch_seconds": hypermodel.epoch_seconds.get(cfg.to_json(), [])}))
    trial = study.trials[0]
    rs = RetrainSettings(study_name="kerastuner", storage=f"sqlite:///{workdir / 'kerastuner.db'}",
                         studies_dir=str(workdir), seed=settings.seed, cache_dir=settings.cache_dir, progress=False)
    everything, ss = load_study_data(study, rs)
    left = plan.seconds_left(start)
    choice = retrain_plan_of(trial, left, retrain_images=len(everything.x_train) + len(everything.x_val),
                             search_train_images=len(splits.x_train), search_val_images=len(splits.x_val),
                             test_images=len(everything.y_test),
                             slack=FILL_SHARE * plan.total, searched_epochs=settings.epochs,
                             reason="KerasTuner's best")
    tta = matching_tta(cfg.train.augment)
    result = retrain_trial(study, trial, everything, ss, dataclasses.replace(
        rs, trial=0, epochs=choice.epochs, steps=choice.steps, tta=tta,
        time_limit=choice.time_limit, max_epochs=choice.max_epochs,
        test_seconds=choice.test_seconds))  # re-sized after epoch 1, as `auto` does
    return {"accuracy": result.metrics["accuracy"], "minutes": (time.time() - start) / 60,
            "note": f"{len(tuner.oracle.trials)} KerasTuner trials; best val {best.score:.4f}, retrained for {choice.length}"}


def run_ours(settings: SearchSettings, budget: float, share: float, workdir: Path, name: str) -> dict:
    start = time.time()
    lines: list[str] = []
    outcome = run_auto(dataclasses.replace(settings, studies_dir=str(workdir), study_name=name), budget, share,
                       say=lines.append)
    minutes = (time.time() - start) / 60
    if outcome.result is None:
        return {"accuracy": math.nan, "minutes": minutes, "note": "; ".join(lines) or "the search ended early"}
    return {"accuracy": outcome.result.metrics["accuracy"], "minutes": minutes, "note": lines[-1]}


RESULTS = HERE / "data" / "search_value.jsonl"
# what makes two runs the same cell of the table (beside the method and the seed; "no search" has no share)
CELL = ("dataset", "data", "space", "budget_minutes", "search_share", "subset", "epochs")


def same_cell(run: dict, cell: dict) -> bool:
    return all(run.get(k) == cell[k] for k in CELL if not (k == "search_share" and run["method"] == "no search"))


def kept_name(cell: dict, seed: int, method: str) -> str:
    """The folder under --keep of one run: data set, budget, seed and method."""
    return f"{cell['dataset']}-{cell['budget_minutes']:g}m-seed{seed}-{method.replace(' + ', '-').replace(' ', '-')}"


def _machine() -> dict:
    from cifar_automl.runtime import cpu_name, source_commit

    return {"date": datetime.date.today().isoformat(), "commit": source_commit(), "cpu": cpu_name()}


def step_seconds(steps: int = 20) -> float:
    """This machine's speed for the table: the median seconds of a training step of a fixed small CNN
    (3 convolutions, a batch of 128 random 32x32 images), after 3 steps of warm-up; about 1-10 s in all."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((128, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, 128)
    layers = [keras.Input((32, 32, 3))]
    for width in (32, 64, 128):
        layers += [keras.layers.Conv2D(width, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D()]
    model = keras.Sequential([*layers, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for _ in range(3):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine_spread(runs: list[dict]) -> float:
    """How many times slower the slowest machine of these runs is than the fastest (1.0 when fewer than
    two runs were timed: runs recorded before the timing have none)."""
    timed = [r["step_seconds"] for r in runs if r.get("step_seconds")]
    return max(timed) / min(timed) if len(timed) > 1 else 1.0


def load_runs(path: Path) -> list[dict]:
    """The runs recorded so far (one JSON object a line)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(runs: list[dict], methods: Sequence[str]) -> list[str]:
    """Markdown: per method, the mean test accuracy, its spread (standard deviation over seeds), each
    seed's and the minutes used."""
    lines = ["| method | seeds | test accuracy (mean) | spread (sd) | per seed | minutes (mean) |",
             "|---|---:|---:|---:|---|---:|"]
    for method in methods:
        rs = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        if not rs:
            continue
        accs = [r["accuracy"] for r in rs]
        sd = statistics.stdev(accs) if len(accs) > 1 else math.nan
        spread = "-" if math.isnan(sd) else f"{100 * sd:.2f}"
        per_seed = ", ".join(f"{r['seed']}: {100 * r['accuracy']:.1f}" for r in rs)
        lines.append(f"| {method} | {len(rs)} | {100 * statistics.mean(accs):.2f}% | {spread} | {per_seed} | "
                     f"{statistics.mean(r['minutes'] for r in rs):.1f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=parse_duration, default=parse_duration("30m"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--dataset", default="folder", help="folder (the CIFAR-10 archive) or fashion_mnist")
    ap.add_argument("--data-dir", default=str(ARCHIVE))
    ap.add_argument("--space", default="airbench")
    ap.add_argument("--subset", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--search-share", type=float, default=None,
                    help="(a) and (c): the share of the budget spent searching (default: auto's own, which after "
                         "a space's defaults is sized on them, and for KerasTuner the most auto would take: "
                         f"{default_search_share(True):.2f} of the budget with defaults, {SEARCH_SHARE:g} without)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="the runs, one JSON line each (default: benchmarks/data/search_value.jsonl): a run "
                         "already there is not run again, so the grid can be filled over several sittings")
    ap.add_argument("--table-only", action="store_true", help="print the table of the runs recorded, run nothing")
    ap.add_argument("--any-machine", action="store_true",
                    help=f"add runs to a cell whose runs came from a machine more than {MACHINE_TOLERANCE:g}x "
                         "faster or slower than this one (by default refused: the table would mix speeds)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep each run's study, retrained model and report in a new folder under this one (by "
                         "default they go in a temporary folder): `cifar-automl report` reads them afterwards")
    args = ap.parse_args()
    # without --search-share, auto sizes its own search (after the defaults: 10 trials like them, at most
    # default_search_share of the budget) and KerasTuner searches for that most
    kt_share = (default_search_share(runs_known_first(SearchSettings(space=args.space)))
                if args.search_share is None else args.search_share)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cell = {"dataset": args.dataset, "data": Path(args.data_dir).name if args.dataset == "folder" else None,
            "space": args.space, "budget_minutes": round(args.budget / 60, 2),
            "search_share": "default" if args.search_share is None else args.search_share,
            "subset": args.subset, "epochs": args.epochs}
    machine = _machine()  # the commit that runs, read before a later commit can move HEAD
    for seed in [] if args.keep is None or args.table_only else args.seeds:
        for method in args.methods:
            if (args.keep / kept_name(cell, seed, method)).exists():
                raise SystemExit(f"error: {args.keep / kept_name(cell, seed, method)} exists: move it away or give "
                                 "another --keep")
    todo = [(seed, method) for seed in ([] if args.table_only else args.seeds) for method in args.methods
            if not any(same_cell(r, cell) and r["seed"] == seed and r["method"] == method
                       for r in load_runs(args.results))]
    if todo:  # this machine's speed, against that of the machines that ran the cell so far
        machine["step_seconds"] = round(step_seconds(), 5)
        known = sorted({r["step_seconds"] for r in load_runs(args.results) if same_cell(r, cell) and r.get("step_seconds")})
        mine = machine["step_seconds"]
        apart = max(known[-1] / mine, mine / known[0]) if known else 1.0  # from the farthest of them
        if apart > MACHINE_TOLERANCE and not args.any_machine:
            raise SystemExit(f"error: this machine takes {mine:.3f} s for the timing step, the runs of this cell "
                             f"took {', '.join(f'{k:.3f}' for k in known)} s (up to {apart:.1f}x apart): its figures "
                             "would mix machines of different speeds. Record elsewhere with --results, or add "
                             "--any-machine")
    for seed in [] if args.table_only else args.seeds:
        settings = SearchSettings(space=args.space, dataset=args.dataset, subset=args.subset, epochs=args.epochs,
                                  seed=seed, data_dir=args.data_dir if args.dataset == "folder" else None)
        for method in args.methods:
            if any(same_cell(r, cell) and r["seed"] == seed and r["method"] == method
                   for r in load_runs(args.results)):
                print(f"seed {seed} {method:22s} already in {args.results.name}", flush=True)
                continue
            keep = None if args.keep is None else args.keep / kept_name(cell, seed, method)
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp) if keep is None else keep
                work.mkdir(parents=True, exist_ok=True)
                if method == "auto":
                    run = run_ours(settings, args.budget, args.search_share, work, f"auto-{seed}")
                elif method == "no search":
                    run = run_ours(settings, args.budget, 0.0, work, f"defaults-{seed}")
                else:
                    run = run_kerastuner(settings, args.budget, kt_share, work)
            print(f"seed {seed} {method:22s} test {run['accuracy']:.4f} in {run['minutes']:.1f} min | {run['note']}",
                  flush=True)
            if not math.isfinite(run["accuracy"]):  # stopped or failed: not a result, run again next time
                continue
            run = {**cell, "seed": seed, "method": method, **run, **machine}
            args.results.parent.mkdir(parents=True, exist_ok=True)
            with args.results.open("a") as f:  # each run as it ends: an interrupted grid keeps what it ran
                f.write(json.dumps(run) + "\n")
    runs = [r for r in load_runs(args.results) if same_cell(r, cell) and (args.table_only or r["seed"] in args.seeds)]
    share = (f"auto's own (KerasTuner's {kt_share:.2f})" if args.search_share is None else f"{args.search_share:g}")
    print(f"\n{args.dataset}, space {args.space}, budget {args.budget / 60:.0f} min, search share {share}, "
          f"subset {args.subset}, {args.epochs} epochs per trial")
    print("\n".join(table(runs, args.methods)))
    # machines: over the whole cell (of the methods shown), whichever seeds this sitting printed
    whole = [r for r in load_runs(args.results) if same_cell(r, cell) and r["method"] in args.methods]
    spread = machine_spread(whole)
    if spread > MACHINE_TOLERANCE:
        print(f"warning: this cell's runs came from machines {spread:.1f}x apart in speed (the timing step's "
              "seconds in each run's step_seconds): a slower machine trains fewer epochs in the same budget")
    untimed = sum(1 for r in whole if not r.get("step_seconds"))
    if untimed and len(whole) > untimed:
        print(f"note: {untimed} of this cell's runs were recorded before runs were timed: their machine's speed is "
              "unknown")


if __name__ == "__main__":
    main()
