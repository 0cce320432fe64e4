"""Numbers a person reads at a glance: parameters as 596k or 1.2M, times in seconds, minutes or hours,
accuracies as percentages with one decimal. The tables keep the raw numbers (their CSV files too);
these turn them into text for the page, the Markdown summary and the terminal."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

# column name -> how its values read; a column not named here keeps its value
ACCURACY = ("val_accuracy", "test_accuracy", "best_val_accuracy", "median_val_accuracy", "accuracy",
            "best", "median", "spread", "exported_accuracy")
COUNTS = ("params", "median_params", "flops")


def count(value: float) -> str:
    """1234 -> 1.2k, 596000 -> 596k, 1230000 -> 1.2M."""
    value = float(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            scaled = value / limit
            return f"{scaled:.1f}{suffix}" if scaled < 10 else f"{scaled:.0f}{suffix}"
    return f"{value:.0f}"


def duration(minutes: float) -> str:
    """Minutes as 42 s, 7.5 min or 2.3 h."""
    minutes = float(minutes)
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 120:
        return f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"


def percent(value: float) -> str:
    """0.8917 -> 89.2%."""
    return f"{100 * float(value):.1f}%"


def cell(column: str, value: Any) -> str:
    """One table cell as text, by what its column holds."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    if column in ACCURACY or column.endswith("_accuracy"):
        return percent(value)
    if column in COUNTS or column.endswith("_params"):
        return count(value)
    if column in ("minutes", "train_minutes") or column.endswith("_minutes"):
        return duration(value)
    if column.endswith("hours"):
        return duration(value * 60)
    if column.endswith("seconds") or column == "latency_ms" or column.startswith("latency"):
        return f"{value:.3g}"
    if column.endswith("_points"):  # a difference in percentage points
        return f"{value:+.1f}"
    if column == "rank_correlation":
        return f"{value:.2f}"
    if column == "learning_rate":
        return f"{value:.1e}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with every cell as text (see `cell`)."""
    out = frame.copy()
    for column in out.columns:
        out[column] = [cell(column, v) for v in out[column]]
    return out
