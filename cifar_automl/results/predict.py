"""Classify image files with a saved `.keras` model: top-k classes with probabilities.

Images of any size are resized (bilinear) to the model's input size. Colour rule: an image is
converted to the model's channel count, so a grayscale image given to an RGB model is repeated over
three channels, and a colour image given to a grayscale model becomes its luminance (PIL's "L").
A file that cannot be read gets its own error; the others are still classified.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import keras
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..data import IMAGE_EXTENSIONS
from ..errors import UserError
from .bundle import MODEL_FILE, class_names_for, classifier_shape


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]] | None = None  # (class name, probability), best first
    error: str | None = None


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files as given; folders become the images directly inside them, sorted."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS))
        else:
            paths.append(p)
    return paths


def load_image(path: Path, height: int, width: int, channels: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (width, height):
                im = im.resize((width, height), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.float32)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except Image.DecompressionBombError as e:  # a huge image (a decompression bomb): this file only
        raise UserError(f"{path}: refused, too large ({str(e).splitlines()[0][:120]})") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable image ({str(e).splitlines()[0][:120]})") from None
    return arr[..., None] if channels == 1 else arr


def load_classifier(model_path: str | Path):
    """A `.keras` file, or a retrain folder holding `model.keras`; returns (model, class names)."""
    path = Path(model_path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise UserError(f"model not found: {model_path}")
    try:
        model = keras.saving.load_model(path)
    except Exception as e:
        raise UserError(f"cannot load model {path}: {str(e).splitlines()[0][:200]}") from None
    *_, n = classifier_shape(model, path)
    names = class_names_for(path) or [f"class_{i}" for i in range(n)]
    if len(names) != n:
        raise UserError(f"{path}: {len(names)} class names beside the model, but it predicts {n} classes")
    return model, names


def as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Class probabilities from a model's outputs: as they are when each row is a distribution (this
    tool's models end in a softmax), else the softmax of them (a foreign model that outputs logits)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.min() >= -1e-6 and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predict_files(model_path: str | Path, inputs: Iterable[str], top_k: int = 3) -> list[Prediction]:
    """The top-k classes of every image in `inputs` (files or folders); unreadable ones carry an error."""
    model, names = load_classifier(model_path)
    height, width, channels, _ = classifier_shape(model, model_path)
    results: list[Prediction] = []
    images: list[np.ndarray] = []
    for path in expand_inputs(inputs):
        try:
            images.append(load_image(path, height, width, channels))
            results.append(Prediction(str(path)))
        except UserError as e:
            results.append(Prediction(str(path), error=str(e)))
    probs = iter(as_probabilities(model.predict(np.stack(images), verbose=0)) if images else [])
    k = max(1, min(top_k, len(names)))
    for pred in results:
        if pred.error is None:
            p = next(probs)
            pred.top = [(names[i], float(p[i])) for i in np.argsort(p)[::-1][:k]]
    return results
