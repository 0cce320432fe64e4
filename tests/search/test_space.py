import optuna
import pytest

from cifar_automl.errors import SpaceError
from cifar_automl.models import BLOCKS
from cifar_automl.search.space import (
    config_from_params,
    list_spaces,
    load_space,
    parse_space,
)

BUILTIN = ["plain", "inception", "residual", "all", "tiny", "fast", "fast_small", "airbench"]


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
        ("train:\n  learning_rate: {type: float, low: 0.1, high: 1, default: 2}\n",
         r"line 2, train.learning_rate.default: 2 is not one of the values"),
        ("arch:\n  activation: {type: categorical, choices: [relu, gelu], default: elu}\n",
         r"arch.activation.default: 'elu' is not one"),
        # values a field cannot take at all: found when the space is read, not as five failed trials
        ("train:\n  batch_size: 0\n", r"line 2, train.batch_size: 0 is out of range: must be in \[1, inf\)"),
        ("train:\n  batch_size: {type: categorical, choices: [32, -64]}\n", r"train.batch_size: -64 is out of range"),
        ("arch:\n  base_filters: {type: int, low: 0, high: 32}\n", r"arch.base_filters: 0 is out of range"),
        ("arch:\n  kernel_size: {type: int, low: 0, high: 5}\n", r"arch.kernel_size: 0 is out of range"),
        ("arch:\n  stages: 0\n", r"arch.stages: 0 is out of range"),
        ("arch:\n  dense_dropout: {type: float, low: 0.0, high: 1.0}\n",
         r"arch.dense_dropout: 1.0 is out of range: must be in \[0, 1\)"),
        ("train:\n  label_smoothing: 1.5\n", r"train.label_smoothing: 1.5 is out of range"),
        ("train:\n  learning_rate: {type: float, low: 0.0, high: 0.1}\n", r"learning_rate: 0.0 is out of range: must be in \(0"),
        ("arch:\n  stages: {type: int, low: 1, high: 4, step: 5}\n", r"line 2, arch.stages.step: 5 is larger than the range"),
        ("train:\n  momentum: {type: float, low: 0.8, high: 0.9, step: -0.1}\n", r"momentum.step: must be positive"),
        ("blocks:\n  plain:\n    convs: 0\n", r"line 3, blocks.plain.convs: 0 is out of range"),
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


def test_defaults_are_the_first_trial_and_the_rest_is_sampled():
    space = parse_space(
        "arch:\n  base_filters: {type: categorical, choices: [8, 16], default: 16}\n"
        "  stages: {type: int, low: 1, high: 3}\n"
        "train:\n  learning_rate: {type: float, low: 0.01, high: 1.0, log: true, default: 0.1}\n"
        "  batch_size: {type: int, low: 16, high: 64, step: 16, default: 32.0}\n"
    )
    assert space.default_params() == {"base_filters": 16, "learning_rate": 0.1, "batch_size": 32}
    cfg = space.sample(optuna.trial.FixedTrial({**space.default_params(), "stages": 2}), epochs=3)
    assert (cfg.arch.base_filters, cfg.train.learning_rate, cfg.train.batch_size) == (16, 0.1, 32)
    assert load_space("tiny").default_params() == {}  # no defaults: nothing is queued


def test_defaults_leave_out_what_the_default_trial_does_not_use():
    """Options of blocks other than the default one and parameters whose `when` the defaults rule out
    are not queued: the queued trial's parameters equal those of the configuration it runs (so a warm
    start of that configuration is seen as held)."""
    text = ("arch:\n  block: {type: categorical, choices: [plain, residual]%s}\n"
            "blocks:\n  residual:\n    preact: {type: categorical, choices: [false, true], default: true}\n"
            "train:\n  optimizer: {type: categorical, choices: [adam, sgd], default: adam}\n"
            "  momentum: {type: float, low: 0.8, high: 0.95, when: {optimizer: sgd}, default: 0.9}\n")
    space = parse_space(text % ", default: plain")
    assert space.default_params() == {"block": "plain", "optimizer": "adam"}
    cfg = space.sample(optuna.trial.FixedTrial(space.default_params()), epochs=2)
    assert space.params_for(cfg) == space.default_params()
    # no default for the block: whichever is sampled runs its options' defaults
    assert parse_space(text % "").default_params() == {"residual.preact": True, "optimizer": "adam"}


def test_airbench_defaults_are_the_published_recipe():
    space = load_space("airbench")
    cfg = space.sample(optuna.trial.FixedTrial(space.default_params()), epochs=10)
    assert cfg.arch.stage_widths() == [64, 256, 256] and cfg.arch.stem == "whiten" and cfg.arch.head == "gmp"
    assert cfg.arch.activation == "gelu" and cfg.arch.block_options["bn_scale"] is False
    t = cfg.train
    assert (t.batch_size, t.momentum, t.label_smoothing, t.warmup_fraction) == (1024, 0.85, 0.2, 0.23)
    assert t.learning_rate == 1.5 and t.lookahead and t.augment == "altflip_crop2"
