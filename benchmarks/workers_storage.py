"""Scale-out figures on this machine: trials per hour with 1 vs 2 local workers, and the storage cost
per trial of SQLite, Optuna's journal file and PostgreSQL.

    python benchmarks/workers_storage.py [--postgres postgresql://user:pw@127.0.0.1/db] [--seconds 180]

Part 1 writes trials shaped like a search's (config, curves, timings as user attributes, one
intermediate value per epoch) through Optuna's ask/tell with no training, and prints milliseconds per
trial for each storage. Part 2 runs the `tiny` space on Fashion-MNIST (Debian's copy, 3,000 images)
for a fixed wall time with `--workers 1` and `--workers 2` and prints finished trials per hour.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def storage_overhead(url: str, trials: int, epochs: int = 10) -> float:
    """Milliseconds per trial spent in the storage for a search-shaped trial."""
    import optuna

    from cifar_automl.search.space import load_space
    from cifar_automl.study import open_storage

    space = load_space("all")
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name=f"overhead-{time.time_ns()}", direction="maximize")
    start = time.perf_counter()
    for i in range(trials):
        trial = study.ask()
        cfg = space.sample(trial, epochs)
        trial.set_user_attr("config", cfg.to_dict())
        for key in ("params", "flops", "rss_mb", "worker", "cifar_automl_version"):
            trial.set_user_attr(key, i)
        curve = [0.1 + 0.05 * e for e in range(epochs)]
        for e, v in enumerate(curve):
            trial.report(v, e)
            trial.should_prune()
        for key in ("history", "epoch_seconds", "train_seconds"):
            trial.set_user_attr(key, {"val_accuracy": curve, "loss": curve} if key == "history" else curve)
        study.tell(trial, max(curve))
    return 1000 * (time.perf_counter() - start) / trials


def trials_per_hour(workers: int, seconds: float, studies_dir: str) -> tuple[float, int]:
    from cifar_automl.search import SearchSettings, prepare, run_search

    settings = SearchSettings(
        space="tiny", dataset="fashion_mnist", subset=3000, epochs=2, trials=10_000, timeout=seconds,
        pruner="none", studies_dir=studies_dir, study_name=f"workers{workers}", workers=workers,
    )
    start = time.perf_counter()
    outcome = run_search(settings, prepared=prepare(settings))
    wall = time.perf_counter() - start
    return outcome.finished / wall * 3600, outcome.finished


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--postgres", help="a PostgreSQL URL to include in the storage comparison")
    p.add_argument("--overhead-trials", type=int, default=100)
    p.add_argument("--seconds", type=float, default=180, help="wall time of each worker run")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/overhead.db", "journal": f"{tmp}/overhead.log"}
        if args.postgres:
            urls["postgresql"] = args.postgres
        print(f"storage cost per search-shaped trial ({args.overhead_trials} trials, 10 epochs each):")
        for name, url in urls.items():
            print(f"  {name:<11} {storage_overhead(url, args.overhead_trials):7.1f} ms/trial", flush=True)
        print(f"trials per hour, tiny space, Fashion-MNIST 3,000 images, 2 epochs, {args.seconds:.0f} s runs:")
        for workers in (1, 2):
            rate, n = trials_per_hour(workers, args.seconds, tmp)
            print(f"  --workers {workers}: {rate:7.0f} trials/hour ({n} finished)", flush=True)


if __name__ == "__main__":
    main()
