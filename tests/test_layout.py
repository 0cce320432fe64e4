"""The package's shape: data flows one way through its stages, and the registries make a new block
type, data set or export format one function in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import optuna
import pytest
from keras import layers

from cifar_automl.config import ArchConfig
from cifar_automl.data import (
    Dataset,
    Reader,
    load_dataset,
    make_splits,
    register_dataset,
)
from cifar_automl.data.sources import SOURCES
from cifar_automl.models import BLOCKS, build_model, register_block
from cifar_automl.search import SearchSettings, run_search
from cifar_automl.search.space import parse_space

PACKAGE = Path(__file__).resolve().parents[1] / "cifar_automl"
# the pipeline, first to last: a module may import its own stage and earlier ones, never a later one
STAGES = ["config", "errors", "runtime", "pareto", "study", "data", "models", "training", "search", "results", "report",
          "auto", "cli", "__main__"]
FOUNDATION = {"config": 0, "errors": 0, "runtime": 0, "pareto": 0, "study": 1}


def _stage(module: str) -> int:
    """The rank of `cifar_automl.<a>.<b>` in the pipeline (the foundation modules share the first ranks)."""
    top = module.split(".")[1] if "." in module else "__init__"
    if top == "__init__":
        return -1
    return FOUNDATION.get(top, STAGES.index(top))


def _imports() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports, at its top or anywhere else."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                if target.startswith("cifar_automl"):
                    if node.module:  # `from . import x` imports the submodule x, not the package
                        found.add(target)
                    found.update(f"{target}.{a.name}" for a in node.names
                                 if (PACKAGE.parent / f"{target}.{a.name}".replace(".", "/")).with_suffix(".py").exists())
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("cifar_automl"))
        graph[module] = {m for m in found if m != module and m != "cifar_automl"}
    return graph


def _later_stage_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((m, i) for m, targets in graph.items() for i in targets if _stage(i) > _stage(m))


def test_no_module_imports_a_later_stage():
    assert _later_stage_imports(_imports()) == []


def test_the_stage_check_reports_a_backward_import():
    graph = _imports()
    assert "cifar_automl.study" in graph["cifar_automl.results.retrain"]  # the graph sees relative imports
    graph["cifar_automl.models.build"] = {"cifar_automl.training.fit", "cifar_automl.config"}
    assert _later_stage_imports(graph) == [("cifar_automl.models.build", "cifar_automl.training.fit")]


def test_results_and_report_open_studies_through_study_never_search():
    graph = _imports()
    users = {m: {i for i in targets if i.startswith("cifar_automl.search")} for m, targets in graph.items()
             if m.startswith(("cifar_automl.results", "cifar_automl.report"))}
    assert users and all(not found for found in users.values()), users


def test_no_import_cycles():
    graph = _imports()
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        seen[module] = 1
        for target in sorted(graph.get(module, ())):
            if target not in graph:
                continue
            if seen.get(target) == 1:
                cycle = path[path.index(target):] + [target] if target in path else [module, target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in seen:
                visit(target, [*path, target])
        seen[module] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [module])


def test_a_block_type_is_one_function_and_one_yaml_entry(tmp_path):
    @register_block("toy_dense", options={"units": 8})
    def toy_dense(x, filters, *, stride, kernel_size, activation, batch_norm, name, units=8):
        """A 1x1 conv of `units` filters (a toy block for this test)."""
        return layers.Conv2D(units, 1, strides=stride, activation=activation, name=f"{name}_conv")(x)

    try:
        space = parse_space(
            "arch:\n  block: toy_dense\n  stages: 2\n"
            "blocks:\n  toy_dense:\n    units: {type: categorical, choices: [4, 6]}\n"
            "train:\n  batch_size: 16\n"
        )
        trial = optuna.trial.FixedTrial({"toy_dense.units": 6})
        cfg = space.sample(trial, epochs=1)
        assert cfg.arch.block == "toy_dense" and cfg.arch.block_options == {"units": 6}
        model = build_model(cfg.arch, (8, 8, 3), 3)
        assert any(layer.name == "stage1_block1_conv" and layer.filters == 6 for layer in model.layers)
    finally:
        del BLOCKS["toy_dense"]


def test_a_data_set_is_one_registered_function(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    y = np.repeat(np.arange(2), 20)

    @register_dataset("toy")
    def toy(data_dir):
        return Reader("generated", None, lambda size: Dataset("toy", x, y, None, None, ("a", "b"), "generated"))

    try:
        ds = load_dataset("toy")
        assert ds.x_train.shape == (40, 8, 8, 3) and make_splits(ds, 0.25).info["test_source"] == "carved"
        settings = SearchSettings(space="tiny", dataset="toy", subset=None, trials=1, epochs=1, pruner="none",
                                  trials_per_process=0, studies_dir=str(tmp_path))
        outcome = run_search(settings)
        assert outcome.finished == 1 and outcome.study.user_attrs["data"]["dataset"] == "toy"
    finally:
        del SOURCES["toy"]


def test_every_search_flag_is_a_settings_field_and_back():
    from cifar_automl.cli import build_parser

    parser = build_parser()
    search = parser._subparsers._group_actions[0].choices["search"]
    dests = {a.dest for a in search._actions} - {"help", "top", "quiet"}
    fields = {f for f in SearchSettings.__dataclass_fields__ if SearchSettings.__dataclass_fields__[f].metadata["cli"]}
    assert dests == fields
    defaults = {a.dest: a.default for a in search._actions if a.dest in fields}
    assert defaults == {f: getattr(SearchSettings(), f) for f in fields}


def test_an_export_format_is_one_registered_function(tmp_path):
    from cifar_automl.results.export import FORMATS, export_model, register_format

    model = build_model(ArchConfig(block="plain", stages=1, base_filters=8), (8, 8, 3), 3)
    model.save(tmp_path / "model.keras")

    @register_format("param-count", ".txt")
    def param_count(model, model_path, out):
        out.write_text(str(model.count_params()))

    try:
        out = export_model(tmp_path / "model.keras", "param-count", tmp_path / "export" / "model.txt")
        assert out.read_text() == str(model.count_params())
    finally:
        del FORMATS["param-count"]
