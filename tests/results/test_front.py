"""A Pareto search carried through: retrain --pareto, export --pareto, each exported file measured."""

import pandas as pd
import pytest

from cifar_automl.cli import main
from cifar_automl.errors import UserError
from cifar_automl.results import front_exports, retrain_summaries
from cifar_automl.search import SearchSettings, prepare, run_search
from cifar_automl.study import load_existing_study

from ..helpers import write_image_tree


@pytest.fixture(scope="module")
def front_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("front")
    tree = write_image_tree(root / "tree", n_per_class=20, size=12)
    settings = SearchSettings(space="tiny", dataset="folder", data_dir=str(tree), subset=None, trials=5, epochs=2,
                              studies_dir=str(root / "studies"), cache_dir=str(root / "cache"), pruner="none",
                              trials_per_process=0, objective="accuracy,params", study_name="front")
    run_search(settings, prepared=prepare(settings))
    return root


def test_retrain_and_export_the_front_with_measured_files(front_study, capsys):
    studies = str(front_study / "studies")
    common = ["--study-name", "front", "--studies-dir", studies]
    assert main(["retrain", *common, "--pareto", "2", "--epochs", "1", "--cache-dir",
                 str(front_study / "cache")]) == 0
    study, _ = load_existing_study("front", None, studies)
    front = {t.number for t in study.best_trials}
    retrained = retrain_summaries(study)
    assert 1 <= len(retrained) <= 2 and set(retrained) <= front
    assert all(s["pareto"] and len(s["values"]) == 2 for s in retrained.values())
    assert main(["export", *common, "--pareto", "--format", "tflite", "onnx"]) == 0
    assert "latency_ms" in capsys.readouterr().out
    measured = front_exports(load_existing_study("front", None, studies)[0])
    assert set(measured) == set(retrained)
    for number, formats in measured.items():
        assert set(formats) == {"keras", "tflite", "onnx"}
        for fmt, m in formats.items():
            assert m["latency_ms"] > 0 and m["device"].startswith(("CPU", "GPU"))
            # the exported file itself agrees with the Keras model within half a point
            assert abs(m["accuracy"] - retrained[number]["accuracy"]) <= 0.005, (fmt, m, retrained[number])
    # the report's Pareto section: the front, with what retraining and exporting measured
    assert main(["report", *common]) == 0
    report = front_study / "studies" / "front" / "report"
    table = pd.read_csv(report / "front.csv")
    assert set(measured) <= set(table["trial"]) and {"tflite_accuracy", "onnx_latency_ms"} <= set(table.columns)
    assert "The front's exported models, measured" in (report / "index.html").read_text()


def test_pareto_needs_a_study_of_several_objectives(study_dir):
    with pytest.raises(UserError, match="has one objective"):
        from cifar_automl.results import RetrainSettings, retrain

        retrain(RetrainSettings(study_name="tiny", studies_dir=str(study_dir / "studies"), pareto=2))
    assert main(["export", "--study-name", "tiny", "--studies-dir", str(study_dir / "studies"), "--pareto",
                 "--trial", "0"]) == 2
