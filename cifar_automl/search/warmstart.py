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
    """Enqueue once more the parameters of trials that Ctrl-C (or SIGTERM) cut short: those it sampled,
    or, for a queued trial cut before it sampled, those it was queued with (a sampler's trial cut that
    early has nothing to repeat). The retry keeps the label of a queued one (`warm_start`: the space's
    defaults, a warm start), so that it is still what a new study runs first (`auto.first_trial`)."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    count = 0
    for t in trials:
        params = t.params or t.system_attrs.get("fixed_params")
        if (
            t.state == TrialState.FAIL
            and t.user_attrs.get("fail_reason") == INTERRUPTED
            and t.number not in retried
            and params
        ):
            label = {"warm_start": t.user_attrs["warm_start"]} if t.user_attrs.get("warm_start") else {}
            study.enqueue_trial(params, user_attrs={"retry_of": t.number, **label}, skip_if_exists=False)
            count += 1
    return count


def queue_first(study: optuna.Study, space: SearchSpace, settings: SearchSettings) -> list[str]:
    """Queue what a new study tries first: the `--warm-start` source's configurations, then the space's
    defaults; returns a note for each source queued.

    The source the user named runs first: replayed, another study's best before the defaults reached
    KerasTuner's final best sooner than after them (4.54x against 2.50x on Fashion-MNIST, 5.69x against
    3.37x on CIFAR-10: benchmarks/RESULTS.md, "Defaults, warm starts and moves from the incumbent").
    `auto` times its search share on the first trial, whichever it is (`auto.first_trial`)."""
    notes = []
    queued: list[str] = []
    if settings.warm_start:
        queued = warm_start(study, space, settings)
        notes.append(f"warm start from {settings.warm_start}: {len(queued)} configuration(s) queued"
                     + (f" ({', '.join(queued)})" if queued else ""))
    if space.default_params() and queue_defaults(study, space):
        notes.append("the space's defaults run after them" if queued else "the first trial runs the space's defaults")
    return notes


def queue_defaults(study: optuna.Study, space: SearchSpace) -> bool:
    """Queue the space's defaults as a new study's trial (as KerasTuner starts from its hyperparameters'
    defaults): behind what a warm start queued, if anything; a study that has run trials, or had the
    defaults queued, is left alone."""
    if not _takes_defaults(study):
        return False
    done = study.user_attrs.get("warm_started", [])
    study.enqueue_trial(space.default_params(), user_attrs={"warm_start": "space defaults"})
    study.set_user_attr("warm_started", [*done, "defaults"])
    return True


def _takes_defaults(study: optuna.Study) -> bool:
    """Whether `queue_defaults` would queue the defaults: they are not queued yet, and no trial has run."""
    return ("defaults" not in study.user_attrs.get("warm_started", [])
            and all(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False)))


def warm_start(study: optuna.Study, space: SearchSpace, settings: SearchSettings) -> list[str]:
    """Queue configurations to try first: the presets this space can express ("baselines"), or the
    WARM_STARTS best complete trials of another study, leaving out any this study already holds and the
    space's defaults when a new study queues them next (when they were among the other study's best,
    the next best takes their place). Once per study and source (recorded in the study)."""
    source = settings.warm_start
    done = study.user_attrs.get("warm_started", [])
    if source is None or source in done:
        return []
    if source == "baselines":
        candidates = [(p.name, p.as_config()) for p in PRESETS.values() if p.as_config is not None]
    else:
        other, _ = load_existing_study(source, settings.storage, settings.studies_dir)
        best = sorted((t for t in other.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                       if "config" in t.user_attrs), key=accuracy, reverse=True)
        candidates = [(f"{source}#{t.number}", TrialConfig.from_dict(t.user_attrs["config"])) for t in best]
    held = [t.system_attrs.get("fixed_params") or t.params for t in study.get_trials(deepcopy=False)]
    if space.default_params() and _takes_defaults(study):  # queued right after: not a warm start's to run
        held.append(space.default_params())
    queued = []
    for label, cfg in candidates:
        params = space.params_for(cfg)
        if params is None or params in held:
            continue
        if source != "baselines" and len(queued) == WARM_STARTS:
            break
        study.enqueue_trial(params, user_attrs={"warm_start": label})
        held.append(params)
        queued.append(label)
    study.set_user_attr("warm_started", [*done, source])
    return queued
