"""Where the textbook presets' gaps to their published figures come from: three measurements.

    python benchmarks/reference_gaps.py stopping   # three-block-bn: where early stopping stops, per-epoch test accuracy
    python benchmarks/reference_gaps.py stopping --batch-size 32   # the same at Keras' default batch size
    python benchmarks/reference_gaps.py slope      # simple-inception on 20,000 / 30,000 / 40,000 training images
    python benchmarks/reference_gaps.py jpeg       # fmnist-cnn on Fashion-MNIST as stored and through a JPEG encoder

`stopping` trains the preset for --epochs epochs of its recipe with nothing stopping it, and after
every epoch scores the validation slice (what early stopping watches) and, for this diagnosis only, the
test split. It then replays the recipe's early-stopping rule (patience, best weights restored) on the
validation curve: the test accuracy of the epoch it would restore, against the best and the last
epochs'. `--batch-size` trains with another batch size than the recipe's (a write-up that calls
`model.fit` without one trains at Keras' default, 32). `slope` trains a preset's full recipe on fewer training images (the same test split) to
size what the write-ups' 50,000 images are worth against our 40,000. `jpeg` trains fmnist-cnn twice,
on Debian's Fashion-MNIST as stored and with every image (train and test) passed through a JPEG
encoder at the archive's quality, to size what the CIFAR-10 archive's compression costs a recipe.
Each prints a table and writes it as JSON under --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cifar_automl.data import Dataset, load_dataset, make_splits  # noqa: E402
from cifar_automl.models import PRESETS, build_preset  # noqa: E402
from cifar_automl.training import fit  # noqa: E402
from cifar_automl.training.evaluate import predict_probs  # noqa: E402

ARCHIVE = HERE.parent.parent / "shared" / "datasets" / "cifar10-train-jpeg.tar.gz"
JPEG_QUALITY = 75  # the CIFAR-10 archive's


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(predict_probs(model, x), axis=1) == y))


class TestEveryEpoch(keras.callbacks.Callback):
    """Test accuracy after each epoch (a diagnosis of the stopping rule; nothing is chosen on it)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        super().__init__()
        self.x, self.y, self.scores = x, y, []

    def on_epoch_end(self, epoch, logs=None):
        self.scores.append(accuracy(self.model, self.x, self.y))


def early_stop(val: list[float], patience: int) -> tuple[int, int]:
    """Keras EarlyStopping(monitor=val_accuracy, mode=max, patience, restore_best_weights) replayed on a
    curve: (epochs it runs, 0-based epoch whose weights it restores)."""
    best, best_at, wait = -math.inf, 0, 0
    for i, v in enumerate(val):
        if v > best:
            best, best_at, wait = v, i, 0
        else:
            wait += 1
            if wait >= patience:
                return i + 1, best_at
    return len(val), best_at


def data_of(preset: str, archive: Path) -> Dataset:
    if PRESETS[preset].default_shape[-1] == 1:
        return load_dataset("fashion_mnist")
    return load_dataset("folder", data_dir=str(archive))


def train(preset: str, splits, *, epochs: int | None = None, batch_size: int | None = None, validation: bool = False,
          test_each_epoch: bool = False, seed: int = 0) -> dict:
    """The preset's recipe (`epochs` of it, at `batch_size` if given) on the splits' final-training
    images, or on the training images with the validation slice scored each epoch when `validation`;
    nothing stops it early."""
    p = PRESETS[preset]
    recipe = dataclasses.replace(p.recipe, epochs=epochs or p.recipe.epochs,
                                 batch_size=batch_size or p.recipe.batch_size)
    x, y, val = splits.final_training(validation)
    keras.utils.set_random_seed(seed)
    model = build_preset(p, x.shape[1:], len(splits.class_names))
    per_epoch = TestEveryEpoch(splits.x_test, splits.y_test) if test_each_epoch else None
    start = time.perf_counter()
    result = fit(model, x, y, recipe, validation=val, callbacks=[per_epoch] if per_epoch else [], seed=seed)
    minutes = (time.perf_counter() - start) / 60
    out = {"preset": preset, "train_images": len(x), "batch_size": recipe.batch_size, "epochs": result.epochs_run,
           "minutes": round(minutes, 2),
           "test_accuracy": accuracy(model, splits.x_test, splits.y_test)}
    if validation:
        out["val_accuracy"] = [float(v) for v in result.history["val_accuracy"]]
    if per_epoch:
        out["test_accuracy_per_epoch"] = per_epoch.scores
    keras.backend.clear_session(free_memory=True)
    return out


def stopping(args) -> dict:
    preset = args.preset or "three-block-bn"
    patience = PRESETS[preset].early_stopping_patience
    if patience is None:
        raise SystemExit(f"error: {preset}'s recipe does not stop early")
    ds = data_of(preset, Path(args.archive))
    splits = make_splits(ds, val_fraction=PRESETS[preset].val_fraction, subset=None, seed=0, test_fraction=0.2)
    r = train(preset, splits, epochs=args.epochs, batch_size=args.batch_size, validation=True, test_each_epoch=True)
    val, test = r["val_accuracy"], r["test_accuracy_per_epoch"]
    ran, restored = early_stop(val, patience)
    best = int(np.argmax(test))
    r.update(patience=patience, stops_after=ran, restores_epoch=restored + 1, test_at_restored=test[restored],
             best_test_epoch=best + 1, best_test=test[best], test_at_last=test[-1],
             val_spread_last_half=float(np.std(val[len(val) // 2:])))
    print(f"{preset}, {r['train_images']:,} training images, batch {r['batch_size']}, {r['epochs']} epochs, nothing "
          "stopping it "
          f"({r['minutes']:.1f} min)")
    print("| epoch | val accuracy | test accuracy |\n|---:|---:|---:|")
    for i, (v, t) in enumerate(zip(val, test)):
        marks = ("  (restored by early stopping)" if i == restored else "") + ("  (best test)" if i == best else "")
        print(f"| {i + 1} | {v:.1%} | {t:.1%}{marks} |")
    print(f"early stopping (patience {patience}) stops after epoch {ran} and restores epoch {restored + 1}: "
          f"test {test[restored]:.1%}; best test epoch {best + 1}: {test[best]:.1%}; last: {test[-1]:.1%}")
    return r


def slope(args) -> dict:
    preset = args.preset or "simple-inception"
    if PRESETS[preset].early_stopping_patience is not None:
        raise SystemExit(f"error: {preset} stops early; pick a preset with a fixed number of epochs")
    ds = data_of(preset, Path(args.archive))
    rows = []
    for n in args.sizes:
        splits = make_splits(ds, val_fraction=PRESETS[preset].val_fraction, subset=n, seed=0, test_fraction=0.2)
        rows.append(train(preset, splits))
        print(f"{preset} on {rows[-1]['train_images']:,} images: test {rows[-1]['test_accuracy']:.1%} "
              f"({rows[-1]['minutes']:.1f} min)", flush=True)
    n = np.array([r["train_images"] for r in rows], float)
    acc = np.array([r["test_accuracy"] for r in rows])
    # accuracy is close to linear in log(images) over a doubling: extrapolate one step to 50,000
    b, a = np.polyfit(np.log(n), acc, 1)
    at_50k = float(a + b * np.log(50_000))
    print("| training images | test accuracy |\n|---:|---:|")
    for r in rows:
        print(f"| {r['train_images']:,} | {r['test_accuracy']:.1%} |")
    print(f"fit: {b * np.log(2) * 100:+.1f} points per doubling; at 50,000 images: {at_50k:.1%} "
          f"({(at_50k - acc[-1]) * 100:+.1f} points over {int(n[-1]):,})")
    return {"preset": preset, "runs": rows, "points_per_doubling": float(b * np.log(2) * 100), "at_50000": at_50k}


def jpeg_roundtrip(x: np.ndarray, quality: int) -> np.ndarray:
    """Every image through a baseline JPEG encoder and back (Pillow; 4:2:0 chroma for colour images)."""
    from PIL import Image

    out = np.empty_like(x)
    for i, img in enumerate(x):
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf)).reshape(img.shape)
    return out


def jpeg(args) -> dict:
    preset = args.preset or "fmnist-cnn"
    ds = data_of(preset, Path(args.archive))
    coded = dataclasses.replace(ds, x_train=jpeg_roundtrip(ds.x_train, args.quality),
                                x_test=None if ds.x_test is None else jpeg_roundtrip(ds.x_test, args.quality))
    rows = {}
    for label, data in (("as stored", ds), (f"JPEG quality {args.quality}", coded)):
        splits = make_splits(data, val_fraction=PRESETS[preset].val_fraction, subset=None, seed=0, test_fraction=0.2)
        rows[label] = train(preset, splits)
        print(f"{preset}, {label}: test {rows[label]['test_accuracy']:.1%} ({rows[label]['minutes']:.1f} min)",
              flush=True)
    a, b = (r["test_accuracy"] for r in rows.values())
    print(f"the JPEG round trip costs {(a - b) * 100:.1f} points")
    return {"preset": preset, "quality": args.quality, "runs": rows, "cost_points": (a - b) * 100}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", choices=("stopping", "slope", "jpeg"))
    ap.add_argument("--preset", choices=list(PRESETS), help="default: three-block-bn / simple-inception / fmnist-cnn")
    ap.add_argument("--epochs", type=int, default=20, help="stopping: epochs trained (default: %(default)s)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 30_000, None],
                    help="slope: training images (default: 20000 30000 and all)")
    ap.add_argument("--batch-size", type=int, help="stopping: train at this batch size (default: the recipe's)")
    ap.add_argument("--quality", type=int, default=JPEG_QUALITY, help="jpeg: encoder quality (default: %(default)s)")
    ap.add_argument("--archive", default=str(ARCHIVE), help="the CIFAR-10 JPEG archive")
    ap.add_argument("--out", default="studies/reference-gaps", help="where the JSON goes (default: %(default)s)")
    args = ap.parse_args()
    result = {"stopping": stopping, "slope": slope, "jpeg": jpeg}[args.experiment](args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.experiment + (f"-batch{args.batch_size}" if args.experiment == "stopping" and args.batch_size else "")
    (out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
