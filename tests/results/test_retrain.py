"""Retrain -> evaluate -> export -> predict on a tiny study, with exports loaded in fresh processes."""

import importlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cifar_automl.cli import main
from cifar_automl.errors import StudyError, UserError
from cifar_automl.results import RetrainSettings, pick_trials, predict_files, retrain
from cifar_automl.results.export import export_model
from cifar_automl.study import load_existing_study


def test_retrain_writes_every_artifact_and_records_into_the_study(study_dir, retrained):
    out = retrained.out_dir
    for name in ("model.keras", "config.json", "history.csv", "metrics.json", "metrics.csv",
                 "confusion_matrix.csv", "predictions.csv", "samples.npz", "model_card.md"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "loss", "macro_f1", "weighted_f1", "macro_precision", "roc_auc_ovr",
                "latency_ms_batch1", "latency_ms_batch256", "per_class"):
        assert key in m, key
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3] and {"loss", "accuracy"} <= set(history.columns)
    preds = pd.read_csv(out / "predictions.csv")
    confusion = pd.read_csv(out / "confusion_matrix.csv", index_col=0).to_numpy()
    expected = pd.crosstab(preds["true"], preds["pred"]).reindex(index=range(3), columns=range(3), fill_value=0)
    np.testing.assert_array_equal(confusion, expected.to_numpy())
    assert m["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    card = json.loads((out / "config.json").read_text())
    assert card["class_names"] == ["class0", "class1", "class2"] and card["config"]["train"]["epochs"] == 3
    # the test split is the search's held-out one: 20% of 60 images, carved with a fixed seed
    assert card["data"]["n_test"] == 12 and card["data"]["retrain_train_images"] == 48
    study, _ = load_existing_study("tiny", studies_dir=study_dir / "studies")
    assert study.user_attrs[f"retrain:{retrained.trial}"]["accuracy"] == pytest.approx(m["accuracy"])
    assert "How to load" in (out / "model_card.md").read_text()


def test_retrain_refuses_to_overwrite_and_bad_trials(study_dir, retrained):
    base = dict(study_name="tiny", studies_dir=str(study_dir / "studies"), epochs=1,
                cache_dir=str(study_dir / "cache"), progress=False)
    with pytest.raises(UserError, match="already exists: pass --overwrite"):
        retrain(RetrainSettings(**base, trial=retrained.trial))
    with pytest.raises(StudyError, match="has no trial 99"):
        retrain(RetrainSettings(**base, trial=99))
    with pytest.raises(StudyError, match="no study database"):
        retrain(RetrainSettings(**{**base, "study_name": "nope"}))
    study, _ = load_existing_study("tiny", studies_dir=study_dir / "studies")
    assert len(pick_trials(study, None, top=5)) == 2


FRESH = textwrap.dedent("""
    import sys, json, numpy as np
    fmt, path, data = sys.argv[1], sys.argv[2], sys.argv[3]
    x = np.load(data)["x"].astype("float32")
    if fmt == "keras":
        import keras
        probs = keras.saving.load_model(path).predict(x, verbose=0)
    elif fmt == "savedmodel":
        import tensorflow as tf
        loaded = tf.saved_model.load(path)  # keep a reference: its variables live as long as it does
        probs = loaded.serve(x).numpy()
    elif fmt == "tflite":
        import tensorflow as tf
        interp = tf.lite.Interpreter(model_path=path)
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        interp.resize_tensor_input(inp["index"], x.shape)
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        probs = interp.get_tensor(out["index"])
    elif fmt == "onnx":
        import onnxruntime as ort
        sess = ort.InferenceSession(path)
        probs = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert "cifar_automl" not in sys.modules
    print(json.dumps(probs.tolist()))
""")


def _formats():
    import importlib.util

    return ["keras", "savedmodel", "tflite"] + (["onnx"] if importlib.util.find_spec("tf2onnx") else [])


@pytest.mark.parametrize("fmt", _formats())
def test_exports_load_without_the_package_and_agree(tmp_path, retrained, fmt):
    import keras

    from cifar_automl.results.export import FORMATS

    samples = np.load(retrained.out_dir / "samples.npz")
    x = samples["per_class"][:6]
    np.savez(tmp_path / "x.npz", x=x)
    out = export_model(retrained.out_dir / "model.keras", fmt, tmp_path / f"model{FORMATS[fmt].suffix}")
    assert (tmp_path / "labels.txt").read_text().split() == ["class0", "class1", "class2"]
    run = subprocess.run([sys.executable, "-c", FRESH, fmt, str(out), str(tmp_path / "x.npz")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    probs = np.array(json.loads(run.stdout.strip().splitlines()[-1]))
    reference = keras.saving.load_model(retrained.out_dir / "model.keras").predict(x.astype("float32"), verbose=0)
    np.testing.assert_allclose(probs, reference, atol=1e-4)
    with pytest.raises(UserError, match="already exists"):
        export_model(retrained.out_dir / "model.keras", fmt, out)


def _installed_backends():
    import importlib.util

    return [b for b in ("tensorflow", "jax", "torch") if importlib.util.find_spec(b)]


@pytest.mark.parametrize("backend", _installed_backends())
def test_a_keras_file_loads_and_agrees_on_every_installed_backend(tmp_path, retrained, backend):
    import keras

    x = np.load(retrained.out_dir / "samples.npz")["per_class"][:6]
    np.savez(tmp_path / "x.npz", x=x)
    run = subprocess.run([sys.executable, "-c", FRESH, "keras", str(retrained.out_dir / "model.keras"),
                          str(tmp_path / "x.npz")], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "KERAS_BACKEND": backend})
    assert run.returncode == 0, run.stderr[-2000:]
    probs = np.array(json.loads(run.stdout.strip().splitlines()[-1]))
    reference = keras.saving.load_model(retrained.out_dir / "model.keras").predict(x.astype("float32"), verbose=0)
    np.testing.assert_allclose(probs, reference, atol=1e-4)
    assert retrained.metrics["backend"] == keras.backend.backend()  # recorded with the model


def test_predict_top_k_with_resizing_colour_rule_and_bad_files(tmp_path, retrained, capsys):
    samples = np.load(retrained.out_dir / "samples.npz")
    img = samples["per_class"][0]
    Image.fromarray(img).resize((40, 30)).save(tmp_path / "big.png")  # another size
    Image.fromarray(img).convert("L").save(tmp_path / "gray.jpg")  # grayscale into an RGB model
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    results = predict_files(retrained.out_dir, [str(tmp_path)], top_k=2)
    by_name = {r.path.rsplit("/", 1)[-1]: r for r in results}
    assert set(by_name) == {"big.png", "gray.jpg", "broken.jpg"}
    assert "not a readable image" in by_name["broken.jpg"].error
    for name in ("big.png", "gray.jpg"):
        top = by_name[name].top
        assert len(top) == 2 and top[0][1] >= top[1][1] and top[0][0] in ("class0", "class1", "class2")
    code = main(["predict", str(retrained.out_dir / "model.keras"), str(tmp_path / "big.png"),
                 str(tmp_path / "broken.jpg"), str(tmp_path / "missing.png")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out.count("big.png:") == 1
    assert captured.err.count("cifar-automl: error:") == 2 and "Traceback" not in captured.err


def test_cli_export_errors_are_one_line(study_dir, retrained, capsys):
    studies = str(study_dir / "studies")
    assert main(["export", "--study-name", "tiny", "--studies-dir", studies, "--trial", "12345"]) == 2
    assert "has not been retrained" in capsys.readouterr().err
    assert main(["export", "--model", str(study_dir / "nope.keras")]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert main(["retrain", "--study-name", "tiny", "--studies-dir", studies, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]


@pytest.mark.skipif(not _formats()[-1] == "onnx", reason="needs tf2onnx")
def test_onnx_export_that_cannot_load_is_refused(tmp_path):
    from cifar_automl.config import ArchConfig
    from cifar_automl.models import build_model

    model = build_model(ArchConfig(block="plain", stages=1, base_filters=8, activation="gelu"), (8, 8, 3), 2)
    model.save(tmp_path / "gelu.keras")
    with pytest.raises(UserError, match="GELU activations use Erfc"):
        export_model(tmp_path / "gelu.keras", "onnx", tmp_path / "out" / "model.onnx")
    assert not list((tmp_path / "out").glob("*.onnx"))


def _own_copy(study_dir, retrained, tmp_path):
    """The session's tiny study and its retrain, copied: this test may replace what it finds."""
    import shutil

    shutil.copytree(study_dir / "studies", tmp_path / "studies")
    return dict(study_name="tiny", studies_dir=str(tmp_path / "studies"), epochs=1, trial=retrained.trial,
                cache_dir=str(study_dir / "cache"), progress=False)


def test_a_retrain_cut_short_leaves_the_earlier_one_whole_and_recorded(study_dir, retrained, tmp_path, monkeypatch):
    from cifar_automl.results import bundle, load_bundle

    retrain_module = importlib.import_module("cifar_automl.results.retrain")  # (the package exports the function)

    base = _own_copy(study_dir, retrained, tmp_path)
    out = tmp_path / "studies" / "tiny" / "retrain" / str(retrained.trial)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    study, _ = load_existing_study("tiny", studies_dir=tmp_path / "studies")
    recorded = study.user_attrs[f"retrain:{retrained.trial}"]

    def crash_midway(folder, model, *args):
        model.save(folder / bundle.MODEL_FILE)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(retrain_module, "write_bundle", crash_midway)
    with pytest.raises(OSError, match="No space left"):
        retrain(RetrainSettings(**base, overwrite=True))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier retrain, untouched
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no partial folder left
    study, _ = load_existing_study("tiny", studies_dir=tmp_path / "studies")
    assert study.user_attrs[f"retrain:{retrained.trial}"] == recorded
    monkeypatch.undo()
    (result,) = retrain(RetrainSettings(**base, overwrite=True))  # a whole one replaces it
    assert bundle.is_complete(out) and result.metrics["epochs"] == 1
    (out / bundle.METRICS_FILE).unlink()
    assert load_bundle(out, retrained.trial) is None  # a reader trusts only a whole bundle


def test_retrain_epochs_zero_is_refused_and_devices_are_set_up_as_in_the_search(study_dir, retrained, tmp_path,
                                                                               monkeypatch):
    retrain_module = importlib.import_module("cifar_automl.results.retrain")
    base = _own_copy(study_dir, retrained, tmp_path)
    with pytest.raises(UserError, match="--epochs must be at least 1, not 0"):
        retrain(RetrainSettings(**{**base, "epochs": 0}, overwrite=True))
    seen = []
    monkeypatch.setattr(retrain_module, "configure_devices", lambda mixed: seen.append(mixed) or "cpu")
    retrain(RetrainSettings(**base, overwrite=True, mixed_precision=True))
    assert seen == [True]


def test_retrain_top_early_stopping_and_overwrite_through_the_cli(study_dir, retrained, tmp_path, capsys):
    base = _own_copy(study_dir, retrained, tmp_path)
    studies = base["studies_dir"]
    assert main(["retrain", "--study-name", "tiny", "--studies-dir", studies, "--top", "2", "--epochs", "6",
                 "--early-stopping", "--patience", "1", "--val-fraction", "0.25", "--overwrite", "--quiet",
                 "--cache-dir", base["cache_dir"]]) == 0
    out = capsys.readouterr().out
    study, _ = load_existing_study("tiny", studies_dir=studies)
    ranked = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value, reverse=True)
    assert [int(line.split()[1].rstrip(":")) for line in out.splitlines()] == [t.number for t in ranked[:2]]
    for t in ranked[:2]:
        folder = tmp_path / "studies" / "tiny" / "retrain" / str(t.number)
        history = pd.read_csv(folder / "history.csv")
        info = json.loads((folder / "config.json").read_text())
        assert "val_accuracy" in history.columns and info["early_stopping"] is True  # a validation slice was kept
        assert info["data"]["retrain_train_images"] == 36  # 48 train + val images, a quarter kept aside
        best = history["val_accuracy"].idxmax() + 1
        assert len(history) in (min(best + 1, 6), 6)  # stopped one epoch (patience 1) after its best
    first = tmp_path / "studies" / "tiny" / "retrain" / str(ranked[0].number) / "model.keras"
    stamp = first.stat().st_mtime_ns
    assert main(["retrain", "--study-name", "tiny", "--studies-dir", studies, "--trial", str(ranked[0].number),
                 "--epochs", "1", "--quiet", "--cache-dir", base["cache_dir"]]) == 2  # no --overwrite: refused
    assert first.stat().st_mtime_ns == stamp
    assert main(["retrain", "--study-name", "tiny", "--studies-dir", studies, "--trial", str(ranked[0].number),
                 "--epochs", "1", "--quiet", "--overwrite", "--cache-dir", base["cache_dir"]]) == 0
    assert first.stat().st_mtime_ns != stamp
    assert len(pd.read_csv(first.parent / "history.csv")) == 1


def test_predict_converts_grayscale_to_rgb_and_rgb_to_luminance(tmp_path):
    """The colour rule, checked against what the model gives for the converted pixels directly."""
    import keras

    from cifar_automl.config import ArchConfig
    from cifar_automl.models import build_model

    rng = np.random.default_rng(0)
    for channels, given, convert in ((3, "L", lambda a: np.repeat(a[..., None], 3, axis=-1)),
                                     (1, "RGB", lambda a: np.asarray(Image.fromarray(a).convert("L"))[..., None])):
        model = build_model(ArchConfig(block="plain", stages=1, base_filters=8), (6, 6, channels), 3)
        path = tmp_path / f"c{channels}.keras"
        model.save(path)
        pixels = rng.integers(0, 255, (6, 6) if given == "L" else (6, 6, 3), dtype=np.uint8)
        Image.fromarray(pixels, given).save(tmp_path / f"x{channels}.png")
        (result,) = predict_files(path, [str(tmp_path / f"x{channels}.png")], top_k=3)
        expected = keras.saving.load_model(path).predict(convert(pixels)[None].astype("float32"), verbose=0)[0]
        got = dict(result.top)
        np.testing.assert_allclose([got[f"class_{i}"] for i in range(3)], expected, rtol=1e-5)
