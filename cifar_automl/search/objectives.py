"""What a search optimises: validation accuracy, alone or against a cost, within optional limits.

`--objective accuracy` (one objective), `accuracy,latency` (milliseconds per image at batch 1 on the
machine that ran the trial) or `accuracy,params` (parameter count). `--max-latency MS` and
`--max-params N` are limits: Optuna constraints (`Trial.set_constraint`, a value <= 0 is feasible;
TPE and NSGA-II steer by them) on what each trial measures right after its model is built, so a
trial over a limit is recognised before any training, and pruned there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UserError

ACCURACY = "val_accuracy"
COSTS = {"latency": "latency_ms", "params": "params"}  # --objective word -> the metric (user attribute)
OBJECTIVES = ("accuracy", "accuracy,latency", "accuracy,params")


@dataclass(frozen=True)
class Goal:
    objective: str = "accuracy"
    max_latency_ms: float | None = None
    max_params: int | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise UserError(f"unknown objective '{self.objective}' (choose from {', '.join(OBJECTIVES)})")
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            raise UserError(f"--max-latency must be positive, not {self.max_latency_ms}")
        if self.max_params is not None and self.max_params < 1:
            raise UserError(f"--max-params must be at least 1, not {self.max_params}")

    @property
    def costs(self) -> tuple[str, ...]:
        """The cost metrics optimised beside accuracy (user attribute names)."""
        return tuple(COSTS[word] for word in self.objective.split(",")[1:])

    @property
    def multi(self) -> bool:
        return bool(self.costs)

    @property
    def metric_names(self) -> list[str]:
        return [ACCURACY, *self.costs]

    @property
    def directions(self) -> list[str]:
        return ["maximize", *["minimize"] * len(self.costs)]

    @property
    def needs_latency(self) -> bool:
        return "latency_ms" in self.costs or self.max_latency_ms is not None

    @property
    def limited(self) -> bool:
        return self.max_latency_ms is not None or self.max_params is not None

    def constraints(self, attrs: dict[str, Any]) -> dict[str, float]:
        """One value per limit, <= 0 when the trial keeps it (Optuna's convention, `Trial.set_constraint`)."""
        out = {}
        if self.max_params is not None:
            out["params"] = float(attrs.get("params", float("inf"))) - self.max_params
        if self.max_latency_ms is not None:
            out["latency_ms"] = float(attrs.get("latency_ms", float("inf"))) - self.max_latency_ms
        return out

    def broken_limit(self, attrs: dict[str, Any]) -> str | None:
        """Why a trial is infeasible (None when it keeps every limit)."""
        if self.max_params is not None and attrs.get("params", 0) > self.max_params:
            return f"{attrs['params']:,} parameters, over --max-params {self.max_params:,}"
        if self.max_latency_ms is not None and attrs.get("latency_ms", 0.0) > self.max_latency_ms:
            return f"{attrs['latency_ms']:.2f} ms per image, over --max-latency {self.max_latency_ms:g}"
        return None

    def values(self, accuracy: float, attrs: dict[str, Any]) -> float | list[float]:
        """What the trial tells the study: its accuracy, and its costs when they are objectives."""
        if not self.multi:
            return accuracy
        return [accuracy, *(float(attrs[c]) for c in self.costs)]
