"""Test accuracy of a space's default configuration after E epochs on all training data: what the recipe
alone buys for each epoch budget, without a search, with the package's own builder, training loop and
test-time augmentation.

    python benchmarks/recipe_epochs.py --epochs 10 --dataset folder \
        --data-dir ../shared/datasets/cifar10-train-jpeg.tar.gz          # airbench space, ~22 min here
    python benchmarks/recipe_epochs.py --space fast_small --dataset fashion_mnist --epochs 15

Trains on the train + validation pool (40,000 CIFAR-10 images: the test split is the same stratified
10,000 the search never sees) and prints one row per run: epochs, minutes, training images/s, and test
accuracy without test-time augmentation, with flips, and with flips and 1-pixel moves.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="airbench")
    ap.add_argument("--epochs", type=int, nargs="+", default=[10])
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import keras
    import numpy as np
    import optuna

    from cifar_automl.data import channel_stats, load_dataset, make_splits
    from cifar_automl.models import build_model
    from cifar_automl.search.space import load_space
    from cifar_automl.training import fit, predict_probs

    space = load_space(args.space)
    splits = make_splits(load_dataset(args.dataset, args.data_dir), val_fraction=0.1, seed=args.seed)
    x = np.concatenate([splits.x_train, splits.x_val])
    y = np.concatenate([splits.y_train, splits.y_val])
    mean, std = channel_stats(x)
    print(f"{args.space} defaults on {len(x):,} training images, {len(splits.y_test):,} test images")
    print("| epochs | minutes | train images/s | test | flip TTA | flip+translate TTA |")
    print("|---:|---:|---:|---:|---:|---:|")
    for epochs in args.epochs:
        cfg = space.sample(optuna.trial.FixedTrial(space.default_params()), epochs)
        keras.utils.set_random_seed(args.seed)
        model = build_model(cfg.arch, x.shape[1:], len(splits.class_names), mean=mean, std=std, sample=x)
        start = time.perf_counter()
        result = fit(model, x, y, cfg.train, seed=args.seed)
        minutes = (time.perf_counter() - start) / 60
        acc = {tta: float((predict_probs(model, splits.x_test, tta=tta).argmax(1) == splits.y_test).mean())
               for tta in ("none", "flip", "flip_translate")}
        print(f"| {epochs} | {minutes:.1f} | {result.images_per_second:.0f} | {acc['none']:.4f} | "
              f"{acc['flip']:.4f} | {acc['flip_translate']:.4f} |", flush=True)
        keras.backend.clear_session(free_memory=True)


if __name__ == "__main__":
    main()
