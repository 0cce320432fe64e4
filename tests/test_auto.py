"""Budgets: parsing, the search/retrain split, the retrain choice, and `auto` end to end."""

import json
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from cifar_automl.auto import (
    KNOWN_GOOD_SEARCH_GAIN,
    RETRAIN_ERROR_EXPONENT,
    SEARCH_SHARE,
    choose_retrain,
    default_search_share,
    first_trial,
    first_trial_cap,
    parse_duration,
    plan_budget,
    retrain_cost,
    retrain_plan_of,
    size_search,
    trial_seconds,
)
from cifar_automl.errors import UserError

from .helpers import TIMED
from .test_cli import _one_error_line, _run, image_tree  # noqa: F401  (fixture)


@pytest.mark.parametrize("text, seconds", [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45s", 45),
                                           ("600", 600), ("0.5h", 1800)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2x", "", "h", "-5", "0", "1h-3m"])
def test_bad_durations(text):
    with pytest.raises(UserError):
        parse_duration(text)


def test_plan_splits_the_budget():
    plan = plan_budget(7200, 0.4)  # 2 h: 4% (288 s) kept back, 40% of the rest searched
    assert (plan.reserve, plan.search, plan.retrain) == pytest.approx((288.0, 2764.8, 4147.2))
    with pytest.raises(UserError, match="--search-share"):
        plan_budget(7200, 1.0)
    none = plan_budget(7200, 0.0)
    assert none.search == 0 and none.retrain == pytest.approx(7200 - 288) and "no search" in none.describe()
    assert (plan.share, none.share) == pytest.approx((0.4, 0.0))


def test_the_default_share_is_what_a_search_around_a_known_good_trial_can_pay_for():
    assert default_search_share(False) == SEARCH_SHARE == 0.5  # from scratch: half
    share = default_search_share(True)  # after the defaults or a warm start: the most the retrain can spare
    assert 0 < share < 0.25
    assert retrain_cost(share) == pytest.approx(KNOWN_GOOD_SEARCH_GAIN)  # its cost is what such a search bought
    assert retrain_cost(share) == pytest.approx((1 - share) ** -RETRAIN_ERROR_EXPONENT - 1)
    assert retrain_cost(SEARCH_SHARE) > 3 * KNOWN_GOOD_SEARCH_GAIN and retrain_cost(0) == 0  # half costs far more


def test_a_search_after_a_known_good_trial_is_sized_on_it_or_not_run():
    """The measured Fashion-MNIST case: the defaults' trial took 85 s. Ten like it are half of 30 minutes,
    which costs the retrain more than a search buys: no search. At 2 hours they are an eighth: the search
    runs for just that long. An explicit share stands: with a warning when it holds fewer than ten, and
    unsearched only when it cannot hold the first trial."""
    most = default_search_share(True)
    short = plan_budget(1800, most)
    plan, said = size_search(short, 85.0, sized=True, what="the space's defaults")
    assert plan is None and "take 49% of the budget" in said and "no search" in said, said
    long = plan_budget(7200, most)
    plan, said = size_search(long, 85.0, sized=True, what="the space's defaults")
    assert plan.search == pytest.approx(850.0) and plan.total == 7200 and "the search runs 14.2 min" in said, said
    assert retrain_cost(plan.share) < KNOWN_GOOD_SEARCH_GAIN < retrain_cost(0.49)
    plan, said = size_search(short, 463.0, sized=True, what="the space's defaults")  # CIFAR-10 on 2 cores
    assert plan is None and "take more than the whole budget (268% of it): no search" in said, said
    half = plan_budget(1800, 0.5)  # --search-share 0.5: 864 s hold 10.2 trials of 85 s
    assert size_search(half, 85.0, sized=False, what="x") == (half, None)
    plan, said = size_search(half, 90.0, sized=False, what="x")  # 9.6 trials: too few, but asked for
    assert plan == half and said.startswith("warning:") and "fewer than the 10 a search needs" in said, said
    assert "about 9.6 trials" in said and "searching anyway" in said, said
    plan, said = size_search(half, 865.0, sized=False, what="x")  # not even the first trial fits
    assert plan is None and "cannot hold one trial like the first" in said and "no search" in said, said


@pytest.mark.parametrize("budget, share, sized", [(1800, default_search_share(True), True), (7200, 0.3, False)])
def test_a_first_trial_over_its_cap_leaves_no_room_for_a_search_and_one_under_it_does(budget, share, sized):
    """The cap that stops a slow first trial early is where `size_search` stops searching: stopping it
    never drops a search that would have run."""
    plan = plan_budget(budget, share)
    cap = first_trial_cap(plan, sized)
    assert size_search(plan, cap * 1.001, sized, "x")[0] is None
    assert size_search(plan, cap * 0.999, sized, "x")[0] is not None


def _trial(number, value, train_seconds, state=TrialState.COMPLETE, batch_size=None, augment=None):
    attrs = {"train_seconds": train_seconds}
    if batch_size or augment:
        attrs["config"] = {"train": {k: v for k, v in (("batch_size", batch_size), ("augment", augment)) if v}}
    t = create_trial(state=state, value=value if state == TrialState.COMPLETE else None,
                     params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, user_attrs=attrs)
    t.number = number
    return t


def test_the_best_trial_gets_all_the_epochs_that_fit():
    # 1,000 search images in 10 s per steady epoch -> 0.01 s/image -> 100 s per 10,000-image epoch,
    # planned as 110 s (the 10% margin)
    trials = [_trial(0, 0.80, [14.0, 10.0, 10.0]), _trial(1, 0.70, [2.0, 1.0, 1.0])]
    c = choose_retrain(trials, seconds=1150, retrain_images=10_000, search_train_images=1_000)
    assert (c.trial, c.epochs) == (0, 10) and c.epoch_seconds == pytest.approx(110)
    # the test pass is paid for first: 10,000 test images at a third of 0.01 s per view; one view
    # (no augmentation, no TTA) leaves 1,117 s, still 10 epochs
    c = choose_retrain(trials, seconds=1150, retrain_images=10_000, search_train_images=1_000,
                       test_images=10_000)
    assert c.epochs == 10 and c.train_seconds == pytest.approx(1150 - 100 / 3)
    # trained on flips and crops, it is tested on six views (flip + translate TTA): 200 s, 8 epochs
    trials = [_trial(0, 0.80, [14.0, 10.0, 10.0], augment="altflip_crop2")]
    c = choose_retrain(trials, seconds=1150, retrain_images=10_000, search_train_images=1_000,
                       test_images=10_000)
    assert c.epochs == 8 and c.train_seconds == pytest.approx(950)


def test_epoch_times_count_only_the_images_trained_on():
    # batch 256: a 1,000-image search epoch trains on 768 images (the partial batch is dropped), so
    # 7.68 s per epoch is 0.01 s/image; a 10,000-image retrain epoch trains on 9,984 of them
    trials = [_trial(0, 0.80, [9.0, 7.68, 7.68], batch_size=256)]
    c = choose_retrain(trials, seconds=1150, retrain_images=10_000, search_train_images=1_000)
    assert c.epoch_seconds == pytest.approx(9_984 * 0.01 * 1.1)


def test_a_short_budget_moves_to_a_faster_trial_and_caps_epochs():
    trials = [_trial(0, 0.80, [14.0, 10.0, 10.0]), _trial(1, 0.75, [2.0, 1.0, 1.0]),
              _trial(2, 0.99, [1.0], state=TrialState.PRUNED)]
    c = choose_retrain(trials, seconds=250, retrain_images=10_000, search_train_images=1_000)
    assert c.trial == 1 and c.epochs == 22 and "rank 2" in c.reason  # 10 s per epoch, planned as 11 s
    c = choose_retrain(trials, seconds=10_000, retrain_images=10_000, search_train_images=1_000)
    assert c.trial == 0 and c.epochs == 3 * 15  # at most 15 x the 3 search epochs
    c = choose_retrain(trials, seconds=5, retrain_images=10_000, search_train_images=1_000)
    assert c.trial == 1 and c.epochs == 1 and "fastest" in c.reason
    trials[1] = _trial(1, 0.75, [1.0] * 30)  # searched for 30 epochs
    c = choose_retrain(trials, seconds=150, retrain_images=10_000, search_train_images=1_000)
    assert c.trial == 1 and c.epochs == 13 and "short" in c.reason  # neither gets its search epochs


def test_a_retrain_fills_the_time_left_in_steps_when_whole_epochs_would_leave_too_much():
    # 0.01 s/image, batch 100: a 10,000-image retrain epoch is 110 s planned (100 steps); 1,000 s hold 9.09
    trials = [_trial(0, 0.80, [14.0, 10.0, 10.0], batch_size=100)]
    whole = choose_retrain(trials, seconds=1000, retrain_images=10_000, search_train_images=1_000)
    assert (whole.epochs, whole.steps) == (9, None)  # 10 s left unused: allowed without slack
    c = choose_retrain(trials, seconds=1000, retrain_images=10_000, search_train_images=1_000, slack=5)
    assert (c.epochs, c.steps, c.steps_per_epoch) == (10, 909, 100)  # 9.09 epochs: the tenth cut at step 909
    assert c.steps / c.steps_per_epoch * c.epoch_seconds == pytest.approx(1000, abs=1.1)  # one step at most
    assert "9.09 epochs (909 steps)" == c.length
    assert (c.train_seconds, c.max_epochs) == (1000, 45)  # what the retrain re-sizes its schedule within
    roomy = choose_retrain(trials, seconds=1000, retrain_images=10_000, search_train_images=1_000, slack=20)
    assert (roomy.epochs, roomy.steps) == (9, None)  # 10 s unused is within 20
    part = choose_retrain(trials, seconds=55, retrain_images=10_000, search_train_images=1_000, slack=1)
    assert (part.epochs, part.steps) == (1, 50)  # half an epoch fits: half an epoch, not a whole one over
    capped = choose_retrain(trials, seconds=10**6, retrain_images=10_000, search_train_images=1_000, slack=1)
    assert (capped.epochs, capped.steps) == (45, None)  # the epoch cap, whole


def test_a_pruned_defaults_trial_can_still_be_planned_and_its_cost_extrapolated():
    t = _trial(0, None, [20.0, 10.0], state=TrialState.PRUNED, batch_size=100)
    t.user_attrs["epoch_seconds"] = [25.0, 12.0]
    t.user_attrs["val_accuracy"] = 0.6
    # 2 of 10 epochs ran: the first (which also traced the model) once, the steady one for the other 9
    assert trial_seconds(t, epochs=10) == pytest.approx(25.0 + 9 * 12.0)
    assert trial_seconds(t, epochs=2) == pytest.approx(37.0)  # all it needed ran
    c = retrain_plan_of(t, 300, retrain_images=10_000, search_train_images=1_000, slack=1, reason="defaults")
    assert c.trial == 0 and c.val_accuracy == 0.6 and c.steps == 272  # 300 / 110 s = 2.73 epochs


def test_the_test_pass_is_timed_by_the_trials_own_validation_passes():
    """Evaluation per image is no fixed share of training: 0.33 of a training step on one machine, 0.15
    on another (CIFAR-10, 40 min). The trial's validation passes (an epoch's time past its training steps)
    time it; without a steady epoch, a third of a training step stands in."""
    t = _trial(0, 0.5, [20.0, 10.0])  # 10 s for 1,000 training images: 10 ms each
    t.user_attrs["epoch_seconds"] = [23.0, 11.0]  # 1 s for 1,000 validation images (the first pass traced)
    timed = retrain_plan_of(t, 300, retrain_images=1_000, search_train_images=1_000, test_images=10_000,
                            search_val_images=1_000)
    assert timed.train_seconds == pytest.approx(300 - 10_000 * 1e-3 * 1.1)  # one view: no augmentation, no TTA
    # the retrain's time limit holds the test's 11 s, which it keeps at the speed its epochs run
    assert timed.test_seconds == pytest.approx(11) and timed.time_limit == pytest.approx(300)
    guessed = retrain_plan_of(t, 300, retrain_images=1_000, search_train_images=1_000, test_images=10_000)
    assert guessed.train_seconds == pytest.approx(300 - 10_000 * 10e-3 / 3)


def test_a_failed_first_trial_leaves_the_one_queued_after_it_to_time_the_search():
    """A warm start that fails to train is still the study's first trial; the space's defaults, queued
    after it and stopped by the same cost cap, are the trial that times the share and is retrained."""
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"warm_start": "before#0"}))
    study.add_trial(create_trial(value=0.3, user_attrs={"config": {}}))  # a search trial: not queued
    timed = _trial(2, None, [20.0, 10.0], state=TrialState.PRUNED)
    timed.user_attrs["warm_start"] = "space defaults"
    study.add_trial(timed)
    assert first_trial(study).user_attrs["warm_start"] == "before#0"
    assert first_trial(study, usable=True).user_attrs["warm_start"] == "space defaults"
    empty = optuna.create_study()
    empty.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"warm_start": "space defaults"}))
    assert first_trial(empty, usable=True) is None


def test_a_first_trial_queued_again_is_found_by_its_retry():
    """Ctrl-C cut the defaults short (their retry carries their label: `requeue_interrupted`), or their
    worker went silent (Optuna's retry copies the attributes): the retry is the first trial, not the
    failed original."""
    for retry_attrs, system_attrs in (({"retry_of": 0}, {}), ({}, {"failed_trial": 0, "retry_history": [0]})):
        study = optuna.create_study(direction="maximize")
        cut = create_trial(state=TrialState.FAIL, user_attrs={"warm_start": "space defaults", "fail_reason": "x"})
        study.add_trial(cut)
        retry = _trial(1, 0.5, [20.0, 10.0])
        retry.user_attrs.update({"warm_start": "space defaults", **retry_attrs})
        retry.system_attrs.update(system_attrs)
        study.add_trial(retry)
        assert first_trial(study).number == 1 == first_trial(study, usable=True).number


def test_no_time_for_one_step_is_a_user_error_not_an_epoch_past_the_budget():
    """With less time left than one training step takes, a plan of one whole epoch would run past the
    budget by that epoch: `auto` says so instead."""
    trials = [_trial(0, 0.5, [20.0, 10.0], batch_size=100)]  # 10 ms an image: 110 s an epoch of 10,000, 1.1 a step
    with pytest.raises(UserError, match="not one training step of trial 0 fits in the 0.0 min left"):
        choose_retrain(trials, seconds=0.5, retrain_images=10_000, search_train_images=1_000, slack=1)
    assert choose_retrain(trials, seconds=30, retrain_images=10_000, search_train_images=1_000, slack=1).steps


def test_no_finished_trial_is_a_user_error():
    with pytest.raises(UserError, match="finished no trial"):
        choose_retrain([_trial(0, 0.5, [1.0], state=TrialState.PRUNED)], 100, 10, 10)


@TIMED
def test_auto_searches_retrains_and_reports_within_its_budget(image_tree, tmp_path, capsys):  # noqa: F811
    studies = tmp_path / "studies"
    start = time.time()
    code = _run(["auto", "--budget", "75s", "--space", "tiny", "--epochs", "2", "--dataset", "folder",
                 "--data-dir", str(image_tree), "--studies-dir", str(studies), "--subset", "1.0",
                 "--cache-dir", str(tmp_path / "cache"), "--trials-per-process", "0", "--quiet"])
    elapsed = time.time() - start
    out, err = capsys.readouterr()
    assert code == 0, err
    assert elapsed < 75 + 15, elapsed  # the last search trial and the report may run a little over
    assert "budget 1 min: search" in err and "retrain trial" in err
    assert "share of the budget is spent" in err and "stopped early" not in err  # the plan, not a failure
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{studies / 'tiny.db'}")
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    counted = f"{finished} finished trial{'' if finished == 1 else 's'} ("  # open-ended: no "/10000"
    assert f"share of the budget is spent: {counted}" in err, err
    (key,) = [k for k in study.user_attrs if k.startswith("retrain:")]
    trial = int(key.split(":")[1])
    metrics = json.loads((studies / "tiny" / "retrain" / str(trial) / "metrics.json").read_text())
    assert metrics["epochs"] >= 2 and 0 <= metrics["accuracy"] <= 1
    assert (studies / "tiny" / "report" / "index.html").is_file()
    assert f"trial {trial}: test accuracy" in out


def _tiny_with_defaults(tmp_path):
    """The tiny space with a known-good default for every choice: its first trial runs them."""
    text = (Path(__file__).parent.parent / "search_spaces" / "tiny.yaml").read_text()
    for line, default in [("choices: [plain, inception, residual]}", "plain"), ("low: 1, high: 2}", "1"),
                          ("choices: [true, false]}", "true"), ("low: 0.0, high: 0.5}", "0.1"),
                          ("choices: [adam, sgd]}", "adam"), ("log: true}", "0.01"), ("choices: [none, flip]}", "flip")]:
        assert line in text, line
        text = text.replace(line, line[:-1] + f", default: {default}}}")
    space = tmp_path / "tiny-defaults.yaml"
    space.write_text(text.replace("name: tiny", "name: tinydefaults"))
    return space


def _auto(space, image_tree, studies, *extra):  # noqa: F811
    return _run(["auto", "--space", str(space), "--epochs", "2", "--dataset", "folder", "--data-dir", str(image_tree),
                 "--studies-dir", str(studies), "--subset", "1.0", "--cache-dir", str(studies.parent / "cache"),
                 "--trials-per-process", "0", "--quiet", *extra])


def _earlier_study(space_path, studies):
    """A finished study "before" of the same space in `studies` whose best trial is the defaults with
    another learning rate: what `--warm-start before` queues first."""
    from optuna.trial import FixedTrial

    from cifar_automl.search.space import load_space

    space = load_space(str(space_path))
    params = {**space.default_params(), "learning_rate": 0.003}
    studies.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name="before", storage=f"sqlite:///{studies / 'before.db'}",
                                direction="maximize")
    study.add_trial(create_trial(value=0.9, user_attrs={"config": space.sample(FixedTrial(params), 2).to_dict()}))
    return params


@TIMED
def test_auto_spends_a_budget_too_short_for_a_search_on_retraining_the_first_trial(image_tree, tmp_path, capsys):  # noqa: F811
    """With `--warm-start`, the other study's best runs first, ahead of the defaults: the search share
    is timed on it, and it is what a budget too short for a search retrains. Too slow for a search, it
    stops after the two epochs that time it, as with --search-share 0, rather than run all four."""
    studies = tmp_path / "studies"
    space = _tiny_with_defaults(tmp_path)
    warm = _earlier_study(space, studies)
    start = time.time()
    code = _auto(space, image_tree, studies, "--budget", "60s", "--warm-start", "before", "--epochs", "4")
    elapsed = time.time() - start
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "the first of --warm-start before run first; a search of 10 trials like it follows if" in err, err
    assert "10 trials like the first, the warm start before#0" in err, err
    # 10 trials like it take more than the 19% share, or more than the whole budget, by the machine's speed
    assert "no search, the rest of the budget goes to retraining the warm start before#0" in err, err
    assert "retrain trial 0 (val" in err and "the warm start before#0: no search" in err, err
    study = optuna.load_study(study_name="tinydefaults", storage=f"sqlite:///{studies / 'tinydefaults.db'}")
    ran, waiting = study.trials[0], study.trials[1:]
    assert ran.params == warm and ran.user_attrs["warm_start"] == "before#0" and ran.state != TrialState.WAITING
    # stopped once its two timing epochs show it too slow (the cost cap, tests/search/test_objective.py);
    # on a loaded machine the search share's end can come first, after its first epoch (seen twice in full runs)
    stopped = (ran.user_attrs["pruned_reason"], ran.user_attrs["epochs_run"])
    assert stopped in (("cost cap", 2), ("time budget", 1)), stopped
    assert [t.user_attrs["warm_start"] for t in waiting] == ["space defaults"]  # queued after it, not run
    assert waiting[0].state == TrialState.WAITING and "retrain:0" in study.user_attrs
    assert elapsed < 60 + 15, elapsed


@TIMED
def test_a_warm_start_that_queues_nothing_is_a_search_from_scratch(image_tree, tmp_path, capsys):  # noqa: F811
    """`--warm-start` from a study with no complete trial, in a space without defaults: nothing known-good
    runs first, so once that shows, the share is a search from scratch's (half the budget), not one sized
    on the sampler's first draw."""
    studies = tmp_path / "studies"
    studies.mkdir()
    optuna.create_study(study_name="before", storage=f"sqlite:///{studies / 'before.db'}")
    code = _auto(Path(__file__).parent.parent / "search_spaces" / "tiny.yaml", image_tree, studies,
                 "--budget", "40s", "--warm-start", "before")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "--warm-start before queued nothing this space can run: a search from scratch, 50% of the budget" in err, err
    assert "10 trials like the first" not in err and "retrain trial" in err, err  # not sized on trial 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{studies / 'tiny.db'}")
    assert len(study.trials) > 1 and not any("warm_start" in t.user_attrs for t in study.trials)


@TIMED
def test_auto_with_no_search_share_retrains_the_defaults_after_two_epochs_of_them(image_tree, tmp_path, capsys):  # noqa: F811
    studies = tmp_path / "studies"
    code = _auto(_tiny_with_defaults(tmp_path), image_tree, studies, "--budget", "30s", "--search-share", "0")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "no search: two epochs of the space's defaults" in err and "retrain trial 0 (val" in err, err
    assert "study 'tinydefaults': 1 finished trial (1 run now" in err, err  # open-ended: no "/10000"
    study = optuna.load_study(study_name="tinydefaults", storage=f"sqlite:///{studies / 'tinydefaults.db'}")
    assert len(study.trials) == 1 and study.trials[0].user_attrs["epochs_run"] == 2
    retrained = json.loads((studies / "tinydefaults" / "retrain" / "0" / "metrics.json").read_text())
    assert retrained["epochs"] > 2  # capped at 15 x the epochs asked for
    trained = json.loads((studies / "tinydefaults" / "retrain" / "0" / "config.json").read_text())["config"]["train"]
    assert trained["epochs"] == retrained["epochs"]  # the saved config is the schedule trained, re-sized or not
    resizes = retrained["schedule_resizes"]  # re-sized once its first epoch was timed, last to the length trained
    assert resizes[0][0] == 1 and resizes[-1][1] == retrained["schedule_steps"], resizes
    assert "the retrain's schedule was re-sized after epoch" in out, out
    _one_error_line(capsys, _auto(Path(__file__).parent.parent / "search_spaces" / "tiny.yaml", image_tree,
                                  tmp_path / "other", "--budget", "30s", "--search-share", "0"), "has none")


@TIMED
def test_auto_resumed_after_ctrl_c_on_the_defaults_retrains_their_retry(image_tree, tmp_path):  # noqa: F811
    """`auto --search-share 0` cut short in the defaults' timing epochs prints "resume with"; the resumed
    run times and retrains the defaults' retry, where it used to stop on the cut original."""
    from cifar_automl.auto import AUTO_TRIALS, run_auto
    from cifar_automl.search import SearchReporter, SearchSettings

    class Interrupting(SearchReporter):
        def epoch(self, number, epoch, logs):
            raise KeyboardInterrupt

    settings = SearchSettings(space=str(_tiny_with_defaults(tmp_path)), dataset="folder", data_dir=str(image_tree),
                              subset=1.0, epochs=2, trials=AUTO_TRIALS, studies_dir=str(tmp_path / "studies"),
                              cache_dir=str(tmp_path / "cache"), trials_per_process=0)
    cut = run_auto(settings, 30, search_share=0, reporter=Interrupting(quiet=True), say=lambda _: None)
    assert cut.search.interrupted and cut.result is None
    resumed = run_auto(settings, 30, search_share=0, reporter=SearchReporter(quiet=True), say=lambda _: None)
    original, retry = resumed.search.study.trials
    # both timing epochs: no pruner sets the retry against the cut original's first epoch
    assert original.user_attrs["fail_reason"] == "interrupted" and retry.user_attrs["epochs_run"] == 2
    assert retry.user_attrs["retry_of"] == 0 and retry.user_attrs["warm_start"] == "space defaults"
    assert resumed.choice.trial == 1 and 0 <= resumed.result.metrics["accuracy"] <= 1


def test_auto_refuses_timeout_and_bad_budgets(capsys):
    _one_error_line(capsys, _run(["auto", "--budget", "1h", "--timeout", "60", "--space", "tiny"]),
                    "leave out --timeout")
    _one_error_line(capsys, _run(["auto", "--budget", "soon"]), "cannot read the duration")
    _one_error_line(capsys, _run(["auto", "--budget", "1h", "--search-share", "2"]), "--search-share")
