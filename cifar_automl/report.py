"""Tables of a study's results (pandas). Reads the study only; never trains.

`trials_frame(study)` flattens every trial (state, score, config, measurements) into one row;
`leaderboard(frame)` keeps the best finished ones with the columns people compare.
"""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd

LEADERBOARD_COLUMNS = [
    "number", "state", "val_accuracy", "block", "stages", "blocks_per_stage", "base_filters",
    "kernel_size", "activation", "optimizer", "learning_rate", "batch_size", "augment",
    "epochs_run", "params", "minutes",
]


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: Optuna's state and value plus the flattened config and user attributes."""
    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        cfg = ua.get("config", {})
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "val_accuracy": ua.get("val_accuracy"),
            "val_loss": ua.get("val_loss"),
            "best_epoch": ua.get("best_epoch"),
            "epochs_run": ua.get("epochs_run", 0),
            "params": ua.get("params"),
            "flops": ua.get("flops"),
            "epoch_seconds": _mean(ua.get("epoch_seconds", [])),
            "minutes": sum(ua.get("epoch_seconds", [])) / 60.0,
            "images_per_second": ua.get("images_per_second"),
            "fail_reason": ua.get("fail_reason"),
        }
        for section in ("arch", "train"):
            for key, value in cfg.get(section, {}).items():
                if key == "block_options":
                    row.update({f"{cfg['arch']['block']}.{k}": v for k, v in value.items()})
                else:
                    row[key] = value
        rows.append(row)
    return pd.DataFrame(rows)


def leaderboard(frame: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """Best finished trials first (complete before pruned at equal accuracy)."""
    if frame.empty:
        return frame
    done = frame[frame["state"].isin(["complete", "pruned"]) & frame["val_accuracy"].notna()]
    done = done.assign(_complete=done["state"].eq("complete"))
    done = done.sort_values(["val_accuracy", "_complete"], ascending=[False, False]).head(top)
    return done[[c for c in LEADERBOARD_COLUMNS if c in done.columns]].reset_index(drop=True)


def format_table(frame: pd.DataFrame) -> str:
    """Plain-text rendering for the terminal."""
    if frame.empty:
        return "(no finished trials)"
    fmt = frame.copy()
    for col, f in {
        "val_accuracy": "{:.4f}", "learning_rate": "{:.1e}", "minutes": "{:.1f}",
        "params": "{:,.0f}",
    }.items():
        if col in fmt.columns:
            fmt[col] = fmt[col].map(lambda v, f=f: f.format(v) if pd.notna(v) else "-")
    return fmt.to_string(index=False)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
