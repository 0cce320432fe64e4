"""Search efficiency: cifar-automl (TPE + Hyperband pruning) vs KerasTuner's Hyperband vs random search
without pruning, on the same space file, data, epochs per model and wall-clock budget.

    python benchmarks/search_efficiency.py                    # Fashion-MNIST (Debian copy), 3 seeds
    python benchmarks/search_efficiency.py --seeds 0 1 2 3 4 --subset 6000

Per seed: KerasTuner's Hyperband (max_epochs = --epochs, factor 3, one iteration) runs to completion on
`SpaceHyperModel` (the same space file, model builder, tf.data pipeline, optimizer and schedule); its
wall time T is the budget. Then `cifar-automl search` with its defaults (TPE, Hyperband pruner, worker
processes) and a random sampler without pruning each run for T. Every epoch's validation accuracy is
time-stamped; the table gives, per method, the time to first reach KerasTuner's final best validation
accuracy, and the speed-up against KerasTuner (its time to its own best / the method's time). Each
method reports the best validation accuracy of any epoch of any trial, as KerasTuner's objective does.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402

from cifar_automl.search import SearchReporter, SearchSettings, prepare, run_search  # noqa: E402
from cifar_automl.search.kerastuner import SpaceHyperModel  # noqa: E402
from cifar_automl.study import OBJECTIVE  # noqa: E402

EVENTS: list[tuple[float, float]] = []  # (time, val accuracy) of every epoch of the running method


class EpochClock(SearchReporter):
    def __init__(self) -> None:
        super().__init__(quiet=True)

    def epoch(self, number: int, epoch: int, logs: dict) -> None:
        EVENTS.append((time.time(), float(logs.get(OBJECTIVE, math.nan))))


def run_kerastuner(settings: SearchSettings, prepared, workdir: Path) -> tuple[float, int]:
    space, splits = prepared
    epochs, seed = settings.epochs, settings.seed
    clock = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: EVENTS.append((time.time(), float((logs or {})["val_accuracy"]))))
    tuner = kt.Hyperband(
        SpaceHyperModel.from_settings(settings, space, splits), objective="val_accuracy", max_epochs=epochs,
        factor=3, hyperband_iterations=1, seed=seed, directory=str(workdir), project_name=f"kt-{seed}",
        overwrite=True, max_consecutive_failed_trials=10,
    )
    tuner.search(splits.x_train, splits.y_train, validation_data=(splits.x_val, splits.y_val),
                 callbacks=[clock], verbose=0)
    return time.time(), len(tuner.oracle.trials)


def run_ours(settings: SearchSettings, prepared, budget: float, workdir: Path, sampler: str,
             pruner: str) -> tuple[float, int]:
    settings = dataclasses.replace(settings, trials=100_000, timeout=budget, sampler=sampler, pruner=pruner,
                                   study_name=f"{sampler}-{pruner}-{settings.seed}", studies_dir=str(workdir))
    outcome = run_search(settings, prepared=prepared, reporter=EpochClock())
    return time.time(), outcome.ran


def reach_time(start: float, target: float) -> float | None:
    for t, acc in EVENTS:
        if acc >= target - 1e-9:
            return t - start
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--data-dir")
    ap.add_argument("--space", default=str(HERE / "efficiency_space.yaml"))
    ap.add_argument("--subset", type=int, default=3000, help="train + validation images (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=9, help="max epochs per model (default: %(default)s)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()

    rows = []
    for seed in args.seeds:
        # one definition of the run, for both tools: space, data, split, epochs per model, seed
        settings = SearchSettings(space=args.space, dataset=args.dataset, data_dir=args.data_dir, subset=args.subset,
                                  val_fraction=0.2, epochs=args.epochs, seed=seed)
        prepared = prepare(settings)
        with tempfile.TemporaryDirectory() as tmp:
            EVENTS.clear()
            start = time.time()
            end, n = run_kerastuner(settings, prepared, Path(tmp))
            budget = end - start
            target = max(acc for _, acc in EVENTS)
            kt_reach = reach_time(start, target)
            results = {"kerastuner-hyperband": (budget, n, target, kt_reach)}
            print(f"seed {seed}: KerasTuner Hyperband {n} trials in {budget / 60:.1f} min, best val {target:.4f} "
                  f"(first at {kt_reach / 60:.1f} min)", flush=True)
            for label, sampler, pruner in (("cifar-automl tpe+hyperband", "tpe", "hyperband"),
                                           ("random, no pruning", "random", "none")):
                EVENTS.clear()
                start = time.time()
                end, n = run_ours(settings, prepared, budget, Path(tmp), sampler, pruner)
                best = max((acc for _, acc in EVENTS), default=math.nan)
                reach = reach_time(start, target)
                results[label] = (end - start, n, best, reach)
                print(f"seed {seed}: {label}: {n} trials in {(end - start) / 60:.1f} min, best val {best:.4f}, "
                      f"reached {target:.4f} " + (f"at {reach / 60:.1f} min" if reach is not None else "never"),
                      flush=True)
        for label, (wall, n, best, reach) in results.items():
            speedup = kt_reach / reach if reach else None
            rows.append((seed, label, wall, n, best, reach, speedup))

    print()
    print(f"{args.dataset}, {args.subset} images (80/20 train/val), space {Path(args.space).name}, "
          f"max {args.epochs} epochs per model; budget = KerasTuner Hyperband's own wall time")
    print()
    print("| seed | method | wall min | trials | best val acc | min to KerasTuner's best | speed-up vs KerasTuner |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for seed, label, wall, n, best, reach, speedup in rows:
        r = f"{reach / 60:.2f}" if reach is not None else "not reached"
        s = f"{speedup:.2f}x" if speedup else "-"
        print(f"| {seed} | {label} | {wall / 60:.1f} | {n} | {best:.4f} | {r} | {s} |")
    print()
    for label in ("cifar-automl tpe+hyperband", "random, no pruning"):
        ups = [r[6] for r in rows if r[1] == label]
        reached = [u for u in ups if u]
        gm = math.exp(statistics.fmean(math.log(u) for u in reached)) if reached else math.nan
        print(f"{label}: reached KerasTuner's best in {len(reached)}/{len(ups)} seeds; geometric-mean speed-up "
              f"over those {gm:.2f}x")


if __name__ == "__main__":
    main()
