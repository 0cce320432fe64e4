"""The report: tables equal the storage, every edge case renders, and the page works in a browser."""

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cifar_automl.cli import main
from cifar_automl.report import tables as report
from cifar_automl.report import write_report
from cifar_automl.results import load_bundle

from ..helpers import synthetic_study

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


def _study(tmp_path, name="synthetic", **kw):
    studies = tmp_path / "studies"
    studies.mkdir(exist_ok=True)
    return synthetic_study(f"sqlite:///{studies / (name + '.db')}", name=name, **kw), studies


def test_leaderboard_equals_the_storage(tmp_path):
    study, _ = _study(tmp_path, n_trials=60)
    board = report.leaderboard(report.trials_frame(study), top=10)
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    best = sorted(done, key=lambda t: t.user_attrs["val_accuracy"], reverse=True)[:10]
    assert list(board["number"]) == [t.number for t in best]
    for row, t in zip(board.itertuples(), best):
        assert row.val_accuracy == t.user_attrs["val_accuracy"]
        assert row.params == t.user_attrs["params"]
        assert row.block == t.user_attrs["config"]["arch"]["block"]
        assert row.learning_rate == t.user_attrs["config"]["train"]["learning_rate"]


def test_summary_and_block_comparison(tmp_path):
    study, _ = _study(tmp_path, n_trials=30)
    frame = report.trials_frame(study)
    s = report.summary(study, frame)
    assert (s["trials complete"], s["trials pruned"], s["trials failed"]) == (10, 10, 10)
    assert s["epochs without pruning"] == 20 * 9
    assert s["epochs run"] == frame["epochs_run"].sum()
    blocks = report.block_comparison(frame)
    assert set(blocks["block"]) <= {"plain", "inception", "residual"}
    assert blocks["trials"].sum() == 20
    front = report.pareto_front(frame, "params")
    assert front["val_accuracy"].is_monotonic_increasing and front["params"].is_monotonic_increasing


@pytest.mark.parametrize("kind", ["one", "only_pruned", "only_failed", "many"])
def test_report_renders_edge_cases(tmp_path, kind):
    n, states = {"one": (1, ("complete",)), "only_pruned": (4, ("pruned",)),
                 "only_failed": (3, ("fail",)), "many": (200, ("complete", "pruned", "pruned", "fail"))}[kind]
    _, studies = _study(tmp_path, n_trials=n, states=states)
    page = write_report("synthetic", studies_dir=studies)
    text = page.read_text()
    assert "No trial has been retrained yet" in text
    for name in ("trials.csv", "leaderboard.csv", "blocks.csv", "summary.md", "summary.csv"):
        assert (page.parent / name).is_file()
    if kind == "only_failed":
        assert "Not enough finished trials" in text
    if kind == "many":  # a long study: every trial is in the table (speed belongs in benchmarks, not here)
        assert len(pd.read_csv(page.parent / "trials.csv")) == n


def test_a_replay_recording_shows_random_search_over_its_grid(tmp_path):
    from cifar_automl.study import RECORDING

    study, studies = _study(tmp_path, n_trials=12, states=("complete", "complete", "fail"))
    plain = write_report("synthetic", studies_dir=studies, out=tmp_path / "plain")
    assert "Random search over this recording" not in plain.read_text()
    study.set_user_attr(RECORDING, {"points": 12})
    page = write_report("synthetic", studies_dir=studies, out=tmp_path / "recording")
    assert "Random search over this recording" in page.read_text()
    curve = pd.read_csv(page.parent / "random_search.csv")
    done = [t.user_attrs["val_accuracy"] for t in study.trials if t.state.name == "COMPLETE"]
    assert curve["trials"].iloc[-1] == 12  # every recorded trial drawn: the grid's best, surely
    assert curve["expected_best_val_accuracy"].iloc[-1] == pytest.approx(max(done))
    assert curve["expected_best_val_accuracy"].is_monotonic_increasing


def test_report_with_a_retrained_model(study_dir, retrained, capsys):
    studies = study_dir / "studies"
    assert main(["report", "--study-name", "tiny", "--studies-dir", str(studies)]) == 0
    page = studies / "tiny" / "report" / "index.html"
    assert str(page) in capsys.readouterr().out
    text = page.read_text()
    assert "Confusion matrix" in text and "Test images per class" in text
    wrong = pd.read_csv(retrained.out_dir / "predictions.csv").query("true != pred")
    assert ("Misclassified test images" in text) == (len(wrong) > 0)
    art = load_bundle(retrained.out_dir, retrained.trial)
    preds = pd.read_csv(retrained.out_dir / "predictions.csv")
    expected = pd.crosstab(preds["true"], preds["pred"]).reindex(index=range(3), columns=range(3), fill_value=0)
    np.testing.assert_array_equal(art.confusion.to_numpy(), expected.to_numpy())
    board = pd.read_csv(page.parent / "leaderboard.csv")
    assert board.loc[board["number"] == retrained.trial, "test_accuracy"].item() == pytest.approx(
        retrained.metrics["accuracy"])


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", "--study-name", "nothing", "--studies-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no study database" in err[0]


# Put first into a page: it keeps every console.error and uncaught exception, and writes them into the
# <body data-errors="..."> attribute once the page has loaded, where --dump-dom shows them (Chromium's
# own log gives console messages without their level).
WATCH = """<script>
window.__errors = [];
const __error = console.error;
console.error = function (...args) { window.__errors.push(args.map(String).join(" ")); __error.apply(console, args); };
window.addEventListener("error", (e) => window.__errors.push("uncaught: " + e.message));
window.addEventListener("load", () => setTimeout(() => document.body.setAttribute("data-errors", JSON.stringify(window.__errors)), 0));
</script>"""


def _console_errors(chromium_flags: list[str], page: Path) -> list[str]:
    """The console errors and uncaught exceptions of `page` in headless Chromium (the page is read
    with WATCH put first into its <head>)."""
    watched = page.with_name(f"watched-{page.name}")
    watched.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + WATCH, 1), encoding="utf-8")
    run = subprocess.run([*chromium_flags, "--dump-dom", watched.as_uri()], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'data-errors="([^"]*)"', run.stdout)
    assert found, "the page never finished loading: " + run.stdout[-500:]
    return json.loads(html.unescape(found.group(1)))


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="needs a headless Chromium (apt-get install chromium)")
def test_report_in_headless_chromium(study_dir, retrained, tmp_path):
    """No JavaScript errors, every plotly figure drawn, and a screenshot for a person to look at."""
    page = write_report("tiny", studies_dir=study_dir / "studies", out=tmp_path / "report")
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=20000"]
    # the check itself, on a page that does have a console error and an uncaught exception
    broken = tmp_path / "broken.html"
    broken.write_text("<html><head></head><body><script>console.error('boom'); throw new Error('kaput');</script>"
                      "</body></html>")
    assert _console_errors(flags, broken) == ["boom", "uncaught: Uncaught Error: kaput"]
    assert _console_errors(flags, page) == []
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    plots = dom.stdout.split('class="plotly-graph-div')[1:]
    assert len(plots) >= 8
    for chunk in plots:  # each figure div holds the SVG plotly drew into it
        assert "main-svg" in chunk.split("plotly-graph-div")[0], chunk[:300]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    run = subprocess.run([*flags, "--hide-scrollbars", "--window-size=1280,4000", f"--screenshot={shot}",
                          page.as_uri()], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and shot.stat().st_size > 50_000, run.stderr[-2000:]


def test_user_strings_are_escaped_in_the_page(tmp_path):
    """Class names (folder names) and study names are the user's text, never markup of the page."""
    from cifar_automl.results import RetrainSettings, retrain
    from cifar_automl.search import SearchSettings, run_search

    from ..helpers import write_image_tree

    evil = '<img src=x onerror="alert(1)">'
    tree = write_image_tree(tmp_path / "tree", n_per_class=16, size=8)
    os.rename(tree / "train" / "class1", tree / "train" / evil)
    name = "s<b>tudy"
    studies = tmp_path / "studies"
    run_search(SearchSettings(space="tiny", dataset="folder", data_dir=str(tree), trials=1, epochs=1, pruner="none",
                              study_name=name, studies_dir=str(studies), cache_dir=str(tmp_path / "cache"),
                              trials_per_process=0))
    retrain(RetrainSettings(study_name=name, studies_dir=str(studies), epochs=1, cache_dir=str(tmp_path / "cache"),
                            progress=False))
    text = write_report(name, studies_dir=studies).read_text()
    assert "Test images per class" in text
    assert evil not in text and "s<b>tudy" not in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in text and "s&lt;b&gt;tudy" in text


def test_report_compare_puts_other_studies_in_the_block_comparison(tmp_path, capsys):
    _, studies = _study(tmp_path, name="first", n_trials=12, seed=1)
    _study(tmp_path, name="second", n_trials=9, seed=2)
    out = tmp_path / "compared"
    assert main(["report", "--study-name", "first", "--studies-dir", str(studies), "--compare", "second",
                 "--out", str(out)]) == 0
    blocks = pd.read_csv(out / "blocks.csv")
    assert set(blocks["study"]) == {"first", "second"}
    for name in ("first", "second"):  # each study's finished trials, counted per block type
        frame = report.finished(report.trials_frame(_load(studies, name)))
        counts = frame.groupby("block").size().to_dict()
        assert dict(zip(blocks.loc[blocks["study"] == name, "block"], blocks.loc[blocks["study"] == name, "trials"])) == counts
    assert "Compared studies: first, second" in (out / "index.html").read_text()
    assert main(["report", "--study-name", "first", "--studies-dir", str(studies), "--compare", "third"]) == 2
    assert "no study database" in capsys.readouterr().err


def _load(studies, name):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{studies / (name + '.db')}")
