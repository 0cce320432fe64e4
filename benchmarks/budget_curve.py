"""The time curve of a budgeted run: best validation accuracy against wall time during the search, then
the retrained model's test accuracy, from a study made by `cifar-automl auto`.

    cifar-automl auto --budget 35m --space residual --dataset folder \
        --data-dir ../shared/datasets/cifar10-train-jpeg.tar.gz --study-name cifar-auto-35m
    python benchmarks/budget_curve.py --study-name cifar-auto-35m

Reads only the study (trial start/end times, values, epoch times, the `retrain:<trial>` summary); it
trains nothing. Also prints the share of the search's wall time spent inside training and evaluation
epochs, for the trials of a real search (`search_overhead.py` measures it on a fixed small net).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from optuna.trial import TrialState  # noqa: E402

from cifar_automl.results import retrain_summaries  # noqa: E402
from cifar_automl.study import load_existing_study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study-name", required=True)
    ap.add_argument("--storage")
    ap.add_argument("--studies-dir", default="studies")
    args = ap.parse_args()

    study, _ = load_existing_study(args.study_name, args.storage, args.studies_dir)
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None]
    if not trials:
        sys.exit("the study has no finished trial")
    start = min(t.datetime_start for t in trials)
    print(f"study {study.study_name}: {len(trials)} trials "
          f"({sum(t.state == TrialState.COMPLETE for t in trials)} complete, "
          f"{sum(t.state == TrialState.PRUNED for t in trials)} pruned, "
          f"{sum(t.state == TrialState.FAIL for t in trials)} failed)")
    print()
    print("| minutes | trial | state | epochs | val acc | best so far |")
    print("|---:|---:|---|---:|---:|---:|")
    best = float("nan")
    for t in sorted(trials, key=lambda t: t.datetime_complete):
        acc = t.user_attrs.get("val_accuracy")
        if acc is not None and t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            best = acc if best != best else max(best, acc)
        minutes = (t.datetime_complete - start).total_seconds() / 60
        print(f"| {minutes:.1f} | {t.number} | {t.state.name.lower()} | {t.user_attrs.get('epochs_run', 0)} | "
              f"{acc if acc is not None else float('nan'):.4f} | {best:.4f} |")
    search_end = max(t.datetime_complete for t in trials)
    wall = (search_end - start).total_seconds()
    inside = sum(sum(t.user_attrs.get("epoch_seconds", [])) for t in trials)
    print(f"\nsearch: {wall / 60:.1f} min, {inside / wall:.1%} of it inside training/evaluation epochs "
          f"({(wall - inside) / len(trials):.1f} s per trial outside them: storage, model building, clean-up)")
    for number, r in sorted(retrain_summaries(study).items()):
        print(f"retrain of trial {number}: test accuracy {r['accuracy']:.4f}, {r['epochs']} epochs in "
              f"{r['train_minutes']:.1f} min{tta_note(r)}, {r['params']:,} params")


def tta_note(summary: dict) -> str:
    tta = summary.get("tta") or ("flip" if summary.get("tta_flip") else "none")  # older studies: tta_flip
    return "" if tta == "none" else f" ({tta} TTA)"


if __name__ == "__main__":
    main()
