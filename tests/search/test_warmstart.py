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


def _other_study(tmp_path, space, scored):
    """A finished study named "before" in `tmp_path/studies` with one complete trial per (params, score)."""
    import optuna
    from optuna.trial import FixedTrial, create_trial

    (tmp_path / "studies").mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name="before", storage=f"sqlite:///{tmp_path / 'studies' / 'before.db'}",
                                direction="maximize")
    for params, score in scored:
        cfg = space.sample(FixedTrial(params), 2)
        study.add_trial(create_trial(value=score, user_attrs={"config": cfg.to_dict()}))


def test_another_studys_best_are_queued_before_the_spaces_defaults(tmp_path):
    """`--warm-start OTHER_STUDY` on a space with defaults: the other study's best first (they measured
    better than the defaults on other data), then the defaults, unless they are among them; presets
    (`baselines`) go after the defaults."""
    import optuna

    from cifar_automl.search.space import load_space
    from cifar_automl.search.warmstart import queue_first

    space = load_space("airbench")
    defaults = space.default_params()
    other = {**defaults, "learning_rate": defaults["learning_rate"] / 2}
    _other_study(tmp_path, space, [(other, 0.9), (defaults, 0.8)])

    def queued(**kw):
        study = optuna.create_study(direction="maximize")
        notes = queue_first(study, space, settings(tmp_path, space="airbench", **kw))
        return [t.user_attrs["warm_start"] for t in study.get_trials(states=(TrialState.WAITING,))], notes

    labels, notes = queued(warm_start="before")
    assert labels == ["before#0", "before#1"]  # the defaults were the other study's second best: not again
    assert notes == ["warm start from before: 2 configuration(s) queued (before#0, before#1)"]
    _other_study(tmp_path / "b", space, [(other, 0.9)])
    labels, notes = queued(warm_start="before", studies_dir=str(tmp_path / "b" / "studies"))
    assert labels == ["before#0", "space defaults"] and notes[-1] == "the space's defaults are queued after them"
    labels, _ = queued()
    assert labels == ["space defaults"]
