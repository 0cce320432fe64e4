"""Exported models, loaded in fresh processes that never import cifar_automl, on the held-out test split.

    python benchmarks/export_agreement.py --study-name residual [--trial N] [--studies-dir studies]

Needs a retrained trial (`cifar-automl retrain`). Exports it in every format, then for each format a
fresh Python process loads the file with plain Keras / TensorFlow / TFLite / onnxruntime and
classifies the study's test images (never seen by search or retraining). Prints each format's test
accuracy next to the accuracy `retrain` recorded, and the largest probability difference between
formats.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

LOADER = r"""
import sys, json, numpy as np
fmt, path, data, out = sys.argv[1:5]
x = np.load(data)["x"].astype("float32")
if fmt == "keras":
    import keras
    probs = keras.saving.load_model(path).predict(x, batch_size=256, verbose=0)
elif fmt == "savedmodel":
    import tensorflow as tf
    loaded = tf.saved_model.load(path)
    probs = np.concatenate([loaded.serve(x[i:i + 256]).numpy() for i in range(0, len(x), 256)])
elif fmt == "tflite":
    import tensorflow as tf
    interp = tf.lite.Interpreter(model_path=path)
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], (256, *x.shape[1:]))
    interp.allocate_tensors()
    chunks = []
    for i in range(0, len(x), 256):
        batch = x[i:i + 256]
        pad = np.zeros((256 - len(batch), *x.shape[1:]), np.float32)
        interp.set_tensor(inp["index"], np.concatenate([batch, pad]))
        interp.invoke()
        chunks.append(interp.get_tensor(outp["index"])[: len(batch)])
    probs = np.concatenate(chunks)
elif fmt == "onnx":
    import onnxruntime as ort
    sess = ort.InferenceSession(path)
    probs = sess.run(None, {sess.get_inputs()[0].name: x})[0]
assert "cifar_automl" not in sys.modules
np.save(out, probs)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study-name", required=True)
    p.add_argument("--studies-dir", default="studies")
    p.add_argument("--trial", type=int)
    args = p.parse_args()

    from cifar_automl.results import (
        RetrainSettings,
        best_retrained,
        load_study_data,
        retrain_dir,
    )
    from cifar_automl.results.export import FORMATS, export_model
    from cifar_automl.study import load_existing_study

    study, _ = load_existing_study(args.study_name, studies_dir=args.studies_dir)
    trial = args.trial if args.trial is not None else best_retrained(study)
    if trial is None:
        sys.exit(f"no trial of study '{args.study_name}' has been retrained: run cifar-automl retrain first")
    folder = retrain_dir(args.studies_dir, args.study_name, trial)
    recorded = json.loads((folder / "metrics.json").read_text())["accuracy"]
    splits, _ = load_study_data(study, RetrainSettings(study_name=args.study_name))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "x.npz", x=splits.x_test)
        probs = {}
        for fmt, spec in FORMATS.items():
            path = export_model(folder / "model.keras", fmt, tmp / f"model{spec.suffix}")
            run = subprocess.run([sys.executable, "-c", LOADER, fmt, str(path), str(tmp / "x.npz"),
                                  str(tmp / f"{fmt}.npy")], capture_output=True, text=True)
            if run.returncode != 0:
                print(f"{fmt}: FAILED\n{run.stderr[-1500:]}")
                continue
            probs[fmt] = np.load(tmp / f"{fmt}.npy")
    print(f"study {args.study_name}, trial {trial}: {len(splits.y_test)} test images "
          f"({splits.info['test_source']} split), recorded test accuracy {recorded:.4f}")
    for fmt, pr in probs.items():
        acc = float(np.mean(pr.argmax(1) == splits.y_test))
        diff = float(np.abs(pr - probs["keras"]).max()) if "keras" in probs else float("nan")
        print(f"  {fmt:<11} accuracy {acc:.4f}   max |p - p_keras| {diff:.2e}")


if __name__ == "__main__":
    main()
