"""Export a retrained model: `.keras`, TensorFlow SavedModel, TFLite (LiteRT) or ONNX.

Every format carries the preprocessing (scaling and normalisation layers), so a raw image with pixel
values 0..255 goes in and class probabilities come out. Each export gets a `labels.txt` (one class
name per line, in output order) beside it. Conversion uses Keras' own `model.export()`; ONNX needs
the optional `tf2onnx` package (`pip install 'cifar-automl[onnx]'`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .errors import UserError

FORMATS = {"keras": ".keras", "savedmodel": "", "tflite": ".tflite", "onnx": ".onnx"}


def class_names_for(model_path: Path) -> list[str] | None:
    """Class names from the `config.json` (model card data) or `labels.txt` beside a model."""
    card = model_path.parent / "config.json"
    if card.is_file():
        try:
            return list(json.loads(card.read_text())["class_names"])
        except (ValueError, KeyError):
            pass
    labels = model_path.parent / "labels.txt"
    if labels.is_file():
        return [line for line in labels.read_text().splitlines() if line]
    return None


def export_model(model_path: str | Path, fmt: str, out: str | Path, overwrite: bool = False) -> Path:
    """Convert the `.keras` file at `model_path` to `fmt` at `out`; returns the written path."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}' (choose from {', '.join(FORMATS)})")
    model_path, out = Path(model_path), Path(out)
    if not model_path.is_file():
        raise UserError(f"model file not found: {model_path}")
    if out.exists():
        if not overwrite:
            raise UserError(f"{out} already exists: pass --overwrite to replace it")
    if fmt == "onnx":
        _require("tf2onnx", "ONNX export needs tf2onnx: pip install 'cifar-automl[onnx]'")
    import keras

    try:
        model = keras.saving.load_model(model_path)
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"cannot load model {model_path}: {str(e).splitlines()[0][:200]}") from None
    import numpy as np

    model(np.zeros((1, *model.input_shape[1:]), np.float32))  # exporters trace a model that has run
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")  # converters check the suffix
    _remove(tmp)
    if fmt == "keras":
        shutil.copyfile(model_path, tmp)
    elif fmt == "savedmodel":
        model.export(str(tmp), format="tf_saved_model", verbose=False)
    elif fmt == "tflite":
        model.export(str(tmp), format="litert", verbose=False)
    else:
        import logging

        import warnings

        logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)  # its problems surface in _check_onnx
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model.export(str(tmp), format="onnx", verbose=False)
        _check_onnx(tmp, model)
    _remove(out)
    tmp.rename(out)  # only a complete export replaces an old one
    names = class_names_for(model_path)
    if names:
        (out.parent / "labels.txt").write_text("\n".join(names) + "\n")
    return out


def _check_onnx(path: Path, model) -> None:
    """tf2onnx writes a file even when it could not convert some op (GELU's Erfc, for one): run the
    file once in onnxruntime and refuse it, naming the problem, if it does not load."""
    import numpy as np

    try:
        import onnxruntime as ort
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


def _require(module: str, message: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(message)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
