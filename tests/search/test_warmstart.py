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


def test_a_warm_start_runs_before_the_defaults_and_leaves_them_out_of_its_best(tmp_path):
    """`--warm-start OTHER_STUDY` on a space with defaults: the other study's best first (replayed, that
    order reaches a good configuration sooner), leaving out the defaults when they are among them, then
    the defaults."""
    import optuna

    from cifar_automl.search.space import load_space
    from cifar_automl.search.warmstart import queue_first

    space = load_space("airbench")
    defaults = space.default_params()
    others = [{**defaults, "learning_rate": defaults["learning_rate"] * f} for f in (0.5, 0.25, 2.0, 1.5, 0.75, 1.25)]
    # the defaults are the other study's second best; six more behind them
    _other_study(tmp_path, space, [(others[0], 0.9), (defaults, 0.8)] + [(o, 0.7 - 0.01 * i) for i, o in
                                                                         enumerate(others[1:])])

    def queued(**kw):
        study = optuna.create_study(direction="maximize")
        notes = queue_first(study, space, settings(tmp_path, space="airbench", **kw))
        return [t.user_attrs["warm_start"] for t in study.get_trials(states=(TrialState.WAITING,))], notes

    labels, notes = queued(warm_start="before")
    assert labels == ["before#0", "before#2", "before#3", "before#4", "before#5", "space defaults"]
    assert notes == ["warm start from before: 5 configuration(s) queued (before#0, before#2, before#3, before#4, "
                     "before#5)", "the space's defaults run after them"]
    assert queued() == (["space defaults"], ["the first trial runs the space's defaults"])
    # a study that has run a trial takes no defaults: among the other study's best, they are a warm start
    ran = optuna.create_study(direction="maximize")
    ran.tell(ran.ask(), 0.5)
    queue_first(ran, space, settings(tmp_path, space="airbench", warm_start="before"))
    assert [t.user_attrs["warm_start"] for t in ran.get_trials(states=(TrialState.WAITING,))] == [
        "before#0", "before#1", "before#2", "before#3", "before#4"]


def test_an_interrupted_queued_trial_is_queued_again_with_its_label_even_before_it_sampled():
    """Ctrl-C on the space's defaults: the retry is still the defaults (`auto.first_trial` finds it by its
    label), and one cut before it sampled anything is queued again with what it was queued with; a
    sampler's trial cut that early has nothing to repeat."""
    import optuna

    from cifar_automl.search.warmstart import requeue_interrupted

    study = optuna.create_study()
    study.enqueue_trial({"x": 1.0}, user_attrs={"warm_start": "space defaults"})
    for _ in range(3):  # the queued trial and a sampler's trial, both cut before sampling; one cut after
        trial = study.ask()
        if trial.number == 2:
            trial.suggest_float("x", 0.0, 2.0)
        trial.set_user_attr("fail_reason", "interrupted")
        study.tell(trial, state=TrialState.FAIL)
    assert requeue_interrupted(study) == 2 and requeue_interrupted(study) == 0  # once
    first, second = study.trials[3:]
    assert first.system_attrs["fixed_params"] == {"x": 1.0}
    assert first.user_attrs == {"retry_of": 0, "warm_start": "space defaults"}
    assert second.user_attrs == {"retry_of": 2} and second.system_attrs["fixed_params"] == study.trials[2].params
