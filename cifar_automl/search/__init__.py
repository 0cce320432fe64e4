"""The search: an Optuna study whose trials build, train and score Keras models.

    from cifar_automl.search import SearchSettings, run_search
    outcome = run_search(SearchSettings(space="residual", trials=30))

Modules: `space` (YAML search spaces), `settings` (what a search accepts), `strategies` (samplers and
pruners), `local` (moves from the incumbent, for `tpe-local` and `tpe-hill`), `objective` (one trial), `loop`
(trials one after another), `workers` (worker processes), `warmstart` (what a study tries first),
`progress` (the terminal), `run` (`run_search`), and `kerastuner` (the same spaces and training for
KerasTuner's tuners).
"""

from __future__ import annotations

import importlib
from typing import Any

# Exported lazily (PEP 562): a worker process starts from `search.workers`, and must import TensorFlow
# quietly before anything here imports it, so importing this package imports none of its modules.
_EXPORTS = {
    "SearchSettings": "settings", "TIMEOUT_REACHED": "settings", "SearchSpace": "space", "load_space": "space",
    "list_spaces": "space", "SearchOutcome": "settings", "prepare": "run", "run_search": "run",
    "SearchReporter": "progress", "SAMPLERS": "strategies", "PRUNERS": "strategies",
    "COST_CAP": "objective", "TIMED_EPOCHS": "objective",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
