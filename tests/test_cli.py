"""The command line: bad input is one line and exit code 2; a real run end to end; Ctrl-C and resume."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from cifar_automl.cli import main
from cifar_automl.search.liveness import OWNER

from .helpers import TIMED, write_image_tree


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    return write_image_tree(tmp_path_factory.mktemp("data") / "tree", n_per_class=20, size=8)


def _search_args(tree, studies, *extra, space="tiny"):
    return ["search", "--space", space, "--dataset", "folder", "--data-dir", str(tree),
            "--studies-dir", str(studies), "--cache-dir", str(Path(studies).parent / "cache"),
            "--subset", "1.0", "--quiet", *extra]


def _run(argv):
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return e.code


def _one_error_line(capsys, code, pattern):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert pattern in err[0], err[0]


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["search", "--space", "nope"], "unknown search space 'nope'"),
        (["search", "--dataset", "imagenet"], "invalid choice: 'imagenet'"),
        (["search", "--trials", "0", "--space", "tiny"], "--trials must be at least 1"),
        (["search", "--trials", "-3", "--space", "tiny"], "--trials must be at least 1"),
        (["search", "--subset", "many"], "subset"),
        (["search", "--sampler", "grid"], "invalid choice: 'grid'"),
        (["search", "--space", "tiny", "--dataset", "folder"], "needs --data-dir"),
        (["search", "--space", "tiny", "--dataset", "folder", "--data-dir", "/no/such/dir"], "not found"),
        (["search", "--bogus-flag"], "unrecognized arguments"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, pattern):
    _one_error_line(capsys, _run(argv), pattern)


def test_corrupt_data_dir_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad" / "train" / "cat"
    bad.mkdir(parents=True)
    (bad / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "bad" / "train" / "dog").mkdir()
    (tmp_path / "bad" / "train" / "dog" / "b.png").write_bytes(b"\x89PNG broken")
    _one_error_line(capsys, _run(_search_args(tmp_path / "bad", tmp_path / "studies")), "image")
    assert not (tmp_path / "studies").exists()


def test_search_end_to_end_then_errors_leave_the_study_untouched(tmp_path, capsys, image_tree):
    studies = tmp_path / "studies"
    assert _run(_search_args(image_tree, studies, "--trials", "2", "--epochs", "2")) == 0
    captured = capsys.readouterr()
    assert "2/2 finished trials" in captured.err and "optuna-dashboard sqlite:///" in captured.err
    assert "val_accuracy" in captured.out  # the final table
    db = studies / "tiny.db"
    snapshot = _tables(db)

    # the same study name with another space, another epoch budget, an unwritable place
    code = _run(_search_args(image_tree, studies, "--trials", "3", "--epochs", "2", "--study-name", "tiny",
                             space="plain"))
    _one_error_line(capsys, code, "study 'tiny' was created with space")
    code = _run(_search_args(image_tree, studies, "--trials", "3", "--epochs", "4"))
    _one_error_line(capsys, code, "created with epochs=2, not 4")
    code = _run(_search_args(image_tree, studies, "--storage", "postgresql://u:pw@127.0.0.1:1/db"))
    _one_error_line(capsys, code, "cannot open storage postgresql://u:***@127.0.0.1:1/db")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = _run(_search_args(image_tree, blocker / "studies", "--trials", "1"))
    _one_error_line(capsys, code, "cannot create studies directory")
    assert _tables(db) == snapshot


def _tables(db: Path) -> dict:
    """Every row of every table of a SQLite study, the write-ahead log included (read-only)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: sorted(map(repr, conn.execute(f"SELECT * FROM {n}").fetchall())) for n in names}


@TIMED
@pytest.mark.parametrize("stop, per_process", [
    (signal.SIGINT, "10"),  # Ctrl-C, trials in worker processes
    (signal.SIGINT, "0"),  # Ctrl-C, trials in the main process
    (signal.SIGTERM, "10"),  # a scheduler's pre-emption: handled as Ctrl-C
    (signal.SIGKILL, "0"),  # kill -9 of the main process: no chance to mark anything
], ids=["ctrl-c-workers", "ctrl-c-in-process", "sigterm", "kill-9"])
def test_a_stopped_search_resumes_and_finishes_only_the_remaining_trials(tmp_path, image_tree, stop, per_process):
    studies = tmp_path / "studies"
    cmd = [sys.executable, "-m", "cifar_automl",
           *_search_args(image_tree, studies, "--trials", "4", "--epochs", "3", "--trials-per-process", per_process)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    db = studies / "tiny.db"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:  # wait for one finished trial and one running
        if db.exists() and _count(db, "COMPLETE", "PRUNED") >= 1 and _count(db, "RUNNING") == 1 and (
                stop != signal.SIGKILL or _running_claimed(db)):
            # kill -9 once the running trial names its process: killed between `ask` and `claim`, it
            # has no owner to find gone and fails only by time (tests/search/test_liveness.py)
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=120)
    if stop == signal.SIGKILL:
        assert proc.returncode == -9 and _count(db, "RUNNING") == 1  # left RUNNING: nobody could mark it
    else:
        assert proc.returncode == 130, err
        assert "resume with: cifar-automl search" in err and "Traceback" not in err
        assert _count(db, "RUNNING") == 0
    done_before = _count(db, "COMPLETE", "PRUNED")
    assert 1 <= done_before < 4

    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == 4 and not [t for t in study.trials if t.state.name == "RUNNING"]
    assert f"({4 - done_before} run now" in again.stderr
    cut = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(cut) == 1  # the trial the stop cut short, re-run with its parameters (if it had sampled them)
    # a stop while the trial was still sampling leaves part of its parameters: the re-run fixes those
    redone = [t for t in study.trials if t.number > cut[0].number
              and t.params.items() >= cut[0].params.items()] if cut[0].params else [None]
    assert len(redone) == 1
    assert cut[0].user_attrs["fail_reason"] == "interrupted" or stop == signal.SIGKILL
    if stop == signal.SIGKILL:
        assert "its worker process" in cut[0].user_attrs["fail_reason"] and "gone" in again.stderr


def _count(db: Path, *states: str) -> int:
    try:
        with sqlite3.connect(db) as conn:
            marks = ",".join("?" * len(states))
            return conn.execute(f"SELECT COUNT(*) FROM trials WHERE state IN ({marks})", states).fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def _running_claimed(db: Path) -> bool:
    """Whether the study's RUNNING trial has recorded the process that runs it (liveness.OWNER)."""
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT COUNT(*) FROM trials JOIN trial_user_attributes USING (trial_id)"
                " WHERE state = 'RUNNING' AND key = ?", (OWNER,)).fetchone()[0] == 1
    except sqlite3.OperationalError:
        return False


def test_dashboard_serves_the_study_over_http(study_dir, tmp_path):
    import json
    import urllib.request

    cmd = [sys.executable, "-m", "cifar_automl", "dashboard", "--study-name", "tiny",
           "--studies-dir", str(study_dir / "studies"), "--port", "0"]  # a free port, chosen by the server itself
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()  # printed once the server listens
        assert "/dashboard/" in banner, proc.stderr.read()
        port = int(banner.split("http://127.0.0.1:")[1].split("/")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=30) as r:
            studies = json.load(r)["study_summaries"]
        (summary,) = [s for s in studies if s["study_name"] == "tiny"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", timeout=10) as r:
            detail = json.load(r)
        trials = detail["trials"]
        assert len(trials) == 2
        assert all(t["intermediate_values"] for t in trials)
        assert {"config", "params", "val_accuracy"} <= {a["key"] for a in trials[0]["user_attrs"]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dashboard_bad_input_is_one_line(tmp_path, capsys):
    assert _run(["dashboard", "--studies-dir", str(tmp_path)]) == 2
    assert "pass --study-name or --storage" in capsys.readouterr().err
    assert _run(["dashboard", "--study-name", "nope", "--studies-dir", str(tmp_path)]) == 2
    assert "no study database" in capsys.readouterr().err


CIFAR_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-train-jpeg.tar.gz"


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR_ARCHIVE.is_file(), reason="needs ../shared/datasets/cifar10-train-jpeg.tar.gz")
def test_real_cifar10_search_retrain_report(tmp_path, capsys):
    """The issue's check on real data: a small search of the residual space on the CIFAR-10 JPEGs."""
    studies = tmp_path / "studies"
    common = ["--studies-dir", str(studies)]
    assert _run(["search", "--space", "residual", "--dataset", "folder", "--data-dir", str(CIFAR_ARCHIVE),
                 "--subset", "1500", "--trials", "4", "--epochs", "3", "--quiet", *common]) == 0
    study = optuna.load_study(study_name="residual", storage=f"sqlite:///{studies / 'residual.db'}")
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 4 and all(t.intermediate_values for t in done)
    assert study.user_attrs["data"]["n_test"] == 10000  # carved from the 50,000, never searched
    assert _run(["retrain", "--study-name", "residual", "--epochs", "2", "--quiet", *common]) == 0
    assert _run(["report", "--study-name", "residual", *common]) == 0
    assert (studies / "residual" / "report" / "index.html").is_file()


def test_the_resume_line_and_the_dashboard_banner_hide_passwords_and_a_public_dashboard_is_warned_of(
        tmp_path, capsys, monkeypatch):
    import argparse
    import wsgiref.simple_server
    from types import SimpleNamespace

    from cifar_automl import cli
    from cifar_automl.search import SearchSettings

    study = optuna.create_study(study_name="s")
    outcome = SimpleNamespace(study=study, interrupted=True, stopped_reason=None, finished=0, ran=0, seconds=1.0,
                              storage_url="postgresql://bob:s3cret@db/automl")
    argv = ["search", "--storage", "postgresql://bob:s3cret@db/automl?password=s3cret"]
    code = cli.Search.finished(argparse.Namespace(argv=argv, top=5), SearchSettings(), outcome)
    err = capsys.readouterr().err
    assert code == 130 and "s3cret" not in err and "resume with: cifar-automl search --storage" in err

    served = []
    monkeypatch.setattr(wsgiref.simple_server.WSGIServer, "serve_forever",
                        lambda server: served.append(server.server_address[0]))
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="s", storage=url)
    assert main(["dashboard", "--storage", url, "--host", "0.0.0.0", "--port", "0"]) == 0
    assert served == ["0.0.0.0"]
    err = capsys.readouterr().err
    assert "warning: optuna-dashboard has no login" in err and re.search(r"ssh -L (\d+):127.0.0.1:\1 ", err)
    assert main(["dashboard", "--storage", url, "--port", "0"]) == 0 and "warning" not in capsys.readouterr().err


def test_five_failed_trials_in_a_row_stop_the_search_with_exit_code_1(tmp_path, image_tree, capsys, monkeypatch):
    from cifar_automl.search import objective

    def broken(*args, **kwargs):
        raise RuntimeError("the model cannot be built")

    monkeypatch.setattr(objective, "build_model", broken)
    code = _run(_search_args(image_tree, tmp_path / "studies", "--trials", "8", "--trials-per-process", "0"))
    err = capsys.readouterr().err
    assert code == 1, err
    assert "stopped early: 5 trials in a row failed (last: RuntimeError: the model cannot be built)" in err
