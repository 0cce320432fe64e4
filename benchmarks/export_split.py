"""Write the exact train/test split the package trains and tests on to one .npz, so that another
trainer (a reference implementation in PyTorch, say) can be measured on the same images.

    python benchmarks/export_split.py --dataset folder \
        --data-dir ../shared/datasets/cifar10-train-jpeg.tar.gz --out cifar10-split.npz

The .npz holds x_train/y_train (the train + validation pool a retrain uses: 40,000 CIFAR-10 images
from the shared archive), x_test/y_test (the stratified 10,000 the search never sees, or the official
test split) as uint8 NHWC images and int64 labels, and class_names.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import numpy as np

    from cifar_automl.data import load_dataset, make_splits
    from cifar_automl.errors import UserError

    try:
        splits = make_splits(load_dataset(args.dataset, args.data_dir), val_fraction=0.1, seed=args.seed)
    except UserError as exc:
        sys.exit(f"error: {exc}")
    x = np.concatenate([splits.x_train, splits.x_val])
    y = np.concatenate([splits.y_train, splits.y_val])
    np.savez(args.out, x_train=x, y_train=y, x_test=splits.x_test, y_test=splits.y_test,
             class_names=np.array(splits.class_names))
    print(f"{args.out}: {len(y):,} training and {len(splits.y_test):,} test images "
          f"({splits.info['test_source']} test split), shape {x.shape[1:]}")


if __name__ == "__main__":
    main()
