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


def queue_defaults(study: optuna.Study, space: SearchSpace) -> bool:
    """Queue the space's defaults as a new study's first trial (as KerasTuner starts from its
    hyperparameters' defaults); a study that already has trials, or had them queued, is left alone."""
    done = study.user_attrs.get("warm_started", [])
    if "defaults" in done or study.get_trials(deepcopy=False):
        return False
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
