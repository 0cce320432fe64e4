"""A minute of real data in every CI run: the README's main command (the `residual` space on the
CIFAR-10 JPEG archive), the `fast` space on it, and the `airbench` space on Debian's Fashion-MNIST,
each a short search that must learn (well above chance) on the real images.

The archive is `../shared/datasets/cifar10-train-jpeg.tar.gz` beside the repository (CI has it; a
checkout without it skips those two); Fashion-MNIST is Debian's `dataset-fashion-mnist`, which
`.ci/run` installs. The long runs on real data are `-m slow` and the benchmarks."""

from pathlib import Path

import pytest

from cifar_automl.cli import main
from cifar_automl.data.idx import DEBIAN_FASHION_MNIST, idx_paths
from cifar_automl.study import load_existing_study

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-train-jpeg.tar.gz"
needs_archive = pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"needs {ARCHIVE.name} beside the repository")
needs_fmnist = pytest.mark.skipif(idx_paths(DEBIAN_FASHION_MNIST) is None,
                                  reason="needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache of decoded images for the module: the archive's 50,000 JPEGs are decoded once."""
    return tmp_path_factory.mktemp("cache")


def _search(tmp_path, cache, space, data, *extra):
    studies = tmp_path / "studies"
    argv = ["search", "--space", space, *data, "--studies-dir", str(studies), "--cache-dir", str(cache),
            "--trials-per-process", "0", "--quiet", "--pruner", "none", *extra]
    assert main(argv) == 0
    study, _ = load_existing_study(space, studies_dir=studies)
    return study


@needs_archive
@pytest.mark.parametrize("space, trials", [("residual", 2), ("fast", 1)])
def test_cifar10_archive_searches_learn(tmp_path, cache, space, trials):
    study = _search(tmp_path, cache, space, ["--dataset", "folder", "--data-dir", str(ARCHIVE)],
                    "--subset", "2000", "--trials", str(trials), "--epochs", "2")
    data = study.user_attrs["data"]
    assert data["image_shape"] == [32, 32, 3] and data["n_test"] == 10000 and data["num_classes"] == 10
    assert max(t.value for t in study.trials) > 0.2  # twice chance, after a few hundred steps


@needs_fmnist
def test_fashion_mnist_airbench_search_learns(tmp_path, cache):
    study = _search(tmp_path, cache, "airbench", ["--dataset", "fashion_mnist"], "--subset", "3000", "--trials", "1",
                    "--epochs", "2")
    data = study.user_attrs["data"]
    assert data["image_shape"] == [28, 28, 1] and data["test_source"] == "official" and data["n_test"] == 10000
    assert study.trials[0].value > 0.2  # twice chance after four steps of batch 1024
