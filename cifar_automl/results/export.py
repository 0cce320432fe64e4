"""Export a trained model: `.keras`, TensorFlow SavedModel, TFLite (LiteRT) or ONNX.

Every format carries the preprocessing (scaling and normalisation layers), so a raw image with pixel
values 0..255 goes in and class probabilities come out. Each export gets a `labels.txt` (one class
name per line, in output order) beside it. Conversion uses Keras' own `model.export()`; ONNX needs
the optional `tf2onnx` package (`pip install 'cifar-automl[onnx]'`). The converters are TensorFlow's: a model
trained on JAX or PyTorch is converted in a TensorFlow process, from its `.keras` file.

Formats sit in a registry: adding one is one function decorated with `@register_format`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from ..errors import UserError
from ..runtime import backend_name
from ..training.evaluate import batch1_latency_ms
from .bundle import EXPORT_DIR, LABELS_FILE, class_names_for, classifier_shape

Writer = Callable[[keras.Model, Path, Path], None]  # (loaded model, its .keras file, where to write)
Predict = Callable[[np.ndarray], np.ndarray]  # float32 images (N, H, W, C) in 0..255 -> probabilities
Runner = Callable[[Path], Predict]  # an exported file -> its predict function (the format's own runtime)


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str  # of the written file ("" for a folder)
    write: Writer
    requires: str | None = None  # a module the format needs
    missing: str = ""  # the error when that module is not installed
    run: Runner | None = None  # loads an exported file in the format's own runtime (measure_export)


FORMATS: dict[str, ExportFormat] = {}


def register_format(name: str, suffix: str, requires: str | None = None, missing: str = ""):
    """Register `write(model, model_path, out)`, which writes `model` in this format at `out`; a
    runner for the format's files is added with `@register_runner(name)`."""

    def deco(fn: Writer) -> Writer:
        FORMATS[name] = ExportFormat(name, suffix, fn, requires, missing)
        return fn

    return deco


def register_runner(name: str):
    """Register `run(path) -> predict`, which loads an exported file of format `name` in its own runtime."""

    def deco(fn: Runner) -> Runner:
        FORMATS[name] = dataclasses.replace(FORMATS[name], run=fn)
        return fn

    return deco


@register_format("keras", ".keras")
def _keras(model: keras.Model, model_path: Path, out: Path) -> None:
    shutil.copyfile(model_path, out)


@register_format("savedmodel", "")
def _savedmodel(model: keras.Model, model_path: Path, out: Path) -> None:
    model.export(str(out), format="tf_saved_model", verbose=False)  # a `serve` endpoint


@register_format("tflite", ".tflite")
def _tflite(model: keras.Model, model_path: Path, out: Path) -> None:
    model.export(str(out), format="litert", verbose=False)


@register_format("onnx", ".onnx", requires="tf2onnx", missing="ONNX export needs tf2onnx: pip install 'cifar-automl[onnx]'")
def _onnx(model: keras.Model, model_path: Path, out: Path) -> None:
    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)  # its problems surface in _check_onnx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model.export(str(out), format="onnx", verbose=False)
    _check_onnx(out, model)


@register_runner("keras")
def _run_keras(path: Path) -> Predict:
    model = keras.saving.load_model(path)
    return lambda x: keras.ops.convert_to_numpy(model.predict_on_batch(x))


@register_runner("savedmodel")
def _run_savedmodel(path: Path) -> Predict:
    import tensorflow as tf  # the format's own runtime

    loaded = tf.saved_model.load(str(path))
    return lambda x: loaded.serve(x).numpy()


@register_runner("tflite")
def _run_tflite(path: Path) -> Predict:
    try:
        from ai_edge_litert.interpreter import (
            Interpreter,  # LiteRT's own package, where installed
        )
    except ImportError:
        import tensorflow as tf  # the interpreter TensorFlow still ships

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tf.lite.Interpreter's deprecation notice
        interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    shape: list[tuple | None] = [None]

    def predict(x: np.ndarray) -> np.ndarray:
        if shape[0] != x.shape:
            interpreter.resize_tensor_input(inp["index"], x.shape)
            interpreter.allocate_tensors()
            shape[0] = x.shape
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return predict


@register_runner("onnx")
def _run_onnx(path: Path) -> Predict:
    import onnxruntime as ort  # optional: installed with the onnx extra

    session = ort.InferenceSession(str(path))
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def measure_export(path: str | Path, fmt: str, x: np.ndarray, y: np.ndarray, calls: int = 50,
                   batch_size: int = 256) -> dict[str, float]:
    """Test accuracy and batch-1 latency (ms, median of `calls` after a warm-up call) of an exported
    file, run in its format's own runtime (TFLite's interpreter, onnxruntime, ...) on this machine."""
    predict = FORMATS[fmt].run(Path(path))
    x = x.astype(np.float32)
    probs = np.concatenate([predict(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    return {"accuracy": float(np.mean(probs.argmax(axis=1) == y)), "latency_ms": batch1_latency_ms(predict, x, calls)}


def export_path(model_path: Path, fmt: str, out: str | Path | None, formats: int = 1) -> Path:
    """Where `export` writes format `fmt`: `out` itself for one format, unless `out` is an existing
    folder (then inside it, as it is for several formats); by default `<model's folder>/export/`.
    A SavedModel folder given as `out` is the SavedModel itself."""
    name = f"model{FORMATS[fmt].suffix}"
    if out is None:
        return model_path.parent / EXPORT_DIR / name
    out = Path(out)
    if out.is_dir() and not (fmt == "savedmodel" and _is_savedmodel(out)):
        return out / name
    return out if formats == 1 else out / name


def _is_savedmodel(path: Path) -> bool:
    return (path / "saved_model.pb").is_file()


def export_model(model_path: str | Path, fmt: str, out: str | Path, overwrite: bool = False) -> Path:
    """Convert the `.keras` file at `model_path` to `fmt` at `out`; returns the written path.

    An existing `out` is replaced only with `overwrite`, and only when it is an export of this
    format (a file; a SavedModel folder): nothing else is ever deleted."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}' (choose from {', '.join(FORMATS)})")
    spec = FORMATS[fmt]
    model_path, out = Path(model_path), Path(out)
    if not model_path.is_file():
        raise UserError(f"model file not found: {model_path}")
    if out.exists():
        if not overwrite:
            raise UserError(f"{out} already exists: pass --overwrite to replace it")
        ours = _is_savedmodel(out) if spec.suffix == "" else (out.is_file() and out.suffix == spec.suffix)
        if not ours:
            raise UserError(f"{out} is not a {fmt} export: refusing to replace it (pass another --out)")
    if spec.requires and importlib.util.find_spec(spec.requires) is None:
        raise UserError(spec.missing)
    try:
        model = keras.saving.load_model(model_path)
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"cannot load model {model_path}: {str(e).splitlines()[0][:200]}") from None
    classifier_shape(model, model_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")  # converters check the suffix
    _remove(tmp)
    if fmt == "keras" or backend_name() == "tensorflow":
        write(model, model_path, fmt, tmp)
    else:
        _write_on_tensorflow(model_path, fmt, tmp)
    _remove(out)
    tmp.rename(out)  # only a complete export replaces an old one
    names = class_names_for(model_path)
    if names:
        (out.parent / LABELS_FILE).write_text("\n".join(names) + "\n")
    return out


def write(model: keras.Model, model_path: Path, fmt: str, out: Path) -> None:
    """Write `model` (loaded from `model_path`) as `fmt` at `out`."""
    height, width, channels, _ = classifier_shape(model, model_path)
    model(np.zeros((1, height, width, channels), np.float32))  # exporters trace a model that has run
    FORMATS[fmt].write(model, model_path, out)


def _write_on_tensorflow(model_path: Path, fmt: str, out: Path) -> None:
    """The converters (SavedModel, LiteRT, tf2onnx) are TensorFlow's: a model trained on JAX or PyTorch
    is converted from its `.keras` file, which loads on every backend, in a TensorFlow process."""
    if importlib.util.find_spec("tensorflow") is None:
        raise UserError(f"{fmt} export needs TensorFlow (the converters are TensorFlow's): pip install tensorflow")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", __name__, str(model_path), fmt, str(out)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        _remove(out)
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise UserError(lines[-1].removeprefix("cifar-automl: error: ") if lines else
                        f"{fmt} export failed (exit code {done.returncode})")


def _check_onnx(path: Path, model: keras.Model) -> None:
    """tf2onnx writes a file even when it could not convert some op (GELU's Erfc, for one): run the
    file once in onnxruntime and refuse it, naming the problem, if it does not load."""
    try:
        import onnxruntime as ort  # optional: installed with the onnx extra
    except ImportError:
        return
    try:
        session = ort.InferenceSession(str(path))
        session.run(None, {session.get_inputs()[0].name: np.zeros((1, *model.input_shape[1:]), np.float32)})
    except Exception as e:  # onnxruntime raises its own error types
        _remove(path)
        detail = str(e).splitlines()[0][:200]
        hint = " (GELU activations use Erfc, which tf2onnx cannot convert)" if "Erfc" in str(e) else ""
        raise UserError(f"ONNX export of this model does not load in onnxruntime{hint}: {detail}; "
                        "export keras, savedmodel or tflite instead") from None


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


if __name__ == "__main__":  # _write_on_tensorflow's TensorFlow process: MODEL FORMAT OUT
    try:
        path = Path(sys.argv[1])
        write(keras.saving.load_model(path), path, sys.argv[2], Path(sys.argv[3]))
    except UserError as e:
        print(f"cifar-automl: error: {e}", file=sys.stderr)
        sys.exit(2)
