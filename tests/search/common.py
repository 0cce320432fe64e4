"""What the search tests share: tiny data, settings for a few fast trials, and a run on that data."""

from cifar_automl.search import SearchSettings, run_search
from cifar_automl.search.space import load_space

from ..helpers import synthetic_splits  # noqa: F401  (re-exported for the search tests)

SPLITS = synthetic_splits(n_per_class=30, size=8)


def settings(tmp_path, **kw) -> SearchSettings:
    """The `tiny` space, 3 trials of 2 epochs, in this process, in `tmp_path/studies`."""
    base = dict(space="tiny", trials=3, epochs=2, studies_dir=str(tmp_path / "studies"), seed=0,
                trials_per_process=0)
    base.update(kw)
    return SearchSettings(**base)


def run(settings, space=None, **kw):
    """run_search on SPLITS (no data loaded)."""
    return run_search(settings, prepared=(space or load_space(settings.space), SPLITS), **kw)
