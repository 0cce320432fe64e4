import optuna
import pytest

from cifar_automl.blocks import BLOCKS
from cifar_automl.errors import SpaceError
from cifar_automl.spaces import config_from_params, list_spaces, load_space, parse_space


BUILTIN = ["plain", "inception", "residual", "all", "tiny", "fast", "fast_small"]


def test_builtin_spaces_cover_the_required_names():
    assert set(BUILTIN) <= set(list_spaces())


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_space_samples_valid_configs(name):
    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(40):
        trial = study.ask()
        cfg = space.sample(trial, epochs=4)
        assert cfg.arch.block in space.block_choices
        assert set(cfg.arch.block_options) == set(BLOCKS[cfg.arch.block].options)
        assert cfg.train.epochs == 4
        # block options are sampled only for the chosen block, momentum only for sgd
        other = [p for p in trial.params if "." in p and not p.startswith(cfg.arch.block + ".")]
        assert other == []
        assert ("momentum" in trial.params) == (cfg.train.optimizer == "sgd" and "momentum" in str(space.to_dict()))
        study.tell(trial, 0.5)


def test_all_space_searches_the_whole_brief():
    space = load_space("all")
    sampled = {p.field for p in space.arch + space.train if p.kind != "fixed"}
    assert {
        "block", "stages", "blocks_per_stage", "base_filters", "width_growth", "kernel_size",
        "activation", "batch_norm", "conv_dropout", "dense_dropout", "pooling", "dense_units",
        "optimizer", "learning_rate", "weight_decay", "batch_size", "augment",
    } <= sampled
    assert set(space.blocks) == {"plain", "inception", "residual"}


def test_space_by_path_and_fingerprint(tmp_path):
    src = load_space("tiny").source
    text = open(src).read()
    copy = tmp_path / "mine.yaml"
    copy.write_text("# a comment\n" + text)
    assert load_space(str(copy)).fingerprint == load_space("tiny").fingerprint
    copy.write_text(text.replace("base_filters: 8", "base_filters: 16"))
    assert load_space(str(copy)).fingerprint != load_space("tiny").fingerprint


def test_config_from_params_rebuilds_a_trial():
    space = load_space("all")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    cfg = space.sample(trial, epochs=5)
    assert config_from_params(space, trial.params, epochs=5) == cfg


@pytest.mark.parametrize(
    "text, message",
    [
        ("arch:\n  stages: {type: int, low: 4, high: 2}\n", r"line 2, arch.stages: 'low' \(4\) must be <= 'high'"),
        ("arch:\n  depth: 3\n", r"line 2, arch.depth: unknown field"),
        ("arch:\n  block: {type: categorical, choices: [plain, dense]}\n", r"unknown block type 'dense'"),
        ("train:\n  learning_rate: {type: float, low: 0, high: 1, log: true}\n", r"log scale needs low > 0"),
        ("train:\n  epochs: 5\n", r"set it with --epochs"),
        ("train:\n  momentum: {type: float, low: 0.8, high: 0.9, when: {optimizer: sgd}}\n  optimizer: sgd\n",
         r"'optimizer' must be a parameter listed before"),
        ("arch:\n  activation: {type: categorical, choices: [relu, sigmoidish]}\n", r"unknown value 'sigmoidish'"),
        ("arch:\n  stages: {type: int, low: 1, high: [2]}\n", r"line 2, arch.stages.high: must be an integer"),
        ("blocks:\n  residual:\n    bottleneck: {type: categorical, choices: [true]}\n", r"line 3, blocks.residual.bottleneck"),
        ("arch:\n  stages: {type: int, low: 1\n", r"line \d+: invalid YAML"),
        ("weird: 1\n", r"line 1, weird: unknown section"),
        ("arch:\n  batch_norm: maybe\n", r"arch.batch_norm: expected a bool"),
    ],
)
def test_malformed_spaces_name_the_line_and_key(text, message):
    with pytest.raises(SpaceError, match=message):
        parse_space(text, source="bad.yaml")


def test_unknown_space_name_lists_the_known_ones():
    with pytest.raises(SpaceError, match="unknown search space 'nope'.*residual"):
        load_space("nope")
    with pytest.raises(SpaceError, match="not found"):
        load_space("missing/file.yaml")
