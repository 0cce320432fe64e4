"""export and predict on small models built here: what they write, what they never delete, and what
they say of models this tool did not make."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from cifar_automl.cli import main
from cifar_automl.config import ArchConfig
from cifar_automl.errors import UserError
from cifar_automl.models import build_model
from cifar_automl.results import predict_files
from cifar_automl.results.export import export_model, export_path
from cifar_automl.results.predict import as_probabilities


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model = build_model(ArchConfig(block="plain", stages=1, base_filters=8), (8, 8, 3), 3)
    model.save(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps({"class_names": ["a", "b", "c"]}))
    return folder / "model.keras"


def _user_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    return folder


@pytest.mark.parametrize("fmt", ["keras", "savedmodel"])
def test_export_into_an_existing_folder_writes_inside_it_and_deletes_nothing(tmp_path, model_file, fmt, capsys):
    folder = _user_folder(tmp_path)
    code = main(["export", "--model", str(model_file), "--format", fmt, "--out", str(folder), "--overwrite"])
    assert code == 0, capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "my notes"
    written = folder / ("model.keras" if fmt == "keras" else "model")
    assert written.exists() and str(written) in capsys.readouterr().out
    # again: the export it wrote is replaced, the user's file is still not touched
    assert main(["export", "--model", str(model_file), "--format", fmt, "--out", str(folder), "--overwrite"]) == 0
    assert (folder / "notes.txt").read_text() == "my notes" and written.exists()


def test_export_refuses_to_replace_what_is_not_its_export(tmp_path, model_file):
    folder = _user_folder(tmp_path)
    with pytest.raises(UserError, match="is not a keras export: refusing"):
        export_model(model_file, "keras", folder / "notes.txt", overwrite=True)
    with pytest.raises(UserError, match="is not a savedmodel export: refusing"):
        export_model(model_file, "savedmodel", folder / "notes.txt", overwrite=True)
    assert (folder / "notes.txt").read_text() == "my notes"


def test_export_paths(tmp_path, model_file):
    folder = _user_folder(tmp_path)
    assert export_path(model_file, "tflite", None) == model_file.parent / "export" / "model.tflite"
    assert export_path(model_file, "tflite", folder) == folder / "model.tflite"
    assert export_path(model_file, "tflite", tmp_path / "x.tflite") == tmp_path / "x.tflite"
    assert export_path(model_file, "tflite", tmp_path / "new", formats=2) == tmp_path / "new" / "model.tflite"
    (folder / "saved").mkdir()
    (folder / "saved" / "saved_model.pb").write_bytes(b"")
    assert export_path(model_file, "savedmodel", folder / "saved") == folder / "saved"  # a SavedModel is the target


def _foreign(tmp_path, name, model):
    model.save(tmp_path / f"{name}.keras")
    return tmp_path / f"{name}.keras"


def test_foreign_models_get_one_clear_error(tmp_path, capsys):
    image = keras.Input((8, 8, 3))
    two_inputs = keras.Model([image, keras.Input((4,))], keras.layers.Dense(2)(keras.layers.Flatten()(image)))
    vector = keras.Input((10,))
    tabular = keras.Model(vector, keras.layers.Dense(2, activation="softmax")(vector))
    free = keras.Input((None, None, 3))
    any_size = keras.Model(free, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(free)))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
    for name, model, message in (("two", two_inputs, "2 inputs"), ("tabular", tabular, "is not an image"),
                                 ("free", any_size, "is not an image of a fixed size")):
        path = _foreign(tmp_path, name, model)
        for argv in (["predict", str(path), str(tmp_path / "x.png")], ["export", "--model", str(path)]):
            assert main(argv) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and message in err[0] and "unexpected" not in err[0], err


def test_a_model_that_outputs_logits_gets_probabilities(tmp_path):
    image = keras.Input((4, 4, 3))
    logits = keras.layers.Dense(3, kernel_initializer="ones", bias_initializer=keras.initializers.Constant([0, 1, 2]))(
        keras.layers.Flatten()(keras.layers.Rescaling(0.0)(image)))
    path = _foreign(tmp_path, "logits", keras.Model(image, logits))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "x.png")
    (result,) = predict_files(path, [str(tmp_path / "x.png")], top_k=3)
    expected = np.exp([2, 1, 0]) / np.exp([0, 1, 2]).sum()
    assert [name for name, _ in result.top] == ["class_2", "class_1", "class_0"]
    np.testing.assert_allclose([p for _, p in result.top], expected, rtol=1e-5)
    probs = np.array([[0.2, 0.8], [1.0, 0.0]])
    assert as_probabilities(probs) is not None and np.allclose(as_probabilities(probs), probs)


def test_a_decompression_bomb_is_refused_alone(tmp_path, model_file, monkeypatch):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "ok.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x64 is now "a bomb" (over twice the limit)
    results = {r.path.rsplit("/", 1)[-1]: r for r in predict_files(model_file, [str(tmp_path)])}
    assert results["ok.png"].top is not None and results["ok.png"].error is None
    assert "too large" in results["huge.png"].error
