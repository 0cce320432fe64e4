"""Samplers on numeric test functions: long searches where every parameter is a number (or most are).

    python benchmarks/numeric.py                    # 20 seeds, 100 trials, every method
    python benchmarks/numeric.py --seeds 5 --methods tpe tpe-hill

The replay grid (benchmarks/replay.py) and NAS-Bench-201 (benchmarks/nb201.py) are all choices; the
spaces a user writes have learning rates, decays and dropouts. Three functions to maximise, each a
classic of black-box optimisation, no learning curves and no defaults:
- `hartmann6`: Hartmann's six-dimensional function on [0, 1]^6 (maximum 3.32237), four narrow peaks;
- `rastrigin4`: Rastrigin's function on [-5, 5]^4, shifted by 0.3 (maximum 0), a grid of local optima;
- `mixed`: a space shaped like a training recipe (two log-scaled rates, a dropout, a width choice,
  an activation, a depth), a smooth bowl with a second bump along the learning rate.
Printed per function and method: the best value after 10, 30 and all trials, mean over the seeds.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cifar_automl.search.strategies import PerTrialSeed, make_sampler, tpe_local  # noqa: E402

_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
               [17, 8, 0.05, 10, 0.1, 14]])
_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                      [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(trial: optuna.Trial) -> float:
    x = np.array([trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)])
    return float(np.sum(_ALPHA * np.exp(-np.sum(_A * (x - _P) ** 2, axis=1))))


def rastrigin4(trial: optuna.Trial) -> float:
    z = np.array([trial.suggest_float(f"x{i}", -5.0, 5.0) for i in range(4)]) - 0.3
    return -float(10 * len(z) + np.sum(z * z - 10 * np.cos(2 * math.pi * z)))


def mixed(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)
    wd = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.6)
    width = trial.suggest_categorical("width", [16, 32, 64, 128])
    activation = trial.suggest_categorical("activation", ["relu", "gelu", "silu"])
    depth = trial.suggest_int("depth", 1, 8)
    score = -(math.log10(lr) + 1.7) ** 2 - 0.3 * (math.log10(wd) + 3.5) ** 2 - 4 * (dropout - 0.25) ** 2
    score += {16: -0.6, 32: -0.2, 64: 0.0, 128: -0.1}[width] + {"relu": 0.0, "gelu": 0.05, "silu": -0.3}[activation]
    return score - 0.05 * (depth - 5) ** 2 + 0.3 * math.sin(3 * math.log10(lr))


FUNCTIONS: dict[str, Callable[[optuna.Trial], float]] = {
    "hartmann6": hartmann6, "rastrigin4": rastrigin4, "mixed": mixed,
}


def _local(share: float, start: int = 1) -> Callable[[int], optuna.samplers.BaseSampler]:
    return lambda seed: PerTrialSeed(functools.partial(tpe_local, share=share, start=start), seed)


METHODS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    **{name: functools.partial(make_sampler, name) for name in ("tpe", "tpe-local", "tpe-hill")},
    # tpe-hill climbing from the first complete trial, or from the best of TPE's 10 start-up trials
    "tpe-hill-after-1": _local(1.0, start=1),
    "tpe-hill-after-10": _local(1.0, start=10),
}


def run(function: Callable[[optuna.Trial], float], make: Callable[[int], optuna.samplers.BaseSampler],
        seed: int, trials: int) -> list[float]:
    """The best value after each trial."""
    study = optuna.create_study(direction="maximize", sampler=make(seed))
    study.optimize(function, n_trials=trials)
    return list(np.maximum.accumulate([t.value for t in study.trials]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    marks = sorted({min(10, args.trials), min(30, args.trials), args.trials})
    print(f"best value after {', '.join(map(str, marks))} trials, mean over {args.seeds} seeds (higher is better)")
    print("| function | method | " + " | ".join(f"after {m}" for m in marks) + " | seconds per search |")
    print("|---|---|" + "---:|" * (len(marks) + 1))
    for fname, function in FUNCTIONS.items():
        for name in args.methods:
            start = time.time()
            curves = [run(function, METHODS[name], seed, args.trials) for seed in range(args.seeds)]
            cells = " | ".join(f"{statistics.mean(c[m - 1] for c in curves):.3f}" for m in marks)
            print(f"| {fname} | {name} | {cells} | {(time.time() - start) / args.seeds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
