"""CPU speed knobs, measured: training images/s of fixed models under each TensorFlow setting.

    python benchmarks/cpu_knobs.py                 # all settings, two models, ~10 min on 2 cores
    python benchmarks/cpu_knobs.py --images 2048   # quicker, noisier

Each setting runs in a fresh process (oneDNN and thread pools are fixed when TensorFlow starts), trains
on random 32x32x3 arrays through the package's own `train.fit` (tf.data pipeline, flip + shift
augmentation, the optimizer and loss the search uses), and times steady-state epochs only (the first
epoch traces the graph). Settings:

- default: TensorFlow's own (oneDNN on, thread pools sized by TensorFlow)
- onednn-off: TF_ENABLE_ONEDNN_OPTS=0
- threads-2x1 / threads-1x1: intra-op x inter-op thread pool sizes
- jit: XLA (`model.compile(jit_compile=True)`)
- bf16: Keras' `mixed_bfloat16` policy (this CPU has AVX-512 BF16 / AMX)

The package keeps only settings that measured faster (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SETTINGS = {
    "default": {},
    "onednn-off": {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    "threads-2x1": {"intra": 2, "inter": 1},
    "threads-1x1": {"intra": 1, "inter": 1},
    "jit": {"jit": True},
    "bf16": {"policy": "mixed_bfloat16"},
}

MODELS = {
    # the search's small end: a 3-stage plain CNN at widths 32/64/128 (~290k params)
    "plain-32": {"block": "plain", "stages": 3, "base_filters": 32},
    # a residual net at the widths fast CIFAR recipes use on a CPU budget
    "residual-32": {"block": "residual", "stages": 3, "base_filters": 32, "blocks_per_stage": 1},
}


def child(args: argparse.Namespace) -> None:
    setting = SETTINGS[args.setting]
    import tensorflow as tf

    if "intra" in setting:
        tf.config.threading.set_intra_op_parallelism_threads(setting["intra"])
        tf.config.threading.set_inter_op_parallelism_threads(setting["inter"])
    import keras
    import numpy as np

    sys.path.insert(0, str(HERE.parent))
    from cifar_automl.config import ArchConfig, TrainConfig
    from cifar_automl.models import build_model
    from cifar_automl.training import callbacks as train_mod

    if "policy" in setting:
        keras.mixed_precision.set_global_policy(setting["policy"])
    if setting.get("jit"):
        original = keras.Model.compile

        def compile_with_jit(self, *a, **kw):
            kw["jit_compile"] = True
            return original(self, *a, **kw)

        keras.Model.compile = compile_with_jit
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, args.images)
    arch = ArchConfig(**MODELS[args.model])
    model = build_model(arch, (32, 32, 3), 10, mean=[128.0] * 3, std=[64.0] * 3)
    cfg = TrainConfig(optimizer="sgd", learning_rate=0.05, batch_size=args.batch_size, epochs=args.epochs + 1,
                      augment="flip_shift", lr_schedule="onecycle", label_smoothing=0.1)
    result = train_mod.fit(model, x, y, cfg)
    steady = result.train_seconds[1:]  # the package's own per-epoch timing; the first epoch traces
    print(json.dumps({
        "images_per_s": args.images * len(steady) / sum(steady),
        "params": int(model.count_params()),
        "final_loss": float(result.history["loss"][-1]),
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--setting", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.setting:
        return child(args)

    print(f"{os.cpu_count()} cores; {args.images} random 32x32x3 images, batch {args.batch_size}, "
          f"{args.epochs} timed epochs after a warm-up epoch")
    rows = []
    for model in args.models:
        base = None
        for name in args.settings:
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **SETTINGS[name].get("env", {}))
            cmd = [sys.executable, __file__, "--setting", name, "--model", model, "--images", str(args.images),
                   "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["?"])[-1]
                rows.append((model, name, float("nan"), float("nan"), f"failed: {tail[:80]}"))
                print(f"{model:<12} {name:<12} failed: {tail[:120]}", flush=True)
                continue
            out = json.loads(done.stdout.strip().splitlines()[-1])
            ips = out["images_per_s"]
            base = base or (ips if name == "default" else None)
            ratio = ips / base if base else float("nan")
            rows.append((model, name, ips, ratio, ""))
            print(f"{model:<12} {name:<12} {ips:8.0f} img/s  x{ratio:.2f}  ({out['params']:,} params)", flush=True)
    print()
    print("| model | setting | train images/s | vs default |")
    print("|---|---|---:|---:|")
    for model, name, ips, ratio, note in rows:
        print(f"| {model} | {name} | {ips:.0f} | {ratio:.2f} {note} |")


if __name__ == "__main__":
    main()
