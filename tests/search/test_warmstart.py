"""What a study tries first: the space's defaults (tests/search/test_run.py), presets
(tests/models/test_presets.py), or the best trials of another study."""

from optuna.trial import TrialState

from .common import run, settings


def test_warm_start_from_another_study_runs_its_best_configurations_first(tmp_path):
    source = run(settings(tmp_path, trials=4, study_name="before", pruner="none"))
    best = sorted((t for t in source.study.trials if t.state == TrialState.COMPLETE),
                  key=lambda t: t.value, reverse=True)
    outcome = run(settings(tmp_path, trials=2, study_name="after", warm_start="before", pruner="none"))
    first = outcome.study.trials[:2]
    assert [t.user_attrs["warm_start"] for t in first] == [f"before#{best[0].number}", f"before#{best[1].number}"]
    assert [t.params for t in first] == [best[0].params, best[1].params]
    waiting = [t for t in outcome.study.trials if t.state == TrialState.WAITING]
    assert len(waiting) == min(5, len(best)) - 2  # the five best, queued once; two have run
    again = run(settings(tmp_path, trials=3, study_name="after", warm_start="before", pruner="none"))
    assert len([t for t in again.study.trials if "warm_start" in t.user_attrs]) == min(5, len(best))  # not re-queued
