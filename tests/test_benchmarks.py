"""The replay benchmark's machinery (benchmarks/replay.py) on a synthetic recording: each method pays the
recorded seconds of exactly the epochs it asks for, and the speed-up line reads as documented."""

import importlib.util
import itertools
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def replay():
    spec = importlib.util.spec_from_file_location("replay_benchmark", ROOT / "benchmarks" / "replay.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses resolve their module by name)
    spec.loader.exec_module(module)
    return module


def _table(replay, epochs=9, schedules=(), best_first=False):
    from cifar_automl.search import load_space

    space = load_space(str(ROOT / "benchmarks" / "replay_space.yaml"))
    grid = replay.grid_of(space)
    configs = []
    for i, values in enumerate(itertools.product(*grid.values())):
        params = dict(zip(grid, values))
        final = 0.5 - 0.001 * i if best_first else 0.2 + 0.001 * i  # the last grid point is the best (or the first)
        short = {str(r): {"seconds": [2.0] + [1.0] * (r - 1), "val_accuracy": [final * (e + 1) / r for e in range(r)],
                          "failed": None} for r in schedules}
        configs.append({"params": params, "n_params": 1000 * (1 + i % 7), "seconds": [2.0] + [1.0] * (epochs - 1),
                        "val_accuracy": [final * (e + 1) / epochs for e in range(epochs)], "failed": None,
                        **({"short": short} if short else {})})
    data = {"space": "replay", "grid": grid, "epochs": epochs, "configs": configs, "schedules": list(schedules)}
    return space, replay.Table(data)


def _write(table, path: Path) -> Path:
    """`table` as the replay command reads a recording (with the machine's details it prints)."""
    import dataclasses
    import gzip

    meta = {"data": {"n_train": 1, "n_val": 1, "source": "synthetic"}, "cpu": "-", "cores": 1, "date": "-",
            "commit": "-"}
    with gzip.open(path, "wt") as f:
        json.dump({**table.meta, **meta, "configs": [dataclasses.asdict(c) for c in table.configs.values()]}, f)
    return path


def test_the_grid_is_the_spaces_choices_and_every_point_is_recorded(replay):
    space, table = _table(replay)
    assert len(table.configs) == math.prod(len(v) for v in replay.grid_of(space).values()) == 180
    assert table.best == pytest.approx(0.2 + 0.179)


def test_an_unpruned_optuna_search_pays_every_epoch_of_every_trial(replay):
    space, table = _table(replay)
    clock = replay.run_optuna(table, space, "random", "none", seed=0, budget=110.0)
    # each trial costs 2 + 8 x 1 = 10 s; the budget (11 trials' worth) is spent at the end of the 11th
    assert clock.t == pytest.approx(10.0 * clock.trials) and clock.trials == 11
    assert len(clock.events) == 9 * clock.trials
    assert clock.best() == max(v for t, v in clock.events if t <= 110.0)


def test_a_warm_started_search_first_runs_the_other_recordings_best(replay):
    space, table = _table(replay)
    _, other = _table(replay, best_first=True)  # the same grid on other data: there the first points are best
    assert replay.warm_starts(other) == [dict(zip(table.grid, v)) for v in itertools.islice(
        itertools.product(*table.grid.values()), 5)]
    clock = replay.run_optuna(table, space, "random", "none", seed=0, budget=50.0, warm=other)
    finals = [v for k, (_, v) in enumerate(clock.events) if k % 9 == 8]  # each trial's last epoch, here
    assert clock.trials == 5 and finals == pytest.approx([0.2, 0.201, 0.202, 0.203, 0.204])


def test_the_replay_command_runs_the_warm_started_method_from_another_recording(replay, tmp_path, monkeypatch, capsys):
    space, table = _table(replay)
    path = _write(table, tmp_path / "replay.json.gz")
    # warm-started from the recording itself: its best configuration is the first trial
    monkeypatch.setattr(sys, "argv", ["replay.py", "--seeds", "1", "--table", str(path), "--warm-from", str(path),
                                      "--methods", "tpe+hyperband, warm start", "--verbose"])
    replay.main()
    import re

    warm = next(line for line in capsys.readouterr().out.splitlines() if re.search(r"warm start +best", line))
    assert f"best {table.best:.4f}" in warm, warm

    assert int(re.search(r"at +(\d+) s of", warm).group(1)) <= 10, warm  # within the first trial's 10 s
    monkeypatch.setattr(sys, "argv", ["replay.py", "--seeds", "1", "--table", str(path),
                                      "--methods", "tpe+hyperband, warm start"])
    with pytest.raises(SystemExit, match="needs --warm-from"):
        replay.main()


def test_a_longer_budget_gives_the_other_methods_more_time_and_ranks_their_final_best(replay, tmp_path, monkeypatch,
                                                                                      capsys):
    import re

    space, table = _table(replay)
    path = _write(table, tmp_path / "replay.json.gz")
    budgets = {}
    for factor in ("1", "3"):
        monkeypatch.setattr(sys, "argv", ["replay.py", "--seeds", "1", "--table", str(path), "--methods", "random",
                                          "--verbose", "--budget-factor", factor])
        replay.main()
        out = capsys.readouterr().out
        lines = {m.group(1): int(m.group(2)) for m in re.finditer(r"seed +0 (\S+) .* of +(\d+) s", out)}
        budgets[factor] = lines
        if factor == "1":
            assert "ceiling" in out.lower() and "final best's rank" not in out
    reference = budgets["1"]["kerastuner-hyperband"]
    assert budgets["3"]["kerastuner-hyperband"] == reference  # KerasTuner keeps its own run
    assert budgets["1"]["random"] == reference
    assert abs(budgets["3"]["random"] - 3 * reference) <= 1
    assert "times 3 for the other methods" in out
    ranks = re.search(r"\| random \| (\d+) \| (\d+)/1 \| (\d+)/1 \|", out)
    assert ranks, out
    rank, on_best, top5 = map(int, ranks.groups())
    assert 1 <= rank <= 180 and on_best == (rank == 1) and top5 == (rank <= 5)
    monkeypatch.setattr(sys, "argv", ["replay.py", "--seeds", "1", "--table", str(path), "--budget-factor", "0"])
    with pytest.raises(SystemExit, match="--budget-factor must be positive"):
        replay.main()


def test_the_replay_space_starts_from_the_residual_spaces_defaults(replay):
    from cifar_automl.search import load_space

    space, _ = _table(replay)
    residual = load_space("residual").default_params()
    assert space.default_params() == {name: residual[name] for name in replay.grid_of(space)}
    assert replay.default_method(space).endswith(", defaults first")
    assert replay.default_method(space) in replay.METHODS


def test_the_warm_starts_run_before_or_after_the_defaults_as_asked(replay):
    space, table = _table(replay)
    _, other = _table(replay, best_first=True)
    defaults = table[space.default_params()].val_accuracy[-1]
    for warm_first, expected in ((False, [defaults, 0.2, 0.201]), (True, [0.2, 0.201, 0.202])):
        clock = replay.run_optuna(table, space, "random", "none", seed=0, budget=30.0, defaults=True, warm=other,
                                  warm_first=warm_first)
        finals = [v for k, (_, v) in enumerate(clock.events) if k % 9 == 8]
        assert clock.trials == 3 and finals == pytest.approx(expected)  # the other recording's best, in order
    # the package's own order (`warmstart.queue_first`): the warm start first
    assert replay.METHODS["tpe+hyperband, warm start + defaults"].warm_first
    assert not replay.METHODS["tpe+hyperband, defaults + warm start"].warm_first
    # a configuration queued already is not queued again: the next best takes its place
    first = replay.warm_starts(other)[0]
    assert replay.warm_starts(other, skip=[first]) == replay.warm_starts(other)[1:] + [
        dict(zip(table.grid, list(itertools.product(*table.grid.values()))[5]))]


def test_rung_schedules_restart_each_promoted_trial_at_the_next_rungs_length(replay):
    space, table = _table(replay, schedules=(1, 3))
    clock = replay.run_optuna(table, space, "random", "none", seed=0, budget=48.0, fidelity="restart")
    # unpruned, a trial runs the 1-epoch schedule (2 s), then the 3-epoch one (4 s), then all 9 (10 s)
    assert clock.t == pytest.approx(16.0 * clock.trials) and clock.trials == 3  # then the budget is spent
    assert len(clock.events) == (1 + 3 + 9) * clock.trials


def test_kerastuner_hyperband_resumes_promoted_trials_and_pays_only_new_epochs(replay, tmp_path):
    space, table = _table(replay)
    clock = replay.run_kerastuner(table, space, "hyperband", seed=0, budget=math.inf, workdir=tmp_path)
    resumed = [(start, stop) for start, stop in clock.fits if start > 0]
    assert resumed and clock.trials == len(clock.fits) - len(resumed)  # promotions continue their trial
    # each fit pays its own epochs only: 2 s for an epoch 0 (a new trial), 1 s for any other
    assert len(clock.events) == sum(stop - start for start, stop in clock.fits)
    assert clock.t == pytest.approx(len(clock.events) + clock.trials)
    assert max(stop for _, stop in clock.fits) == 9 and 0 < clock.best() <= table.best


def test_the_speed_up_is_the_reference_time_over_the_methods(replay):
    clock = replay.Clock(budget=10.0)
    for t, v in [(2.0, 0.1), (5.0, 0.3), (12.0, 0.5)]:
        clock.pay(t - clock.t, v)
    assert clock.time_to(0.3) == 5.0 and clock.time_to(0.5) is None  # past the budget
    assert replay._geomean([2.0, 8.0]) == pytest.approx(4.0)


def test_a_real_pareto_curve_counts_complete_trials_only_in_log_parameters():
    """benchmarks/pareto.py --fashion-mnist: the hypervolume after each complete trial, in (accuracy,
    log10 parameters) up to the reference count, at the minutes since the search's first trial began."""
    import datetime
    import types

    import optuna

    spec = importlib.util.spec_from_file_location("pareto_benchmark", ROOT / "benchmarks" / "pareto.py")
    pareto = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pareto)
    t0 = datetime.datetime(2026, 1, 1)
    trials = [
        optuna.trial.FrozenTrial(
            number=n, trial_id=n, state=optuna.trial.TrialState[state], value=None,
            values=None if acc is None else [acc, params], datetime_start=t0 + datetime.timedelta(minutes=minute),
            datetime_complete=t0 + datetime.timedelta(minutes=minute + 1), params={}, distributions={},
            user_attrs={"params": params}, system_attrs={}, intermediate_values={})
        for n, (minute, state, acc, params) in enumerate(
            [(0, "COMPLETE", 0.5, 100), (2, "PRUNED", None, 10), (4, "COMPLETE", 0.8, 10_000),
             (6, "COMPLETE", 0.4, 1_000)])]
    curve = pareto.real_curve(types.SimpleNamespace(trials=trials), ref_params=100_000)
    # 0.5 at 10^2 alone: 0.5 * (5 - 2); with 0.8 at 10^4: 0.5 * (4 - 2) + 0.8 * (5 - 4); 0.4 at 10^3 is dominated
    assert [m for m, _ in curve] == [1, 5, 7]  # the pruned trial adds no point
    assert [hv for _, hv in curve] == pytest.approx([1.5, 1.8, 1.8])


def _load(name):
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("val", [[0.5, 0.6, 0.55, 0.58, 0.62, 0.61, 0.6, 0.59, 0.6, 0.61, 0.7],
                                 [0.3, 0.2, 0.2, 0.2, 0.2, 0.2, 0.9], [0.1, 0.2, 0.3]])
def test_the_replayed_early_stopping_stops_where_keras_does(val):
    """benchmarks/reference_gaps.py stopping: the epoch Keras' EarlyStopping stops after, and the one whose
    weights it restores, replayed on a recorded validation curve."""
    import keras

    gaps = _load("reference_gaps")
    import types

    model = types.SimpleNamespace(stop_training=False)
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=5)
    stopper.set_model(model)
    stopper.on_train_begin()
    ran = len(val)
    for epoch, v in enumerate(val):
        stopper.on_epoch_end(epoch, {"val_accuracy": v})
        if model.stop_training:
            ran = epoch + 1
            break
    assert gaps.early_stop(val, patience=5) == (ran, stopper.best_epoch)


def test_the_jpeg_round_trip_keeps_shapes_and_loses_detail():
    import numpy as np

    gaps = _load("reference_gaps")
    rng = np.random.default_rng(0)
    for shape in ((4, 28, 28, 1), (4, 32, 32, 3)):
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        coded = gaps.jpeg_roundtrip(x, 75)
        assert coded.shape == x.shape and coded.dtype == np.uint8
        assert 0 < np.abs(coded.astype(int) - x).mean() < 128  # noise is coded lossily, not dropped
    smooth = np.broadcast_to(np.linspace(0, 255, 32, dtype=np.uint8)[None, None, :, None], (1, 32, 32, 3)).copy()
    assert np.abs(gaps.jpeg_roundtrip(smooth, 75).astype(int) - smooth).mean() < 3  # a gradient survives


def test_search_value_records_each_run_once_and_tables_them(tmp_path, monkeypatch, capsys):
    """`benchmarks/search_value.py` fills its grid over several sittings: a run already in its results
    file is not run again (the runs themselves stand in here)."""
    spec = importlib.util.spec_from_file_location("search_value_benchmark", ROOT / "benchmarks" / "search_value.py")
    sv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sv)
    ran = []
    SHARE = None  # without --search-share, auto sizes its own search

    def ours(settings, budget, share, work, name):
        ran.append((name, share))
        if settings.seed == 2:  # a search stopped with Ctrl-C: no result
            return {"accuracy": math.nan, "minutes": 1.0, "note": "interrupted"}
        return {"accuracy": 0.8 + 0.01 * settings.seed + (0.0 if share == 0 else 0.05), "minutes": budget / 60, "note": "-"}

    monkeypatch.setattr(sv, "run_ours", ours)
    monkeypatch.setattr(sv, "step_seconds", lambda: 0.2)  # this machine's speed (a real timing: seconds)
    results = tmp_path / "runs.jsonl"
    argv = ["search_value.py", "--budget", "30m", "--methods", "auto", "no search", "--results", str(results)]
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "0"])
    sv.main()
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "0", "1"])  # seed 0 is there: only seed 1 runs
    sv.main()
    assert ran == [("auto-0", SHARE), ("defaults-0", 0.0), ("auto-1", SHARE), ("defaults-1", 0.0)]
    assert len(results.read_text().splitlines()) == 4
    out = capsys.readouterr().out
    assert "seed 0 auto                   already in runs.jsonl" in out
    assert "| auto | 2 | 85.50% | 0.71 | 0: 85.0, 1: 86.0 | 30.0 |" in out
    assert "| no search | 2 | 80.50% | 0.71 | 0: 80.0, 1: 81.0 | 30.0 |" in out
    # a run without a result is not kept: it runs again next time
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "2"])
    sv.main()
    sv.main()
    assert ran[4:] == [("auto-2", SHARE), ("defaults-2", 0.0)] * 2
    assert len(results.read_text().splitlines()) == 4
    # another share is another cell for auto, not for no search (which has none)
    ran.clear()
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "0", "--search-share", "0.25"])
    sv.main()
    assert ran == [("auto-0", 0.25)]
    capsys.readouterr()
    # another budget is another cell: nothing of the 30-minute runs is in its table
    monkeypatch.setattr(sys, "argv", ["search_value.py", "--budget", "2h", "--results", str(results), "--table-only"])
    sv.main()
    assert "| auto |" not in capsys.readouterr().out
    # --keep: each run's study and model stay in a folder of its own; one there already is refused
    # before anything runs
    works = []

    def kept(settings, budget, share, work, name):
        works.append(work)
        return {"accuracy": 0.9, "minutes": 30.0, "note": "-"}

    monkeypatch.setattr(sv, "run_ours", kept)
    keep = tmp_path / "kept"
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "3", "--keep", str(keep)])
    sv.main()
    assert works == [keep / "folder-30m-seed3-auto", keep / "folder-30m-seed3-no-search"]
    assert all(w.is_dir() for w in works)
    (keep / "folder-30m-seed4-no-search").mkdir()
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "4", "--keep", str(keep)])
    with pytest.raises(SystemExit, match="seed4-no-search exists"):
        sv.main()
    assert len(works) == 2


def test_search_value_keeps_machines_of_different_speeds_out_of_one_cell(tmp_path, monkeypatch, capsys):
    """A cell's runs come from machines of one speed: a run on a machine 2x slower is refused (it would
    train fewer epochs in the same budget and read as a spread between seeds), unless --any-machine,
    and the table then says how far apart its machines are."""
    spec = importlib.util.spec_from_file_location("search_value_benchmark", ROOT / "benchmarks" / "search_value.py")
    sv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sv)
    monkeypatch.setattr(sv, "run_ours", lambda settings, budget, share, work, name: {
        "accuracy": 0.9, "minutes": budget / 60, "note": "-"})
    results = tmp_path / "runs.jsonl"
    results.write_text(json.dumps({  # a run recorded before runs were timed: no speed to compare
        "dataset": "folder", "data": "cifar10-train-jpeg.tar.gz", "space": "airbench", "budget_minutes": 30.0,
        "search_share": "default", "subset": 10000, "epochs": 4, "seed": 9, "method": "no search",
        "accuracy": 0.8, "minutes": 30.0, "note": "-"}) + "\n")
    argv = ["search_value.py", "--budget", "30m", "--methods", "no search", "--results", str(results)]
    timings = []

    def machine(seconds):
        def step_seconds():
            timings.append(seconds)
            return seconds
        return step_seconds

    monkeypatch.setattr(sv, "step_seconds", machine(0.2))
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "0", "9"])
    sv.main()
    assert [json.loads(line).get("step_seconds") for line in results.read_text().splitlines()] == [None, 0.2]
    assert "note: 1 of this cell's runs were recorded before runs were timed" in capsys.readouterr().out
    monkeypatch.setattr(sv, "step_seconds", machine(0.25))  # within 1.5x: the same cell
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "1"])
    sv.main()
    assert "warning" not in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "0", "1"])
    sv.main()  # nothing to run: the machine is not timed
    assert timings == [0.2, 0.25]
    monkeypatch.setattr(sv, "step_seconds", machine(0.4))
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "2"])
    with pytest.raises(SystemExit, match=r"^error: this machine takes 0.400 s .* 0.200, 0.250 s \(up to 2.0x apart\)"):
        sv.main()
    assert len(results.read_text().splitlines()) == 3
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "2", "--any-machine"])
    sv.main()
    assert len(results.read_text().splitlines()) == 4
    out = capsys.readouterr().out  # (its table shows seed 2 only: the warning is of the whole cell)
    assert "| no search | 1 |" in out and "warning: this cell's runs came from machines 2.0x apart in speed" in out
    # a machine as fast as some of the cell's runs is measured against the farthest of them
    monkeypatch.setattr(sv, "step_seconds", machine(0.3))  # 1.5x the fastest, 0.75x the slowest: allowed
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "3"])
    sv.main()
    monkeypatch.setattr(sv, "step_seconds", machine(0.21))  # 1.9x faster than the 0.4-s machine: refused
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "4"])
    with pytest.raises(SystemExit, match=r"0.200, 0.250, 0.300, 0.400 s \(up to 1.9x apart\)"):
        sv.main()
    assert timings == [0.2, 0.25, 0.4, 0.4, 0.3, 0.21]


def test_the_ceilings_are_the_soonest_one_configuration_or_the_defaults_then_it_reach_the_target(replay):
    """What a method that knew the table could do: train the configuration that reaches the target
    soonest (`oracle`), or the defaults to their end and then it; capped at the budget."""
    space, table = _table(replay)
    top = table.best  # only the last grid point reaches it, at the end of its 9 epochs (2 s + 8 x 1 s)
    assert table[space.default_params()].val_accuracy[-1] < top
    ceilings = replay.ceilings(table, space, targets=[top, top, 0.01], budgets=[100.0, 15.0, 100.0])
    assert ceilings["oracle"] == [10.0, 10.0, 2.0]  # 0.01: any first epoch reaches it
    assert ceilings["defaults, then oracle"] == [20.0, 15.0, 2.0]  # the defaults' 10 s first
    fast = max(table.configs.values(), key=lambda c: c.val_accuracy[-1])
    fast.val_accuracy = [0.9] * 9  # now at the target after its first epoch
    own = table[space.default_params()].val_accuracy[-1]  # the defaults reach it at their end
    ceilings = replay.ceilings(table, space, targets=[own], budgets=[100.0])
    assert ceilings == {"oracle": [2.0], "defaults, then oracle": [10.0]}  # their own, not theirs + the oracle's


def test_the_prior_start_draws_its_start_up_trials_around_the_defaults(replay):
    """The PriorBand candidate: in the start-up a parameter keeps its default with probability 4 / (4 + n - 1)
    of n choices, and after it the base sampler decides (here random: 1 / n)."""
    import optuna

    space, _ = _table(replay)
    defaults = space.default_params()
    sampler = replay._prior_start()(optuna.samplers.RandomSampler(seed=0), defaults, seed=0, startup=300)
    study = optuna.create_study(sampler=sampler)

    def objective(trial):
        space.sample(trial, 9)
        return 0.0

    study.optimize(objective, n_trials=600)
    for name, n in [("base_filters", 3), ("learning_rate", 5), ("batch_norm", 2)]:
        kept = [t.params[name] == defaults[name] for t in study.trials]
        assert sum(kept[:300]) / 300 == pytest.approx(4 / (4 + n - 1), abs=0.08)
        assert sum(kept[300:]) / 300 == pytest.approx(1 / n, abs=0.08)


def test_the_rung_model_fits_the_highest_epoch_enough_trials_reached(replay):
    """The BOHB candidate: with one more trial than parameters at an epoch, its TPE (fitted on the whole
    study's scores at that epoch) proposes configurations near the best there; with fewer it samples at
    random (a `{}` from sample_relative)."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    space, table = _table(replay)
    grid = table.grid
    dists = {name: CategoricalDistribution(choices) for name, choices in grid.items()}
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    best = points[100]
    others = points[::29][:5]  # five more: one short of the six (5 parameters + 1) a fit needs at epoch 3
    sampler = replay._rung_model()(seed=0, random_share=0.0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for params in others:  # reached epoch 3
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=0.3,
                                                  intermediate_values={1: 0.2, 3: 0.3}))
    assert sampler.infer_relative_search_space(study, study.ask()._cached_frozen_trial) == {}
    study.add_trial(optuna.trial.create_trial(params=best, distributions=dists, state=optuna.trial.TrialState.PRUNED,
                                              intermediate_values={1: 0.6}))  # the best at epoch 1, pruned there
    near = []
    for _ in range(20):
        trial = study.ask()
        assert trial.relative_params  # six trials reached epoch 1: the model decides
        near.append(sum(trial.suggest_categorical(name, grid[name]) == best[name] for name in grid))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert sum(near) / len(near) >= 3.5  # of 5 parameters (at random: 1.9)


def test_the_all_local_candidate_moves_the_incumbent_in_every_trial_it_samples(replay):
    """`tpe-local100`: after the defaults, each trial is a one-parameter move from the best trial so far,
    never one the study holds; `tpe-local75` tries a move in three trials of four."""
    import optuna

    from cifar_automl.study import LOCAL_MOVE

    space, table = _table(replay)
    study = optuna.create_study(direction="maximize", sampler=replay.CANDIDATE_SAMPLERS["tpe-local100"](0, space))
    study.enqueue_trial(space.default_params())
    for _ in range(8):  # fewer than the incumbent's neighbours on the grid: a move is always found
        trial = study.ask()
        space.sample(trial, table.epochs)
        move = study._storage.get_trial(trial._trial_id).system_attrs.get(LOCAL_MOVE)
        if trial.number > 0:
            incumbent = study.best_trial
            assert move is not None and move["from"] == incumbent.number
            assert sum(trial.params[k] != incumbent.params[k] for k in trial.params) == 1
        study.tell(trial, max(table[trial.params].val_accuracy))
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 8  # none twice
    assert replay.CANDIDATE_SAMPLERS["tpe-local75"](0, space)._share == 0.75


def test_the_numeric_benchmark_tables_every_function_and_method_with_known_maxima(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("numeric_benchmark", ROOT / "benchmarks" / "numeric.py")
    numeric = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(numeric)
    import optuna

    # the functions' known optima
    assert math.isclose(numeric.hartmann6(optuna.trial.FixedTrial(dict(zip(
        [f"x{i}" for i in range(6)], [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])))), 3.32237,
        abs_tol=1e-4)
    assert numeric.rastrigin4(optuna.trial.FixedTrial({f"x{i}": 0.3 for i in range(4)})) == 0.0
    monkeypatch.setattr(sys, "argv", ["numeric.py", "--seeds", "2", "--trials", "12", "--methods", "random",
                                      "tpe-hill"])
    numeric.main()
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and
            not line.startswith("| function")]
    assert [(r[0], r[1]) for r in rows] == [(f"| {f}", m) for f in numeric.FUNCTIONS for m in ("random", "tpe-hill")]
    for row in rows:
        after_10, after_12 = map(float, row[2:4])  # the columns: after 10 and after 12 (the cap) trials
        assert after_10 <= after_12  # a best never falls
