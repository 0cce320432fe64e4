"""The GPU path, checked end to end on one backend: a pruned search of two workers sharing one GPU in
mixed precision, on real Fashion-MNIST, then a retrain of the winner, its test accuracy and its
.keras export. Prints images/s, GPU memory per worker, trials per minute and the test accuracy.

    python benchmarks/gpu_check.py --backend jax --data-dir .gpu-check/data      # (gpu_check.sh runs it)
    python benchmarks/gpu_check.py --backend tensorflow --cpu --minutes 1         # the same on a CPU

`--cpu` hides the GPUs (CUDA_VISIBLE_DEVICES="") and leaves mixed precision off, so the same script
runs here as its own test. Everything it writes goes under --out (default .gpu-check/runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path


def gpu_memory_by_pid() -> dict[int, float]:
    """MiB of GPU memory each process uses now (nvidia-smi); empty without one."""
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    used = {}
    for line in out.splitlines():
        pid, mib = (part.strip() for part in line.split(","))
        if pid.isdigit():
            used[int(pid)] = float(mib)
    return used


class MemoryWatch(threading.Thread):
    """Samples the GPU memory of every process every second; keeps each one's peak."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            for pid, mib in gpu_memory_by_pid().items():
                self.peak[pid] = max(self.peak.get(pid, 0.0), mib)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", required=True, choices=("tensorflow", "jax", "torch"))
    ap.add_argument("--cpu", action="store_true", help="hide the GPUs; no mixed precision")
    ap.add_argument("--data-dir", default=".gpu-check/data", help="Fashion-MNIST IDX files")
    ap.add_argument("--out", default=".gpu-check/runs")
    ap.add_argument("--minutes", type=float, default=2.0, help="search time (default: %(default)s)")
    ap.add_argument("--subset", default="12000", help="train+val images searched (default: %(default)s)")
    ap.add_argument("--retrain-epochs", type=int, default=4)
    args = ap.parse_args()
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from cifar_automl.runtime import select_backend

    select_backend(args.backend)
    from cifar_automl.results import RetrainSettings, export_model, retrain
    from cifar_automl.search import SearchReporter, SearchSettings, prepare, run_search

    out = Path(args.out) / args.backend
    if out.exists():
        shutil.rmtree(out)  # this script's own folder of a previous run
    settings = SearchSettings(
        space="fast", dataset="fashion_mnist", data_dir=args.data_dir, subset=int(args.subset), trials=100,
        epochs=4, timeout=args.minutes * 60, pruner="hyperband", workers=2, trials_per_process=50,
        mixed_precision=not args.cpu, studies_dir=str(out), study_name="gpu-check", seed=0,
        cache_dir=str(out / "cache"),
    )
    watch = MemoryWatch()
    watch.start()
    start = time.time()
    outcome = run_search(settings, prepared=prepare(settings), reporter=SearchReporter(quiet=True))
    search_minutes = (time.time() - start) / 60
    watch.done.set()
    study = outcome.study
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    speeds = sorted(t.user_attrs.get("images_per_second", 0.0) for t in done)
    devices = sorted({t.user_attrs.get("device", "?") for t in done})
    workers = sorted({t.user_attrs.get("worker", "?") for t in done})
    result = retrain(RetrainSettings(study_name="gpu-check", studies_dir=str(out), epochs=args.retrain_epochs,
                                     mixed_precision=not args.cpu, progress=False, cache_dir=str(out / "cache")))[0]
    exported = export_model(result.out_dir / "model.keras", "keras", out / "export" / "model.keras")
    own = {int(w.rsplit(":", 1)[1]) for w in workers if ":" in w}
    memory = {pid: mib for pid, mib in watch.peak.items() if pid in own} or watch.peak
    figures = {
        "backend": args.backend,
        "device": ", ".join(devices),
        "trials_finished": len(done),
        "trials_pruned": sum(t.state.name == "PRUNED" for t in done),
        "search_minutes": round(search_minutes, 2),
        "trials_per_minute": round(len(done) / search_minutes, 2),
        "images_per_second_median": round(speeds[len(speeds) // 2], 0) if speeds else None,
        "gpu_memory_mib_per_worker": sorted(round(m) for m in memory.values()),
        "worker_processes": len(workers),
        "retrain_epochs": result.metrics["epochs"],
        "test_accuracy": round(result.metrics["accuracy"], 4),
        "export": str(exported),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
