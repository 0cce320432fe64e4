"""The report's analyses and number formats, on a synthetic study with known trials."""

import numpy as np
import pandas as pd
import pytest

from cifar_automl.report import analyses, tables
from cifar_automl.report import format as fmt

from ..helpers import synthetic_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return synthetic_study(f"sqlite:///{tmp_path_factory.mktemp('s') / 's.db'}", n_trials=60, seed=3)


def test_choice_table_counts_and_summarises_each_option(study):
    frame = tables.trials_frame(study)
    table = analyses.choice_table(frame)
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    for option in ("plain", "inception", "residual"):
        accs = [t.user_attrs["val_accuracy"] for t in done if t.user_attrs["config"]["arch"]["block"] == option]
        row = table[(table["choice"] == "block") & (table["option"] == option)].iloc[0]
        assert row["trials"] == len(accs) and row["best"] == max(accs)
        assert row["median"] == pytest.approx(np.median(accs))
        assert row["spread"] == pytest.approx(np.quantile(accs, 0.75) - np.quantile(accs, 0.25))
    assert set(table["choice"]) <= set(analyses.CHOICES) and "optimizer" in set(table["choice"])


def test_choices_at_equal_epochs_use_only_what_each_trial_reached(study):
    frame = tables.trials_frame(study)
    table = analyses.choice_at_equal_epochs(study, frame)
    row = table[(table["choice"] == "block") & (table["epoch"] == 1)].iloc[0]
    firsts = [t.intermediate_values[1] for t in study.trials
              if t.state.name in ("COMPLETE", "PRUNED") and t.user_attrs["config"]["arch"]["block"] == "plain"
              and 1 in t.intermediate_values]
    assert row["plain"] == pytest.approx(np.median(firsts))
    assert set(table["epoch"]) <= {1, 2, 4, 8, 9}


def test_best_curve_per_block_is_the_best_trials_curve(study):
    frame = tables.trials_frame(study)
    curves = analyses.best_curve_per_block(study, frame)
    for block, g in curves.groupby("block"):
        trial = study.trials[g["number"].iloc[0]]
        done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")
                and t.user_attrs["config"]["arch"]["block"] == block]
        assert trial.user_attrs["val_accuracy"] == max(t.user_attrs["val_accuracy"] for t in done)
        assert list(g["val_accuracy"]) == [trial.intermediate_values[e] for e in g["epoch"]]


def _frame(rows):
    cols = ["number", "state", "val_accuracy", "minutes", "epochs_run", "warm_start"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows])


def test_what_the_search_bought_is_the_best_so_far_against_the_defaults_trial():
    frame = _frame([(0, "complete", 0.70, 10.0, 9, "space defaults"), (1, "pruned", 0.90, 2.0, 1, None),
                    (2, "complete", 0.65, 10.0, 9, None), (3, "complete", 0.75, 8.0, 9, None),
                    (4, "fail", None, 0.0, 0, None), (5, "complete", 0.80, 10.0, 9, None)])
    table = analyses.search_value(frame)  # compute: 10, 12, 22, 30, 30, 40 min of 40
    assert table.iloc[0]["compute"] == "the space's defaults (trial 0)" and table.iloc[0]["best_val_accuracy"] == 0.70
    by_share = table.set_index("compute")
    # 10% = 4 min: nothing finished yet (no row); 25% = 10 min: the defaults; half = 20 min: still them (a
    # pruned trial's early score does not count); all: trial 5, 10 points above
    assert "10% of the compute" not in by_share.index
    assert by_share.loc["25% of the compute", "best_trial"] == 0
    assert by_share.loc["50% of the compute", "best_val_accuracy"] == 0.70
    assert by_share.loc["100% of the compute", "best_trial"] == 5
    assert by_share.loc["100% of the compute", "vs_reference_points"] == pytest.approx(10.0)
    assert by_share.loc["100% of the compute", "trials"] == 6
    no_defaults = analyses.search_value(frame.assign(warm_start=None))
    assert no_defaults.iloc[0]["compute"] == "the first complete trial (trial 0)"


def test_fidelity_ranking_correlates_each_epochs_score_with_the_final_one(tmp_path):
    import optuna

    study = optuna.create_study(direction="maximize")
    curves = {0: [0.1, 0.5, 0.6], 1: [0.2, 0.4, 0.7], 2: [0.3, 0.3, 0.8], 3: [0.4, 0.2, 0.5]}
    rows = []
    for n, c in curves.items():
        trial = study.ask()
        for e, v in enumerate(c, start=1):
            trial.report(v, e)
        study.tell(trial, max(c))
        rows.append((n, "complete", max(c), 1.0, 3, None))
    table = analyses.fidelity_ranking(study, _frame(rows)).set_index("epoch")
    # final scores 0.6, 0.7, 0.8, 0.5: ranks 2, 3, 4, 1
    # epoch 1 ranks 1, 2, 3, 4; epoch 2 ranks 4, 3, 2, 1: Spearman = 1 - 6 sum(d^2) / (n (n^2 - 1))
    assert table.loc[1, "rank_correlation"] == pytest.approx(1 - 6 * (1 + 1 + 1 + 9) / 60)
    assert table.loc[2, "rank_correlation"] == pytest.approx(1 - 6 * (4 + 0 + 4 + 0) / 60)
    assert list(table.index) == [1, 2] and table.loc[1, "trials"] == 4


def test_random_search_over_a_recording_is_exact_over_every_order():
    import itertools

    import optuna
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState, create_trial

    from cifar_automl.study import RECORDING

    scores = [0.5, 0.8, None, 0.6, 0.7, 0.9, 0.4]  # in recording order; trial 2 failed
    study = optuna.create_study(direction="maximize")
    # the grid's 7 points, the fifth interrupted once and re-run when the recording was resumed
    runs = [(0, 0.5), (1, 0.8), (2, None), (3, 0.6), (4, None), (5, 0.9), (6, 0.4), (4, 0.7)]
    for point, v in runs:
        study.add_trial(create_trial(params={"point": point}, distributions={"point": IntDistribution(0, 6)},
                                     value=v, state=TrialState.FAIL if v is None else TrialState.COMPLETE,
                                     user_attrs={"val_accuracy": v, "epoch_seconds": [20.0] * 9}))
    frame = tables.trials_frame(study)
    assert analyses.random_search_curve(study, frame).empty  # not a recording: nothing to draw
    study.set_user_attr(RECORDING, {"points": 7})
    table = analyses.random_search_curve(study, frame, max_rows=7).set_index("trials")
    assert list(table.index) == list(range(1, 8))
    values = [0.0 if v is None else v for v in scores]  # a failed draw found nothing
    for k in range(1, 8):  # brute force: the best of every k-subset, equally likely
        bests = sorted(max(c) for c in itertools.combinations(values, k))
        assert table.loc[k, "expected_best_val_accuracy"] == pytest.approx(np.mean(bests))
        assert table.loc[k, "p10_val_accuracy"] == pytest.approx(bests[int(np.ceil(0.1 * len(bests))) - 1])
        assert table.loc[k, "p90_val_accuracy"] == pytest.approx(bests[int(np.ceil(0.9 * len(bests))) - 1])
        assert table.loc[k, "trial_hours"] == pytest.approx(k * 3.0 / 60)
    assert list(table["recording_val_accuracy"]) == [0.5, 0.8, 0.8, 0.8, 0.9, 0.9, 0.9]  # point 4 came last
    assert table.loc[7, "expected_best_val_accuracy"] == pytest.approx(0.9)


def test_the_headline_compares_the_winner_with_the_best_baseline():
    baselines = pd.DataFrame([{"baseline": "vgg-bn-aug", "test_accuracy": 0.85, "params": 2_000_000, "minutes": 45.0},
                              {"baseline": "net1", "test_accuracy": 0.7, "params": 100_000, "minutes": 3.0}])
    frame = pd.DataFrame({"minutes": [10.0, 20.0]})
    text = analyses.headline({"retrained trial": 7}, frame, baselines,
                             {"accuracy": 0.8712, "params": 1_000_000, "train_minutes": 30.0})
    assert text == ("The retrained search winner (trial 7) tests 87.1%, 2.1 points above the best textbook model "
                    "trained on the same data (vgg-bn-aug, 85.0% after 45.0 min of training), 0.5x its parameters, "
                    "after 60.0 min of search and retraining.")


@pytest.mark.parametrize("column, value, text", [
    ("params", 596_000, "596k"), ("params", 1_234_567, "1.2M"), ("params", 950, "950"),
    ("val_accuracy", 0.89176, "89.2%"), ("minutes", 0.5, "30 s"), ("minutes", 7.25, "7.2 min"),
    ("minutes", 150, "2.5 h"), ("trial_hours", 2.0, "2.0 h"), ("learning_rate", 0.00123, "1.2e-03"),
    ("epochs_run", 9, "9"), ("block", "residual", "residual"), ("test_accuracy", float("nan"), ""),
])
def test_numbers_read_at_a_glance(column, value, text):
    assert fmt.cell(column, value) == text


def test_a_trials_origin_is_its_warm_start_its_retry_or_its_move_from_the_incumbent():
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from cifar_automl.study import LOCAL_MOVE

    dist = {"learning_rate": FloatDistribution(1e-4, 1e-1, log=True)}

    def trial(user_attrs=None, system_attrs=None):
        return create_trial(params={"learning_rate": 1e-3}, distributions=dist, value=0.5,
                            user_attrs=user_attrs or {}, system_attrs=system_attrs or {})

    study = optuna.create_study(direction="maximize")
    for t in (trial({"warm_start": "space defaults"}), trial(), trial({"retry_of": 1}),
              trial(system_attrs={LOCAL_MOVE: {"from": 0, "param": "learning_rate"}})):
        study.add_trial(t)
    frame = tables.trials_frame(study)
    assert list(frame["origin"].fillna("model")) == ["space defaults", "model", "retry of #1", "learning_rate of #0"]
    assert "origin" in tables.leaderboard(frame).columns
