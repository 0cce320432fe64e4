"""What a search shows on the terminal: a progress bar over finished trials and one line per trial."""

from __future__ import annotations

import sys
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from ..config import TrialConfig
from ..data import Splits
from ..study import OBJECTIVE, accuracy, count_finished
from .space import SearchSpace


def header(space: SearchSpace, splits: Splits) -> str:
    """The line a search starts with: the space, the data and its split."""
    info = splits.info
    return (
        f"space '{space.name}' ({', '.join(space.block_choices)}) | {info['dataset']} "
        f"{'x'.join(str(d) for d in info['image_shape'])}, {len(splits.class_names)} classes | "
        f"train {info['n_train']}, val {info['n_val']} (test {info['n_test']} held out)"
        + (f" | {info['skipped_files']} unreadable images skipped" if info.get("skipped_files") else "")
    )


class SearchReporter:
    """Progress bar over finished trials (best so far, ETA) and one line per trial."""

    def __init__(self, quiet: bool = False, stream: Any = None, header: str = "", open_ended: bool = False,
                 debug: bool = False) -> None:
        self.quiet = quiet
        self.debug = debug  # a failed trial's traceback is shown, not only its fail_reason
        self.open_ended = open_ended  # no trial target worth a bar (a time budget decides): count, no ETA
        self.header = header
        self._notes: set[str] = set()
        self.stream = stream or sys.stderr
        self.bar: Any = None

    def start(self, study: optuna.Study, total: int, finished: int, notes: list[str], header: str = "") -> None:
        """Called once the study is open: the header goes out only when the search really starts."""
        for line in [self.header or header, *notes]:
            if line:
                print(line, file=self.stream)
        if self.quiet:
            return
        self.bar = tqdm(
            total=None if self.open_ended else total, initial=finished, desc=f"search {study.study_name}", unit="trial",
            file=self.stream, dynamic_ncols=True,
        )
        self._set_best(study)

    def note(self, text: str) -> None:
        """A line of information, once (e.g. the devices a new worker found)."""
        if text in self._notes:
            return
        self._notes.add(text)
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream)

    def epoch(self, number: int, epoch: int, logs: dict) -> None:
        if self.bar is not None:
            acc = logs.get(OBJECTIVE, float("nan"))
            self.bar.set_postfix_str(f"{self._best} | trial {number} epoch {epoch} val_acc {acc:.4f}")

    def trial(self, study: optuna.Study, t: optuna.trial.FrozenTrial | None) -> None:
        if t is not None and self.debug and t.state == TrialState.FAIL and t.user_attrs.get("traceback"):
            print(t.user_attrs["traceback"], file=self.stream, end="")
        if t is None or self.quiet:
            return
        self.bar.write(describe_trial(t), file=self.stream)
        self.bar.n = count_finished(study)
        self._set_best(study)

    def _set_best(self, study: optuna.Study) -> None:
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if accuracy(t) is not None]
        if not done:
            self._best = "best -"
        elif len(study.directions) > 1:
            self._best = f"front {len(study.best_trials)} trial(s), best accuracy {max(map(accuracy, done)):.4f}"
        else:
            best = max(done, key=accuracy)
            self._best = f"best {accuracy(best):.4f} (#{best.number})"
        self.bar.set_postfix_str(self._best)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def describe_trial(t: optuna.trial.FrozenTrial) -> str:
    """One line: number, outcome, score, the main choices, epochs and time."""
    ua = t.user_attrs
    cfg = TrialConfig.from_dict(ua["config"]) if "config" in ua else None
    state = {TrialState.COMPLETE: "done", TrialState.PRUNED: "pruned", TrialState.FAIL: "FAILED"}.get(
        t.state, t.state.name.lower()
    )
    acc = ua.get("val_accuracy")
    score = f"val_acc {acc:.4f}" if acc is not None else "val_acc  -    "
    what = ""
    if cfg is not None:
        a, tr = cfg.arch, cfg.train
        what = (
            f"{a.block} {a.stages}x{a.blocks_per_stage} w{a.base_filters} k{a.kernel_size} {a.activation}"
            f" | {tr.optimizer} lr {tr.learning_rate:.1e} bs {tr.batch_size} aug {tr.augment}"
        )
    secs = sum(ua.get("epoch_seconds", []))
    extra = f" ({ua['fail_reason']})" if ua.get("fail_reason") else ""
    origin = ua.get("retry_of", t.system_attrs.get("failed_trial"))
    extra += f" (retry of trial {origin})" if origin is not None else ""
    return (
        f"trial {t.number:>3} {state:<6} {score} | {what} | {ua.get('epochs_run', 0)} ep "
        f"{secs:5.1f}s{extra}"
    )


class ReporterEvents:
    """Feeds trial-loop events to a SearchReporter (in the process that owns the terminal)."""

    def __init__(self, study: optuna.Study, reporter: SearchReporter) -> None:
        self.study, self.reporter = study, reporter

    def __call__(self, event: tuple) -> None:
        if event[0] == "epoch":
            self.reporter.epoch(event[1], event[2], {OBJECTIVE: event[3]})
        elif event[0] == "trial":
            self.reporter.trial(self.study, self.study.get_trials(deepcopy=False)[event[1]])
        elif event[0] == "device":
            self.reporter.note(event[1])
        elif event[0] == "wait":
            self.reporter.note(f"waiting for {event[1]} trial(s) running in other workers ({event[2]})")
