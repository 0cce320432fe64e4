import keras
import optuna
import pytest
from optuna.trial import TrialState

from cifar_automl.errors import StudyError, UserError
from cifar_automl.search import SearchReporter, prepare, run_search
from cifar_automl.search.space import load_space
from cifar_automl.study import count_finished, open_storage

from .common import SPLITS, run, settings


def test_search_stores_trials_with_curves_and_attributes(tmp_path):
    outcome = run(settings(tmp_path, trials=4, epochs=3))
    study = outcome.study
    assert outcome.finished == 4 == count_finished(study)
    assert (tmp_path / "studies" / "tiny.db").exists()
    assert study.user_attrs["identity"]["space"] == "tiny"
    assert study.user_attrs["data"]["n_train"] == len(SPLITS.x_train)
    for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)):
        ua = t.user_attrs
        assert set(ua) >= {"config", "params", "flops", "epoch_seconds", "history", "val_accuracy",
                           "val_loss", "cifar_automl_version", "images_per_second", "normalization"}
        assert ua["backend"] == keras.backend.backend() and ua["device"].startswith(("CPU: ", "GPU: "))
        assert len(t.intermediate_values) == ua["epochs_run"] == len(ua["epoch_seconds"])
        assert list(t.intermediate_values.values()) == pytest.approx(ua["history"]["val_accuracy"], abs=1e-6)
        if t.state == TrialState.COMPLETE:
            assert t.value == ua["val_accuracy"] == pytest.approx(max(ua["history"]["val_accuracy"]), abs=1e-6)
        assert ua["config"]["train"]["epochs"] == 3


def test_a_new_study_first_runs_the_space_defaults_once(tmp_path):
    text = load_space("tiny").source
    text = open(text).read().replace(
        "block: {type: categorical, choices: [plain, inception, residual]}",
        "block: {type: categorical, choices: [plain, inception, residual], default: residual}",
    ).replace("learning_rate: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}",
              "learning_rate: {type: float, low: 1.0e-3, high: 1.0e-1, log: true, default: 0.01}")
    path = tmp_path / "tiny_defaults.yaml"
    path.write_text(text)
    space = load_space(str(path))
    outcome = run(settings(tmp_path, space=str(path), trials=2), space=space)
    first, second = outcome.study.get_trials()
    assert first.params["block"] == "residual" and first.params["learning_rate"] == 0.01
    assert first.user_attrs["warm_start"] == "space defaults" and "warm_start" not in second.user_attrs
    more = run(settings(tmp_path, space=str(path), trials=3), space=space)  # resuming queues nothing
    assert "warm_start" not in more.study.get_trials()[2].user_attrs


def test_after_a_run_the_sqlite_file_alone_holds_the_study(tmp_path):
    """The write-ahead log is copied into the .db at the end of a run: a copy of the .db without its
    -wal file has every trial (and later readers have nothing left to write into the file)."""
    import shutil

    outcome = run(settings(tmp_path, trials=2, trials_per_process=1))
    db = tmp_path / "studies" / "tiny.db"
    shutil.copy(db, tmp_path / "copy.db")
    copy = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'copy.db'}")
    assert outcome.finished == 2 and count_finished(copy) == 2
    assert [t.params for t in copy.trials] == [t.params for t in outcome.study.trials]


def test_rerun_only_runs_the_missing_trials(tmp_path):
    first = run(settings(tmp_path, trials=2))
    assert first.ran == 2
    again = run(settings(tmp_path, trials=2))
    assert again.ran == 0 and again.finished == 2
    more = run(settings(tmp_path, trials=3))
    assert more.ran == 1 and more.finished == 3


def test_a_study_made_with_another_space_or_epochs_is_refused_untouched(tmp_path):
    run(settings(tmp_path, trials=1))
    url = f"sqlite:///{tmp_path / 'studies' / 'tiny.db'}"
    before = len(optuna.load_study(study_name="tiny", storage=url).trials)
    with pytest.raises(StudyError, match="created with epochs=2, not 5"):
        run(settings(tmp_path, trials=2, epochs=5))
    with pytest.raises(StudyError, match="space"):
        run(settings(tmp_path, trials=2, study_name="tiny", space="plain"))
    assert len(optuna.load_study(study_name="tiny", storage=url).trials) == before


def test_a_resume_with_another_seed_or_other_data_is_refused_untouched(tmp_path):
    """Trials scored on different validation splits must not mix: the seed and the data (a hash of the
    training and validation images the trials see) are part of a study's identity."""
    from .common import synthetic_splits

    run(settings(tmp_path, trials=1))
    url = f"sqlite:///{tmp_path / 'studies' / 'tiny.db'}"
    snapshot = _contents(url)
    with pytest.raises(StudyError, match="created with seed=0, not 1: rerun with the same --seed"):
        run(settings(tmp_path, trials=2, seed=1))
    other = synthetic_splits(n_per_class=30, size=8, seed=5)  # the same shapes and counts, other images
    with pytest.raises(StudyError, match="data_fingerprint=.*--dataset/--data-dir"):
        run_search(settings(tmp_path, trials=2), prepared=(load_space("tiny"), other))
    assert _contents(url) == snapshot
    assert run(settings(tmp_path, trials=2)).finished == 2  # the same command resumes


def _contents(url):
    """Everything a refused run could have changed in a study: attributes, trials and their states."""
    study = optuna.load_study(study_name="tiny", storage=url)
    return (study.user_attrs, [(t.number, t.state, t.params, t.user_attrs) for t in study.trials])


def test_ctrl_c_marks_the_trial_and_the_rerun_retries_its_parameters(tmp_path):
    class Interrupting(SearchReporter):
        def epoch(self, number, epoch, logs):
            if number == 1:
                raise KeyboardInterrupt

    # no pruner: trial 1 must reach an epoch end (on some backends' numbers Hyperband stops it before)
    outcome = run(settings(tmp_path, trials=3, pruner="none"), reporter=Interrupting(quiet=True))
    assert outcome.interrupted and outcome.finished == 1
    study = outcome.study
    failed = study.trials[1]
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"] == "interrupted"
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]

    resumed = run(settings(tmp_path, trials=3, pruner="none"))
    assert resumed.finished == 3 and resumed.ran == 2
    retry = [t for t in resumed.study.trials if t.user_attrs.get("retry_of") == 1]
    assert len(retry) == 1 and retry[0].params == failed.params


def test_bad_settings_and_storage_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--trials must be at least 1"):
        prepare(settings(tmp_path, trials=0))
    with pytest.raises(UserError, match="--epochs"):
        prepare(settings(tmp_path, epochs=-1))
    with pytest.raises(StudyError, match="cannot open storage"):
        open_storage("postgresql://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(StudyError, match="nobody:\\*\\*\\*@"):
        open_storage("postgresql://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(StudyError, match="cannot open storage"):
        open_storage("notadb://x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StudyError, match="cannot create studies directory"):
        open_storage(f"sqlite:///{blocker / 'sub' / 'x.db'}")


def test_journal_storage_works_for_one_file(tmp_path):
    outcome = run(settings(tmp_path, trials=1, storage=str(tmp_path / "study.log")))
    assert outcome.finished == 1 and (tmp_path / "study.log").exists()


def test_a_small_folder_is_searched_whole_without_asking(tmp_path):
    """120 images and no --subset: the default means "at most 10,000", not "exactly"; only a subset
    the user asked for may be refused."""
    from ..helpers import write_image_tree

    tree = write_image_tree(tmp_path / "tree", n_per_class=40, size=8)
    base = dict(dataset="folder", data_dir=str(tree), cache_dir=str(tmp_path / "cache"))
    space, splits = prepare(settings(tmp_path, **base))
    assert splits.info["n_train"] + splits.info["n_val"] == 96  # 120 minus the carved 20% test split
    with pytest.raises(UserError, match="bad subset 500: pass an image count between 3"):
        prepare(settings(tmp_path, subset=500, **base))
