"""Textbook presets: shapes, parameter counts their architectures imply, baselines and warm starts."""

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from cifar_automl.cli import main
from cifar_automl.errors import UserError
from cifar_automl.models import PRESETS, build_preset
from cifar_automl.report import write_report
from cifar_automl.results import BaselineSettings, run_baseline
from cifar_automl.search import SearchSettings, run_search
from cifar_automl.search.space import load_space

from ..helpers import synthetic_splits
from .test_build import strided_1x1_convs


def conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def dense(nin, nout):
    return nin * nout + nout


def bn(c):
    return 4 * c


EXPECTED = {  # parameter counts from the layer lists in the issue, for 32x32x3 (28x28x1) and 10 classes
    "net1": conv(3, 3, 32) + conv(3, 32, 64) + conv(3, 64, 64) + dense(2 * 2 * 64, 512) + dense(512, 10),
    "net2": conv(5, 3, 32) + conv(5, 32, 64) + conv(5, 64, 64) + dense(4 * 4 * 64, 512) + dense(512, 10),
    "net3": conv(3, 3, 96) + conv(3, 96, 96) + conv(3, 96, 128) + 3 * conv(3, 128, 128)
    + dense(4 * 4 * 128, 1024) + dense(1024, 512) + dense(512, 10),
    "simple-dropout": conv(3, 3, 32) + conv(3, 32, 64) + dense(6 * 6 * 64, 128) + dense(128, 10),
    "simple-inception": conv(3, 3, 32) + conv(3, 32, 64) + conv(1, 64, 64) + conv(3, 64, 128) + conv(5, 64, 32)
    + dense(6 * 6 * (64 + 128 + 32 + 64), 128) + dense(128, 10),
    "simple-residual": conv(3, 3, 32) + conv(3, 32, 64) + conv(3, 64, 64) + dense(6 * 6 * 64, 128) + dense(128, 10),
    "three-block": conv(5, 3, 32) + conv(3, 32, 64) + conv(3, 64, 128) + dense(4 * 4 * 128, 128) + dense(128, 10),
    "three-block-bn": conv(5, 3, 32) + conv(3, 32, 64) + conv(3, 64, 128) + bn(32) + bn(64) + bn(128)
    + dense(4 * 4 * 128, 128) + dense(128, 10),
    "vgg-bn-aug": sum(conv(3, a, b) + bn(b) for a, b in [(3, 32), (32, 32), (32, 64), (64, 64), (64, 128),
                                                       (128, 128), (128, 256), (256, 256)]) + dense(2 * 2 * 256, 10),
    "wrn-16-8": conv(3, 3, 16, bias=False)
    + sum(bn(cin) + conv(3, cin, w, False) + bn(w) + conv(3, w, w, False) + (conv(1, cin, w, False) if cin != w else 0)
          for cin, w in [(16, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)])
    + bn(512) + dense(512, 10),
    "fmnist-cnn": conv(5, 1, 32) + conv(3, 32, 64) + conv(1, 64, 128) + dense(7 * 7 * 128, 1024) + dense(1024, 32)
    + dense(32, 10),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_trains_a_step_and_has_its_parameter_count(name):
    preset = PRESETS[name]
    model = build_preset(preset, preset.default_shape, 10)
    assert model.count_params() == EXPECTED[name]
    assert not strided_1x1_convs(model)  # see test_projection_shortcuts_survive_odd_batches
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 256, (2, *preset.default_shape)).astype("float32")
    assert np.isfinite(model.train_on_batch(x, np.array([0, 1])))


def test_presets_on_other_shapes_or_a_clear_error():
    assert build_preset(PRESETS["net1"], (28, 28, 1), 5).output.shape[-1] == 5
    assert build_preset(PRESETS["fmnist-cnn"], (32, 32, 3), 100).output.shape[-1] == 100
    with pytest.raises(UserError, match=r"preset net1 does not fit \(12, 12, 3\) inputs \(inputs from 22x22"):
        build_preset(PRESETS["net1"], (12, 12, 3), 10)


def test_baseline_is_trained_tested_and_kept_as_a_reference(study_dir, retrained, capsys):
    studies = study_dir / "studies"
    r = run_baseline(BaselineSettings(preset="three-block", study_name="tiny", studies_dir=str(studies),
                                      epochs=2, cache_dir=str(study_dir / "cache"), progress=False))
    assert r["study"] == "tiny-baselines" and 0 <= r["accuracy"] <= 1
    card = json.loads((r["out"] / "config.json").read_text())
    assert card["preset"] == "three-block" and card["data"]["n_test"] == 12  # the study's test split
    assert (r["out"] / "model_card.md").read_text().startswith("# Model card: reference model three-block")
    page = write_report("tiny", studies_dir=studies, out=study_dir / "report-with-baseline")
    text = page.read_text()
    board = pd.read_csv(page.parent / "leaderboard.csv")
    row = board[board["model"] == "three-block"]
    assert row["state"].tolist() == ["baseline"] and row["test_accuracy"].item() == pytest.approx(r["accuracy"])
    assert "baseline: three-block" in set(pd.read_csv(page.parent / "blocks.csv")["block"])
    winner = retrained.metrics["accuracy"]
    gap = abs(100 * (winner - r["accuracy"]))
    assert (f"tests {100 * winner:.1f}%, {gap:.1f} points {'above' if winner >= r['accuracy'] else 'below'} the best "
            f"textbook model trained on the same data (three-block, {100 * r['accuracy']:.1f}%") in text
    assert main(["baseline", "--model", "three-block", "--study-name", "tiny", "--studies-dir", str(studies),
                 "--epochs", "1", "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["baseline", "--model", "net1", "--study-name", "tiny", "--studies-dir", str(studies),
                 "--epochs", "1", "--quiet"]) == 2
    assert "does not fit (12, 12, 3)" in capsys.readouterr().err


def test_a_baseline_without_early_stopping_learns_from_the_validation_images_too(study_dir, capsys):
    """Like `retrain`: only a recipe that stops early keeps the validation slice out of training. Each
    reference trial's value is its test accuracy (metric `test_accuracy`)."""
    studies = study_dir / "studies"
    assert main(["baseline", "--model", "simple-dropout", "--study-name", "tiny", "--studies-dir", str(studies),
                 "--epochs", "1", "--quiet", "--cache-dir", str(study_dir / "cache")]) == 0
    assert "simple-dropout: test accuracy" in capsys.readouterr().out
    run_baseline(BaselineSettings(preset="three-block-bn", study_name="tiny", studies_dir=str(studies), epochs=1,
                                  cache_dir=str(study_dir / "cache"), progress=False))
    ref = optuna.load_study(study_name="tiny-baselines", storage=f"sqlite:///{studies / 'tiny.db'}")
    assert ref.metric_names == ["test_accuracy"]
    runs = {t.user_attrs["baseline"]: t for t in ref.trials}
    for name, early_stops in [("simple-dropout", False), ("three-block-bn", True)]:
        t = runs[name]
        card = json.loads((Path(t.user_attrs["path"]) / "config.json").read_text())
        data = card["data"]
        assert card["early_stopping"] is early_stops
        assert data["retrain_train_images"] == data["n_train"] + (0 if early_stops else data["n_val"])
        assert t.value == t.user_attrs["test_accuracy"]
        assert (t.user_attrs["val_accuracy"] is not None) is early_stops
    page = write_report("tiny", studies_dir=studies, out=study_dir / "report-with-two-baselines")
    board = pd.read_csv(page.parent / "leaderboard.csv").set_index("model")
    assert board.loc["simple-dropout", "test_accuracy"] == pytest.approx(runs["simple-dropout"].value)
    assert pd.isna(board.loc["simple-dropout", "val_accuracy"])  # an empty cell, not a made-up number


def test_baseline_list_and_summary(capsys):
    assert main(["baseline", "--list"]) == 0
    out = capsys.readouterr().out
    assert "net1" in out and "193,034 params" in out and "wrn-16-8" in out
    assert main(["summary", "--model", "simple-residual"]) == 0
    assert "res_add" in capsys.readouterr().out
    assert main(["baseline", "--model", "resnet-1000"]) == 2


def test_warm_start_from_baselines_runs_the_presets_first(tmp_path):
    splits = synthetic_splits(n_per_class=30, size=8)
    space = load_space("all")
    settings = SearchSettings(space="all", trials=1, epochs=1, studies_dir=str(tmp_path), trials_per_process=0,
                              warm_start="baselines")
    outcome = run_search(settings, prepared=(space, splits))
    first = outcome.study.trials[0]
    assert first.user_attrs["warm_start"] == "three-block"
    # three-block: conv5-32, conv3-64, conv3-128 (one conv a stage, widths doubling), pools, dense 128,
    # no batch norm, Adam 1e-3, batch 128; what the `all` space cannot say moves to its nearest value
    # (kernel 3 for all stages, the smallest weight decay searched, the cosine schedule)
    assert first.params == {
        "block": "plain", "stages": 3, "blocks_per_stage": 1, "base_filters": 32, "width_growth": 2.0,
        "kernel_size": 3, "activation": "relu", "batch_norm": False, "conv_dropout": 0.0, "pooling": "max",
        "head": "flatten", "dense_units": 128, "dense_dropout": 0.0, "plain.convs": 1, "optimizer": "adam",
        "learning_rate": 0.001, "weight_decay": 1e-06, "batch_size": 128, "lr_schedule": "cosine",
        "label_smoothing": 0.0, "augment": "none"}
    assert outcome.study.user_attrs["warm_started"] == ["baselines"]
    waiting = [t for t in outcome.study.trials if t.state.name == "WAITING"]
    assert [t.user_attrs["warm_start"] for t in waiting] == ["three-block-bn", "vgg-bn-aug"]


def test_params_for_rejects_configs_outside_the_space():
    space = load_space("residual")
    assert space.params_for(PRESETS["three-block"].as_config()) is None  # plain block: not in the space
    assert space.params_for(PRESETS["wrn-16-8"].as_config()) is None  # 128 filters: not a choice
