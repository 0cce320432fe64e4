"""Fixtures shared by the test modules: one tiny real study (search + retrain) per test session."""

import pytest

from .helpers import write_image_tree

# The fast core that CI runs once more on JAX (`KERAS_BACKEND=jax python -m pytest -m core`), so that no
# path quietly becomes TensorFlow-only: training and both input feeds, model building, a search, a
# retrain with its exports and the backend choices.
CORE = ("tests/training/", "tests/models/test_build.py", "tests/search/test_run.py", "tests/search/test_kerastuner.py",
        "tests/results/test_retrain.py", "tests/test_runtime.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(CORE):
            item.add_marker(pytest.mark.core)


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory):
    """A 2-trial search of the tiny space on a 60-image synthetic folder data set."""
    from cifar_automl.search import SearchSettings, prepare, run_search

    root = tmp_path_factory.mktemp("study")
    tree = write_image_tree(root / "tree", n_per_class=20, size=12)
    settings = SearchSettings(
        space="tiny", dataset="folder", data_dir=str(tree), subset=None, trials=2, epochs=2,
        studies_dir=str(root / "studies"), cache_dir=str(root / "cache"), pruner="none",
        trials_per_process=0,
    )
    run_search(settings, prepared=prepare(settings))
    return root


@pytest.fixture(scope="session")
def retrained(study_dir):
    from cifar_automl.results import RetrainSettings, retrain

    settings = RetrainSettings(study_name="tiny", studies_dir=str(study_dir / "studies"), epochs=3,
                               cache_dir=str(study_dir / "cache"), progress=False)
    (result,) = retrain(settings)
    return result
