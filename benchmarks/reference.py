"""The textbook presets trained for real, each with its own recipe, next to its published figure.

    python benchmarks/reference.py                          # every preset (hours)
    python benchmarks/reference.py --model three-block-bn   # one
    python benchmarks/reference.py --minutes 45 --table     # the table of what has run, nothing trained

CIFAR-10 presets train on the shared JPEG archive with the test split `auto` carves (20%, fixed seed);
`fmnist-cnn` on Debian's Fashion-MNIST with its official test split. Each run is `cifar-automl
baseline` (the preset's recipe: optimizer, learning rate, batch, augmentation, early stopping) and
is kept as a trial of the reference study `baselines-<dataset>` under --studies-dir, so reruns of
this script skip what has run (pass --overwrite to train again) and a report can show the rows.

Where the recipe's epochs do not fit in --minutes on this machine (measured: a short timed run of
the preset first), the run is the longest that does; its schedule is sized to that length (a
cosine recipe decays over the shorter run), and the table gives the measured estimate of the full
recipe's time. Minutes are the first epoch plus the median epoch times the others (so an epoch
slowed by other work on the machine does not count); the runs' own epoch times are in their
history.csv.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import optuna

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cifar_automl.data import load_dataset, make_splits  # noqa: E402
from cifar_automl.models import PRESETS, build_preset  # noqa: E402
from cifar_automl.results import BaselineSettings, run_baseline  # noqa: E402
from cifar_automl.study import default_storage_url, open_storage  # noqa: E402
from cifar_automl.training import fit, steps_per_epoch  # noqa: E402

ARCHIVE = HERE.parent.parent / "shared" / "datasets" / "cifar10-train-jpeg.tar.gz"
# test accuracy in the write-ups these presets come from (None: no published figure)
PUBLISHED = {
    "simple-dropout": 0.729, "simple-inception": 0.743, "simple-residual": 0.718, "three-block": 0.724,
    "three-block-bn": 0.769, "vgg-bn-aug": 0.8938, "wrn-16-8": 0.8617, "fmnist-cnn": 0.9184,
    "net1": None, "net2": None, "net3": None,
}
PROBE_STEPS = 30  # timed training steps (after as many untimed ones, which trace the graph)


def data_of(preset: str, archive: Path) -> dict:
    if PRESETS[preset].default_shape[-1] == 1:
        return {"dataset": "fashion_mnist", "data_dir": None}
    return {"dataset": "folder", "data_dir": str(archive)}


def seconds_per_epoch(preset: str, splits) -> float:
    """A short timed run of the preset's recipe: training seconds of one epoch of what `baseline` trains
    it on (train + validation, or train alone with the validation pass of a recipe that stops early),
    from PROBE_STEPS steps after as many warm-up steps."""
    recipe = PRESETS[preset].recipe
    x, y, validation = splits.final_training(PRESETS[preset].early_stopping_patience is not None)
    n = PROBE_STEPS * recipe.batch_size
    model = build_preset(PRESETS[preset], x.shape[1:], len(splits.class_names))
    probe = dataclasses.replace(recipe, epochs=2)
    result = fit(model, x[:n], y[:n], probe)
    per_step = result.train_seconds[1] / PROBE_STEPS
    val_share = len(validation[0]) / (len(x) * 3) if validation else 0.0  # inference ~3x cheaper than training
    return per_step * steps_per_epoch(len(x), recipe.batch_size) * (1 + val_share)


def table(storage_dir: Path, minutes: float) -> list[str]:
    rows = ["| preset | data | training images | published | ours (test) | difference | epochs run / recipe | minutes "
            "| full recipe, estimated |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for dataset in ("folder", "fashion_mnist"):
        study = reference_study(storage_dir, dataset)
        if study is None:
            continue
        for t in latest_runs(study).values():
            ua = t.user_attrs
            preset, ours = ua["baseline"], ua["test_accuracy"]
            pub = PUBLISHED.get(preset)
            recipe_epochs = PRESETS[preset].recipe.epochs
            # minutes from the median epoch: robust to an epoch slowed by other work on the machine
            steady = ua["epoch_seconds"][1:] or ua["epoch_seconds"]  # the first epoch also traces the graph
            mins = (ua["epoch_seconds"][0] + float(np.median(steady)) * (ua["epochs_run"] - 1)) / 60
            full = float(np.median(steady)) * recipe_epochs / 60 if ua["epochs_run"] < recipe_epochs else None
            rows.append(
                f"| {preset} | {'CIFAR-10 (JPEG archive)' if dataset == 'folder' else 'Fashion-MNIST'} | "
                f"{training_images(ua)} | {f'{pub:.1%}' if pub else '-'} | {ours:.1%} | "
                f"{f'{(ours - pub) * 100:+.1f} pt' if pub else '-'} | {ua['epochs_run']} / {recipe_epochs}"
                f"{' (early stop)' if PRESETS[preset].early_stopping_patience else ''} | {mins:.1f} | "
                f"{f'{full:.0f} min' if full else '(ran in full)'} |")
    return rows


def training_images(attrs: dict) -> str:
    """How many images a run learned from, from its bundle's config.json ('?' where that is not found:
    the bundle's path is relative to where the run was started)."""
    try:
        data = json.loads((Path(attrs["path"]) / "config.json").read_text())["data"]
    except (OSError, KeyError, ValueError):
        return "?"
    return f"{data['retrain_train_images']:,}"


def reference_study(studies: Path, dataset: str) -> optuna.Study | None:
    """The reference study `cifar-automl baseline` keeps the runs of `dataset` in, if there is one."""
    url = default_storage_url(studies, f"baselines-{dataset}")
    if not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    return optuna.load_study(study_name=f"baselines-{dataset}", storage=open_storage(url))


def latest_runs(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    """The last run of each preset in a reference study, in PRESETS order."""
    latest = {t.user_attrs["baseline"]: t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")}
    return {p: latest[p] for p in PRESETS if p in latest}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    ap.add_argument("--minutes", type=float, default=45.0, help="longest run per preset (default: %(default)s)")
    ap.add_argument("--studies-dir", default="studies/reference", help="(default: %(default)s)")
    ap.add_argument("--archive", default=str(ARCHIVE), help="the CIFAR-10 JPEG archive")
    ap.add_argument("--overwrite", action="store_true", help="train presets that already ran again")
    ap.add_argument("--table", action="store_true", help="print the table of what has run; train nothing")
    args = ap.parse_args()
    studies = Path(args.studies_dir)
    if not args.table:
        for preset in args.model:
            data = data_of(preset, Path(args.archive))
            done_at = studies / f"baselines-{data['dataset']}" / preset
            if done_at.exists() and not args.overwrite:
                print(f"{preset}: already trained ({done_at}); --overwrite to train again", flush=True)
                continue
            ds = load_dataset(data["dataset"], data_dir=data["data_dir"])
            splits = make_splits(ds, val_fraction=PRESETS[preset].val_fraction, subset=None, seed=0,
                                 test_fraction=0.2)
            epoch = seconds_per_epoch(preset, splits)
            recipe_epochs = PRESETS[preset].recipe.epochs
            epochs = max(1, min(recipe_epochs, math.floor(args.minutes * 60 / epoch)))
            print(f"{preset}: ~{epoch:.0f} s per epoch here; {epochs} of the recipe's {recipe_epochs} epochs "
                  f"(full recipe ~{epoch * recipe_epochs / 60:.0f} min)", flush=True)
            start = time.time()
            r = run_baseline(BaselineSettings(
                preset=preset, studies_dir=str(studies), epochs=epochs, overwrite=args.overwrite, progress=False,
                **data,
            ))
            print(f"{preset}: test {r['accuracy']:.4f} after {r['epochs']} epochs in {(time.time() - start) / 60:.1f} min",
                  flush=True)
    print()
    print("\n".join(table(studies, args.minutes)))


if __name__ == "__main__":
    main()
