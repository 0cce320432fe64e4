"""Time `cifar-automl report` on a large study: synthetic trials made with Optuna's ask/tell (shaped like
a real search's: configs, curves, timings), no training.

    python benchmarks/report_timing.py [--trials 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cifar_automl.report import write_report  # noqa: E402
from tests.helpers import synthetic_study  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=500)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synthetic_study(f"sqlite:///{tmp}/synthetic.db", n_trials=args.trials,
                        states=("complete", "pruned", "pruned", "fail"))
        made = time.perf_counter() - start
        start = time.perf_counter()
        page = write_report("synthetic", studies_dir=tmp)
        seconds = time.perf_counter() - start
        size = page.stat().st_size / 2**20
    print(f"{args.trials} trials (made in {made:.1f} s): report written in {seconds:.1f} s, index.html {size:.1f} MB")


if __name__ == "__main__":
    main()
