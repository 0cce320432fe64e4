"""Trial overhead of the search: in-trial training speed vs a bare `model.fit`, wall time outside
training, and memory over many trials.

    python benchmarks/search_overhead.py                       # Fashion-MNIST (Debian copy), 30 trials
    python benchmarks/search_overhead.py --dataset folder --data-dir ../shared/datasets/cifar10-train-jpeg.tar.gz

Every trial trains the same fixed network (benchmarks/overhead_space.yaml, no pruning), so the numbers
isolate what the search adds: Optuna storage writes, model building, tf.data, callbacks, clean-up.
Prints images/s inside trials vs bare `model.fit` on in-memory arrays (steady-state epochs only, the
first epoch of each includes graph tracing), the share of wall time outside epochs, and RSS after
trials 1, 10 and 30 (and the last).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cifar_automl.data import load_dataset, make_splits  # noqa: E402
from cifar_automl.search import SearchReporter, SearchSettings, run_search  # noqa: E402
from cifar_automl.search.space import load_space  # noqa: E402


class TrialPrinter(SearchReporter):
    def __init__(self) -> None:
        super().__init__(quiet=True)

    def trial(self, study, t) -> None:
        print(f"  trial {t.number:>3} {t.state.name.lower():<8} worker rss at start "
              f"{t.user_attrs.get('rss_mb', float('nan')):7.1f} MB", flush=True)


def bare_fit_images_per_second(splits, cfg, mean, std, epochs: int) -> float:
    import keras

    from cifar_automl.models import build_model
    from cifar_automl.training import compile_model

    model = build_model(cfg.arch, splits.x_train.shape[1:], len(splits.class_names), mean=mean, std=std)
    steps = int(np.ceil(len(splits.x_train) / cfg.train.batch_size))
    compile_model(model, cfg.train, steps)
    n = len(splits.class_names)
    x = splits.x_train.astype("float32")
    y = keras.utils.to_categorical(splits.y_train, n)
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    model.fit(x, y, batch_size=cfg.train.batch_size, epochs=epochs, callbacks=[Timer()], verbose=0)
    return len(x) / statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--data-dir")
    p.add_argument("--subset", type=int, default=6000)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--trials-per-process", type=int, default=SearchSettings.trials_per_process,
                   help="0 = all trials in one process (shows TensorFlow's per-model memory growth)")
    args = p.parse_args()

    from cifar_automl.runtime import configure_devices
    from cifar_automl.search.objective import Objective

    print(configure_devices())
    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    splits = make_splits(ds, val_fraction=0.2, subset=args.subset, seed=0)
    space = load_space(HERE / "overhead_space.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        settings = SearchSettings(
            space=str(HERE / "overhead_space.yaml"), trials=args.trials, epochs=args.epochs,
            pruner="none", sampler="random", studies_dir=tmp, trials_per_process=args.trials_per_process,
        )
        reporter = TrialPrinter()
        start = time.perf_counter()
        outcome = run_search(settings, prepared=(space, splits), reporter=reporter)
        wall = time.perf_counter() - start
        trials = outcome.study.get_trials(deepcopy=False)
    epoch_total = sum(sum(t.user_attrs["epoch_seconds"]) for t in trials)
    n_train = len(splits.x_train)
    steady = [n_train / s for t in trials for s in t.user_attrs["train_seconds"][1:]]
    in_trial = statistics.median(steady)
    objective = Objective(space, splits, args.epochs, 0)
    cfg = space.sample(_Fixed(), args.epochs)
    bare = bare_fit_images_per_second(splits, cfg, objective.mean, objective.std, args.epochs)
    # RSS of the training process as each trial starts (so after the previous trial's clean-up)
    rss = [t.user_attrs["rss_mb"] for t in trials]
    print()
    print(f"data: {args.dataset}, {n_train} train / {len(splits.x_val)} val images, "
          f"{args.trials} trials x {args.epochs} epochs, params {trials[0].user_attrs['params']:,}, "
          f"{args.trials_per_process or 'all'} trials per worker process")
    print(f"images/s inside trials (median, steady epochs): {in_trial:8.0f}")
    print(f"images/s bare model.fit on arrays:              {bare:8.0f}")
    print(f"ratio in-trial / bare:                          {in_trial / bare:8.3f}")
    print(f"wall time {wall:.1f}s, inside epochs {epoch_total:.1f}s: "
          f"overhead outside training {100 * (1 - epoch_total / wall):.1f}%")
    print("RSS MB of the training process at the start of trial " + ", ".join(
        f"{k}: {rss[k - 1]:.0f}" for k in (1, 2, 10, 11, 30) if k <= len(rss)))
    block = args.trials_per_process or len(rss)
    peaks = [max(rss[i:i + block]) for i in range(0, len(rss), block)]
    print("peak RSS MB per worker process (trials " + ", ".join(
        f"{i * block + 1}-{min(len(rss), (i + 1) * block)}: {p:.0f}" for i, p in enumerate(peaks)) + ")")
    if len(peaks) > 1:
        print(f"peak RSS growth, first -> last worker: {100 * (peaks[-1] / peaks[0] - 1):+.1f}%")
    else:
        print(f"RSS growth trial 2 -> last: {100 * (rss[-1] / rss[1] - 1):+.1f}% "
              f"({(rss[-1] - rss[1]) / max(1, len(rss) - 2):.1f} MB per trial)")

class _Fixed:
    """The overhead space has no choices but `augment`: answer with its only value."""

    def suggest_categorical(self, name, choices):
        return choices[0]


if __name__ == "__main__":
    main()
