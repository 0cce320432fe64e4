"""The analyses people used to do by hand, computed from a study's trials (pandas, no plotting):
what each searched choice bought, the same at equal epochs, the best learning curve of each block
type, and how the search's winner compares with the textbook models trained on the same data."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pandas as pd
from scipy.special import gammaln

from ..study import RECORDING, curve
from . import format as fmt
from .tables import finished

CHOICES = ("block", "optimizer", "activation", "batch_size", "augment")  # the choices people compare


def choice_table(frame: pd.DataFrame, choices: tuple[str, ...] = CHOICES) -> pd.DataFrame:
    """Per searched choice and option: trials, best, median and spread (interquartile range) of
    validation accuracy, and the median seconds per epoch. Choices the study did not vary are left out."""
    done = finished(frame)
    rows = []
    for choice in choices:
        if choice not in done.columns or done[choice].nunique() < 2:
            continue
        for option, g in done.groupby(choice):
            acc = g["val_accuracy"].astype(float)
            rows.append({"choice": choice, "option": str(option), "trials": len(g), "best": acc.max(),
                         "median": acc.median(), "spread": acc.quantile(0.75) - acc.quantile(0.25),
                         "epoch_seconds": g["epoch_seconds"].median()})
    return pd.DataFrame(rows, columns=["choice", "option", "trials", "best", "median", "spread", "epoch_seconds"])


def choice_at_equal_epochs(study: optuna.Study, frame: pd.DataFrame, choices: tuple[str, ...] = CHOICES,
                           min_trials: int = 2) -> pd.DataFrame:
    """The same choices at equal training: median validation accuracy after 1, 2, 4, ... epochs, over
    the trials that trained that long (pruned ones included, up to where they stopped), so that an
    option is not judged by the trials that happened to be trained longer. An epoch is shown where
    every option has at least `min_trials` trials."""
    curves = {t.number: curve(t) for t in study.get_trials(deepcopy=False)}
    done = finished(frame)
    epochs = sorted({step for values in curves.values() for step in values})
    shown = [e for e in epochs if e >= 1 and (e & (e - 1) == 0 or e == epochs[-1])]  # 1, 2, 4, 8, ..., the last
    rows = []
    for choice in choices:
        if choice not in done.columns or done[choice].nunique() < 2:
            continue
        for epoch in shown:
            row: dict[str, Any] = {"choice": choice, "epoch": epoch}
            enough = True
            for option, g in done.groupby(choice):
                values = [curves[n][epoch] for n in g["number"] if epoch in curves.get(n, {})]
                enough &= len(values) >= min_trials
                row[str(option)] = float(np.median(values)) if values else np.nan
            if enough:
                rows.append(row)
    return pd.DataFrame(rows)


SHARES = (0.1, 0.25, 0.5, 1.0)  # of the study's compute, where `search_value` reads the best so far


def reference_trial(frame: pd.DataFrame) -> tuple[pd.Series, str] | None:
    """What a search is measured against: the trial of the space's defaults (a known-good recipe), or,
    in a space without defaults (or defaults that did not train to the end), the first complete trial
    (what one untuned try gives). Pruned trials are not candidates: their scores are early ones."""
    done = frame[frame["state"] == "complete"].sort_values("number") if not frame.empty else frame
    if done.empty:
        return None
    if "warm_start" in done.columns:
        defaults = done[done["warm_start"] == "space defaults"]
        if not defaults.empty:
            return defaults.iloc[0], "the space's defaults"
    return done.iloc[0], "the first complete trial"


def search_value(frame: pd.DataFrame, shares: tuple[float, ...] = SHARES) -> pd.DataFrame:
    """What the search bought: the best complete trial's validation accuracy after each share of the
    compute (all trials' training time, pruned and failed ones included, in trial order), against the
    reference trial's."""
    ref = reference_trial(frame)
    if ref is None:
        return pd.DataFrame()
    row, label = ref
    ordered = frame.sort_values("number")
    hours = ordered["minutes"].cumsum() / 60
    total = float(hours.iloc[-1]) if len(hours) else 0.0
    scored = ordered["val_accuracy"].where(ordered["state"] == "complete").astype(float)
    best = scored.cummax().ffill()  # (cummax leaves NaN where a trial has no score)
    rows = [{"compute": f"{label} (trial {int(row['number'])})", "trial_hours": float(hours[ordered['number'] == row['number']].iloc[0]),
             "trials": int((ordered["number"] <= row["number"]).sum()), "best_val_accuracy": float(row["val_accuracy"]),
             "vs_reference_points": 0.0, "best_trial": int(row["number"])}]
    for share in shares:
        upto = hours <= share * total + 1e-9
        if not upto.any() or np.isnan(best[upto].iloc[-1]):
            continue
        value = float(best[upto].iloc[-1])
        at = int(ordered.loc[upto & (scored == value), "number"].iloc[0])
        rows.append({"compute": f"{share:.0%} of the compute", "trial_hours": float(hours[upto].iloc[-1]),
                     "trials": int(upto.sum()), "best_val_accuracy": value,
                     "vs_reference_points": 100 * (value - float(row["val_accuracy"])), "best_trial": at})
    return pd.DataFrame(rows)


def random_search_curve(study: optuna.Study, frame: pd.DataFrame, max_rows: int = 12) -> pd.DataFrame:
    """For a replay recording (every configuration of a grid trained to the end, `study.RECORDING`):
    what random search over that grid finds after k trials, exactly, over every order it could draw
    them in (k draws without replacement). Per k: the compute (k trials of the recording's mean
    training time), the expected best validation accuracy, its 10th and 90th percentiles, and the
    recording's own best after its first k trials (one such random order). A configuration that failed
    counts as a draw that found nothing (accuracy 0); one trained twice (a resumed recording re-runs
    what was interrupted) counts once, by its last run. Empty for any other study."""
    if not study.user_attrs.get(RECORDING) or frame.empty:
        return pd.DataFrame()
    drawn = frame[frame["state"].isin(["complete", "fail"])].sort_values("number")
    config = {t.number: tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False)}
    drawn = drawn[~drawn["number"].map(config).duplicated(keep="last")]
    n = len(drawn)
    if n < 2:
        return pd.DataFrame()
    scores = drawn["val_accuracy"].where(drawn["state"] == "complete").astype(float).fillna(0.0).to_numpy()
    ordered = np.sort(scores)  # ascending: ordered[i - 1] is the i-th smallest
    hours = float(drawn["minutes"].mean()) / 60
    own = np.maximum.accumulate(scores)
    ks = range(1, n + 1) if n <= max_rows else sorted({int(round(k)) for k in np.geomspace(1, n, max_rows)})
    i = np.arange(1, n + 1)
    rows = []
    for k in ks:
        # P(best of k <= the i-th smallest) = C(i, k) / C(n, k): the k draws all among the i smallest
        at_most = np.exp(_log_comb(i, k) - _log_comb(n, k))
        at_most[i < k] = 0.0
        p = np.diff(at_most, prepend=0.0)
        rows.append({"trials": k, "trial_hours": k * hours, "expected_best_val_accuracy": float(p @ ordered),
                     "p10_val_accuracy": float(ordered[np.searchsorted(at_most, 0.1 - 1e-12)]),
                     "p90_val_accuracy": float(ordered[np.searchsorted(at_most, 0.9 - 1e-12)]),
                     "recording_val_accuracy": float(own[k - 1])})
    return pd.DataFrame(rows)


def _log_comb(n: np.ndarray | int, k: int) -> np.ndarray:
    """log C(n, k), elementwise (n < k gives nonsense: the caller masks it)."""
    n = np.asarray(n, dtype=float)
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(np.maximum(n - k, 0) + 1)


def fidelity_ranking(study: optuna.Study, frame: pd.DataFrame, max_rows: int = 10) -> pd.DataFrame:
    """How well the validation accuracy after each epoch ranked the trials that trained to the end:
    Spearman's rank correlation with their final score (the evidence behind pruning at that epoch)."""
    done = finished(frame)
    if done.empty:
        return pd.DataFrame()
    last = int(done["epochs_run"].max())
    full = done[done["epochs_run"] == last]
    if len(full) < 3 or last < 2:
        return pd.DataFrame()
    trials = study.get_trials(deepcopy=False)
    curves = {int(n): curve(trials[int(n)]) for n in full["number"]}
    final = full.set_index("number")["val_accuracy"].astype(float)
    epochs = list(range(1, last))
    if len(epochs) > max_rows:  # a long search: epochs spread geometrically, the early ones kept
        epochs = sorted({int(round(e)) for e in np.geomspace(1, last - 1, max_rows)})
    rows = []
    for e in epochs:
        at = pd.Series({n: c.get(e) for n, c in curves.items()}, dtype=float).dropna()
        if len(at) < 3:
            continue
        rows.append({"epoch": e, "trials": len(at), "rank_correlation":
                     float(at.corr(final.loc[at.index], method="spearman"))})
    return pd.DataFrame(rows)


def best_curve_per_block(study: optuna.Study, frame: pd.DataFrame) -> pd.DataFrame:
    """The learning curve (validation accuracy per epoch) of the best finished trial of each block type."""
    done = finished(frame)
    if done.empty or "block" not in done.columns:
        return pd.DataFrame(columns=["block", "number", "epoch", "val_accuracy"])
    trials = study.get_trials(deepcopy=False)
    rows = []
    for block, g in done.groupby("block"):
        best = int(g.loc[g["val_accuracy"].astype(float).idxmax(), "number"])
        for epoch, value in sorted(curve(trials[best]).items()):
            rows.append({"block": block, "number": best, "epoch": epoch, "val_accuracy": value})
    return pd.DataFrame(rows)


def baselines_table(trials: list[optuna.trial.FrozenTrial]) -> pd.DataFrame:
    """The textbook models trained on the same data: test accuracy, size, epochs and minutes."""
    rows = [{
        "baseline": t.user_attrs["baseline"], "test_accuracy": t.user_attrs.get("test_accuracy"),
        "val_accuracy": t.user_attrs.get("val_accuracy"), "params": t.user_attrs.get("params"),
        "epochs_run": t.user_attrs.get("epochs_run"),
        "minutes": t.user_attrs.get("train_minutes", sum(t.user_attrs.get("epoch_seconds", [])) / 60),
        "description": t.user_attrs.get("description"),
    } for t in trials]
    columns = ["baseline", "test_accuracy", "val_accuracy", "params", "epochs_run", "minutes", "description"]
    return pd.DataFrame(rows, columns=columns).sort_values("test_accuracy", ascending=False, ignore_index=True)


def with_baselines(board: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard with the textbook models as rows of their own (state "baseline") after the trials,
    named in a `model` column; trials keep their `number` (empty for a baseline)."""
    if baselines.empty:
        return board
    rows = baselines.rename(columns={"baseline": "model"}).assign(state="baseline")
    trials = board.assign(model=[f"trial {n}" for n in board["number"]]) if not board.empty else board
    columns = ["model", *board.columns]
    return pd.concat([trials, rows], ignore_index=True).reindex(columns=columns)


def blocks_with_baselines(blocks: pd.DataFrame, baselines: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """The block-type comparison with each textbook model as a row, and the test accuracy of each
    block type's best retrained trial beside the baselines' own."""
    out = blocks.copy()
    if not out.empty and "test_accuracy" in frame.columns:
        tested = frame.dropna(subset=["test_accuracy"]).groupby("block")["test_accuracy"].max()
        out["test_accuracy"] = out["block"].map(tested)
    if baselines.empty:
        return out
    rows = pd.DataFrame({"block": [f"baseline: {b}" for b in baselines["baseline"]], "trials": 1,
                         "best_val_accuracy": baselines["val_accuracy"], "test_accuracy": baselines["test_accuracy"],
                         "median_params": baselines["params"], "trial_hours": baselines["minutes"] / 60})
    return pd.concat([out, rows], ignore_index=True)


def headline(summary: dict[str, Any], frame: pd.DataFrame, baselines: pd.DataFrame,
             retrain: dict[str, Any] | None) -> str:
    """One sentence: how far the retrained search winner is above or below the best textbook model
    trained on the same data, and at what cost."""
    if retrain is None:
        return ("No trial has been retrained and tested yet, so the search's winner cannot be compared with "
                "anything: run cifar-automl retrain.")
    if baselines.empty:
        return (f"The retrained search winner (trial {summary['retrained trial']}) tests "
                f"{fmt.percent(retrain['accuracy'])}; no textbook model has been trained on this data yet "
                "(cifar-automl baseline --study-name STUDY --model NAME).")
    best = baselines.iloc[0]
    gap = 100 * (retrain["accuracy"] - best["test_accuracy"])
    search_minutes = float(frame["minutes"].sum()) if not frame.empty else 0.0
    cost = search_minutes + float(retrain.get("train_minutes", 0.0))
    size = retrain.get("params")
    size_text = f", {size / best['params']:.2g}x its parameters" if size and best["params"] else ""
    return (f"The retrained search winner (trial {summary['retrained trial']}) tests {fmt.percent(retrain['accuracy'])}, "
            f"{abs(gap):.1f} points {'above' if gap >= 0 else 'below'} the best textbook model trained on the same "
            f"data ({best['baseline']}, {fmt.percent(best['test_accuracy'])} after {fmt.duration(best['minutes'])} "
            f"of training){size_text}, after {fmt.duration(cost)} of search and retraining.")


def front_table(study: optuna.Study, retrained: dict[int, dict[str, Any]],
                exported: dict[int, dict[str, Any]]) -> pd.DataFrame:
    """A study of several objectives: its Pareto front at search time (validation accuracy and the
    costs it was searched on), with each retrained model's test accuracy and each exported file's own
    measured test accuracy and batch-1 latency. Empty for a study of one objective."""
    if len(study.directions) < 2:
        return pd.DataFrame()
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    rows = []
    for t in sorted(study.best_trials, key=lambda t: t.values[1]):
        row: dict[str, Any] = {"trial": t.number, **dict(zip(names, t.values)),
                               "test_accuracy": (retrained.get(t.number) or {}).get("accuracy")}
        for form, m in (exported.get(t.number) or {}).items():
            row[f"{form}_accuracy"] = m["accuracy"]
            row[f"{form}_latency_ms"] = m["latency_ms"]
        rows.append(row)
    return pd.DataFrame(rows)
