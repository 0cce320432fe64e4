"""Tables of a study's results (pandas). Reads the study and the retrain folders; never trains.

Tables first: every function here returns plain pandas/numpy data that tests check without plotly;
`figures.py` and `html.py` render them as figures and a page.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pandas as pd

from ..results import retrain_summaries
from ..study import DUPLICATE, LOCAL_MOVE, SURPLUS, accuracy, curve
from .format import readable

LEADERBOARD_COLUMNS = [
    "number", "state", "val_accuracy", "test_accuracy", "block", "stages", "blocks_per_stage",
    "base_filters", "width_growth", "kernel_size", "activation", "dropout", "optimizer",
    "learning_rate", "batch_size", "augment", "epochs_run", "params", "mflops", "epoch_seconds",
    "minutes", "origin",
]
TERMINAL_COLUMNS = [
    "number", "state", "val_accuracy", "test_accuracy", "block", "stages", "blocks_per_stage",
    "base_filters", "kernel_size", "optimizer", "learning_rate", "batch_size", "augment", "epochs_run",
    "params", "minutes",
]


def origin(trial: optuna.trial.FrozenTrial) -> str | None:
    """Where a trial's configuration came from, when not from the sampler's model: a queued warm start
    (the space's defaults, a preset, another study's trial), the retry of an interrupted trial, or a
    one-parameter move from an earlier incumbent (`--sampler tpe-local`: "learning_rate of #12")."""
    if trial.user_attrs.get("warm_start"):
        return trial.user_attrs["warm_start"]
    retry_of = _retry_of(trial)
    if retry_of is not None:  # (a retry copies the system attributes of the trial it repeats)
        return f"retry of #{retry_of}"
    move = trial.system_attrs.get(LOCAL_MOVE)
    return f"{move['param']} of #{move['from']}" if move else None


def _retry_of(trial: optuna.trial.FrozenTrial) -> int | None:
    """The trial this one repeats: an interrupted one (`retry_of`) or a stale one (Optuna's `failed_trial`)."""
    return trial.user_attrs.get("retry_of", trial.system_attrs.get("failed_trial"))


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: Optuna's state and value plus the flattened config and user attributes."""
    retrained = retrain_summaries(study)
    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        if ua.get("fail_reason") in (SURPLUS, DUPLICATE):
            continue  # taken beside others that filled --trials, or queued twice: it ran nothing
        cfg = ua.get("config", {})
        secs = ua.get("epoch_seconds", [])
        row: dict[str, Any] = {
            "study": study.study_name,
            "number": t.number,
            "state": t.state.name.lower(),
            "value": accuracy(t),
            "val_accuracy": ua.get("val_accuracy"),
            "val_loss": ua.get("val_loss"),
            "best_epoch": ua.get("best_epoch"),
            "epochs_run": ua.get("epochs_run", 0),
            "params": ua.get("params"),
            "mflops": ua["flops"] / 1e6 if ua.get("flops") else None,
            "epoch_seconds": float(np.mean(secs)) if secs else None,
            "minutes": sum(secs) / 60.0,
            "images_per_second": ua.get("images_per_second"),
            "fail_reason": ua.get("fail_reason"),
            "retry_of": _retry_of(t),
            "warm_start": ua.get("warm_start"),
            "origin": origin(t),
            "baseline": ua.get("baseline"),
            "test_accuracy": retrained.get(t.number, {}).get("accuracy", ua.get("test_accuracy")),
            "datetime_start": t.datetime_start,
            "datetime_complete": t.datetime_complete,
        }
        for section in ("arch", "train"):
            for key, value in cfg.get(section, {}).items():
                if key == "block_options" and value:
                    row.update({f"{cfg['arch']['block']}.{k}": v for k, v in value.items()})
                else:
                    row[key] = value
        if "arch" in cfg:
            row["dropout"] = f"{cfg['arch']['conv_dropout']:.2f}/{cfg['arch']['dense_dropout']:.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


def finished(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[frame["state"].isin(["complete", "pruned"]) & frame["val_accuracy"].notna()]


def leaderboard(frame: pd.DataFrame, top: int = 10, columns: list[str] = LEADERBOARD_COLUMNS) -> pd.DataFrame:
    """Best finished trials first (complete before pruned at equal accuracy)."""
    done = finished(frame)
    if done.empty:
        return done
    done = done.assign(_complete=done["state"].eq("complete"))
    done = done.sort_values(["val_accuracy", "_complete"], ascending=[False, False]).head(top)
    return done[[c for c in columns if c in done.columns]].reset_index(drop=True)


def summary(study: optuna.Study, frame: pd.DataFrame) -> dict[str, Any]:
    """The numbers a reader wants first: what was searched, what it cost, what won."""
    counts = frame["state"].value_counts().to_dict() if not frame.empty else {}
    identity = study.user_attrs.get("identity", {})
    data = study.user_attrs.get("data", {})
    max_epochs = identity.get("epochs")
    n_finished = counts.get("complete", 0) + counts.get("pruned", 0)
    epochs_run = int(frame["epochs_run"].sum()) if not frame.empty else 0
    done = finished(frame)
    best = done.loc[done["val_accuracy"].idxmax()] if not done.empty else None
    retrained = retrain_summaries(study)
    best_test = max(retrained.items(), key=lambda kv: kv[1]["accuracy"]) if retrained else None
    return {
        "study": study.study_name,
        "dataset": data.get("dataset"),
        "image_shape": "x".join(str(d) for d in data.get("image_shape", [])),
        "train/val/test images": f"{data.get('n_train')}/{data.get('n_val')}/{data.get('n_test')}",
        "space": identity.get("space"),
        "trials complete": counts.get("complete", 0),
        "trials pruned": counts.get("pruned", 0),
        "trials failed": counts.get("fail", 0),
        "search time": float(frame["minutes"].sum()) if not frame.empty else 0.0,  # minutes of trials
        "epochs run": epochs_run,
        "epochs without pruning": n_finished * max_epochs if max_epochs else None,
        "best trial": int(best["number"]) if best is not None else None,
        "best val accuracy": float(best["val_accuracy"]) if best is not None else None,
        "retrained trial": best_test[0] if best_test else None,
        "retrain test accuracy": float(best_test[1]["accuracy"]) if best_test else None,
    }


def block_comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """Per block type (and study, when several are compared): does inception or residual beat plain?"""
    done = finished(frame)
    if done.empty or "block" not in done.columns:
        return pd.DataFrame()
    groups = done.groupby(["study", "block"]) if done["study"].nunique() > 1 else done.groupby("block")
    table = groups.agg(
        trials=("number", "size"),
        best_val_accuracy=("val_accuracy", "max"),
        median_val_accuracy=("val_accuracy", "median"),
        median_params=("params", "median"),
        median_epoch_seconds=("epoch_seconds", "median"),
        trial_hours=("minutes", lambda m: m.sum() / 60),
    )
    return table.sort_values("best_val_accuracy", ascending=False).reset_index()


def best_so_far(frame: pd.DataFrame, by: str | None = "block",
                scored: tuple[str, ...] = ("complete", "pruned")) -> pd.DataFrame:
    """Best validation accuracy so far against compute spent (cumulative trial hours), in trial order,
    per `by` group (block type) or overall; trials in the `scored` states count towards the best."""
    rows = []
    ordered = frame.sort_values("number")
    groups = ordered.groupby(by) if by and by in ordered.columns else [("all", ordered)]
    for key, g in groups:
        hours = g["minutes"].cumsum() / 60  # compute of every trial, failed ones included
        values = g["val_accuracy"].where(g["state"].isin(list(scored)))
        best = values.astype(float).cummax()
        for h, b, n in zip(hours, best, g["number"]):
            if not np.isnan(b):
                rows.append({"group": key, "trial": int(n), "trial_hours": float(h), "best_val_accuracy": float(b)})
    return pd.DataFrame(rows)


def pareto_front(frame: pd.DataFrame, cost: str) -> pd.DataFrame:
    """Finished trials not beaten by another that is both cheaper in `cost` and more accurate."""
    done = finished(frame).dropna(subset=[cost]).sort_values([cost, "val_accuracy"], ascending=[True, False])
    front, best = [], -np.inf
    for _, row in done.iterrows():
        if row["val_accuracy"] > best:
            front.append(row)
            best = row["val_accuracy"]
    return pd.DataFrame(front).reset_index(drop=True)


def learning_curves(study: optuna.Study) -> pd.DataFrame:
    """Long table of per-epoch validation accuracy (the intermediate values) of every trial."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        for step, value in sorted(curve(t).items()):  # step: epochs trained
            rows.append({"number": t.number, "state": t.state.name.lower(), "epoch": step,
                         "val_accuracy": value,
                         "block": t.user_attrs.get("config", {}).get("arch", {}).get("block")})
    return pd.DataFrame(rows, columns=["number", "state", "epoch", "val_accuracy", "block"])


def format_table(frame: pd.DataFrame) -> str:
    """Plain-text rendering for the terminal, with readable numbers (format.readable)."""
    if frame.empty:
        return "(no finished trials)"
    return readable(frame).replace("", "-").to_string(index=False)
