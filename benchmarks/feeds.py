"""Input feeds per backend, measured: images/s of each feed alone and of training through it.

    python benchmarks/feeds.py                          # every installed backend, ~4 min on 2 cores
    python benchmarks/feeds.py --backend tensorflow     # one backend

Each backend runs in a fresh process (KERAS_BACKEND is read when Keras starts). On random 32x32x3
uint8 arrays (CIFAR-10's shape), for each feed the backend can use (`tf.data` needs TensorFlow's
backend; `arrays` runs on all):

- input only: training batches of 512 pulled from the feed, no model (`altflip_crop2`: airbench's
  flips and 2-pixel crops; `flip_shift`: Keras' interpolated RandomTranslation);
- training: the package's own `training.fit` of a small residual network (`base_filters` 16, 2
  stages, batch norm, Adam, batch 128, `flip_shift`) on 5,120 images, images/s of the last of 3
  epochs (the first traces the graph).

The package's default is the feed that measures faster on the backend (pipeline.default_feed).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")


def choose(fn, feed: str) -> dict:
    """`feed=` for a function that takes it (a commit from before the feeds had tf.data only)."""
    return {"feed": feed} if "feed" in inspect.signature(fn).parameters else {}


def measure(backend: str) -> list[dict]:
    import keras
    import numpy as np

    from cifar_automl.config import ArchConfig, TrainConfig
    from cifar_automl.models import build_model
    from cifar_automl.training import fit, make_dataset

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5120, 32, 32, 3)).astype(np.uint8)
    y = rng.integers(0, 10, 5120)
    feeds = ["tf.data", "arrays"] if backend == "tensorflow" else ["arrays"]
    if "feed" not in inspect.signature(make_dataset).parameters:  # a commit from before the feeds
        feeds = ["tf.data"]
    rows = []
    for feed in feeds:
        for augment in ("altflip_crop2", "flip_shift"):
            it = iter(make_dataset(x, y, 10, 512, training=True, augment=augment, seed=0, **choose(make_dataset, feed)))
            next(it)
            start, batches = time.perf_counter(), 40
            for _ in range(batches):
                next(it)
            rows.append({"backend": backend, "feed": feed, "what": f"input only, {augment}",
                         "images_per_s": batches * 512 / (time.perf_counter() - start)})
        model = build_model(ArchConfig(block="residual", stages=2, base_filters=16, batch_norm=True), (32, 32, 3), 10)
        cfg = TrainConfig(optimizer="adam", learning_rate=1e-3, batch_size=128, epochs=3, augment="flip_shift")
        result = fit(model, x, y, cfg, **choose(fit, feed))
        rows.append({"backend": backend, "feed": feed, "what": "training (small residual net, flip_shift)",
                     "images_per_s": result.train_images / result.train_seconds[-1]})
        keras.backend.clear_session()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", nargs="+", choices=BACKENDS,
                    default=[b for b in BACKENDS if importlib.util.find_spec(b)])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.backend[0])))
        return
    rows = []
    for backend in args.backend:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        run = subprocess.run([sys.executable, __file__, "--child", "--backend", backend], env=env,
                             capture_output=True, text=True)
        if run.returncode != 0:
            print(f"{backend}: failed: {run.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows += json.loads(run.stdout.strip().splitlines()[-1])
    print("| backend | feed | measured | images/s |\n|---|---|---|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['feed']} | {r['what']} | {r['images_per_s']:,.0f} |")


if __name__ == "__main__":
    main()
