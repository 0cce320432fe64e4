"""What a study tries first, and again: the space's defaults, configurations of presets or of another
study, and the trials that Ctrl-C cut short. Each is queued with Optuna's `enqueue_trial`."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from ..config import TrialConfig
from ..models import PRESETS
from ..study import INTERRUPTED, accuracy, load_existing_study
from .settings import SearchSettings
from .space import SearchSpace

WARM_STARTS = 5  # configurations --warm-start STUDY queues: that study's best complete trials


def requeue_interrupted(study: optuna.Study) -> int:
    """Enqueue once more the parameters of trials that Ctrl-C (or SIGTERM) cut short (one cut before it
    sampled anything has nothing to repeat)."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    count = 0
    for t in trials:
        if (
            t.state == TrialState.FAIL
            and t.user_attrs.get("fail_reason") == INTERRUPTED
            and t.number not in retried
            and t.params
        ):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
            count += 1
    return count


def queue_first(study: optuna.Study, space: SearchSpace, settings: SearchSettings) -> list[str]:
    """Queue what a new study tries first; returns a note for each source queued.

    Another study's best configurations (`--warm-start OTHER_STUDY`) go before the space's defaults:
    replayed on two data sets, queuing them first reached KerasTuner's final best 4.5-5.7x sooner than
    KerasTuner, the defaults first 2.5-3.4x (benchmarks/RESULTS.md, "Defaults, warm starts..."). The
    presets (`--warm-start baselines`), textbook networks, go after the defaults."""
    notes = []
    from_study = settings.warm_start not in (None, "baselines")
    if from_study:
        notes.append(_warm_start_note(settings.warm_start, warm_start(study, space, settings)))
    if space.default_params() and queue_defaults(study, space):
        notes.append("the space's defaults are queued after them" if from_study else "the first trial runs the space's defaults")
    if settings.warm_start and not from_study:
        notes.append(_warm_start_note(settings.warm_start, warm_start(study, space, settings)))
    return notes


def _warm_start_note(source: str, queued: list[str]) -> str:
    return (f"warm start from {source}: {len(queued)} configuration(s) queued"
            + (f" ({', '.join(queued)})" if queued else ""))


def queue_defaults(study: optuna.Study, space: SearchSpace) -> bool:
    """Queue the space's defaults in a new study (as KerasTuner starts from its hyperparameters'
    defaults), behind any warm starts queued for it; a study that has run trials, or had the defaults
    queued, is left alone."""
    done = study.user_attrs.get("warm_started", [])
    trials = study.get_trials(deepcopy=False)
    if "defaults" in done or any(t.state != TrialState.WAITING or "warm_start" not in t.user_attrs for t in trials):
        return False
    if any(t.system_attrs.get("fixed_params") == space.default_params() for t in trials):
        return False  # a warm start queued them already
    study.enqueue_trial(space.default_params(), user_attrs={"warm_start": "space defaults"})
    study.set_user_attr("warm_started", [*done, "defaults"])
    return True


def warm_start(study: optuna.Study, space: SearchSpace, settings: SearchSettings) -> list[str]:
    """Queue configurations to try first: the presets this space can express ("baselines"), or the
    WARM_STARTS best complete trials of another study. Once per study and source (recorded in the study)."""
    source = settings.warm_start
    done = study.user_attrs.get("warm_started", [])
    if source is None or source in done:
        return []
    if source == "baselines":
        candidates = [(p.name, p.as_config()) for p in PRESETS.values() if p.as_config is not None]
    else:
        other, _ = load_existing_study(source, settings.storage, settings.studies_dir)
        best = sorted((t for t in other.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                       if "config" in t.user_attrs), key=accuracy, reverse=True)[:WARM_STARTS]
        candidates = [(f"{source}#{t.number}", TrialConfig.from_dict(t.user_attrs["config"])) for t in best]
    queued = []
    for label, cfg in candidates:
        params = space.params_for(cfg)
        if params is not None:
            study.enqueue_trial(params, user_attrs={"warm_start": label})
            queued.append(label)
    study.set_user_attr("warm_started", [*done, source])
    return queued
