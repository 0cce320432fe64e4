import keras_tuner as kt

from cifar_automl.kerastuner import KerasTunerTrial, SpaceHyperModel
from cifar_automl.models import build_model
from cifar_automl.spaces import load_space, parse_space

from .helpers import synthetic_splits

SPLITS = synthetic_splits(n_per_class=16, size=8)


def test_kerastuner_samples_the_space_with_its_conditions():
    space = parse_space("""
arch:
  block: {type: categorical, choices: [plain, residual]}
  stages: {type: int, low: 1, high: 3}
blocks:
  residual:
    preact: {type: categorical, choices: [false, true]}
train:
  optimizer: {type: categorical, choices: [adam, sgd]}
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  momentum: {type: float, low: 0.8, high: 0.95, when: {optimizer: sgd}}
""")
    hp = kt.HyperParameters()
    hp.Fixed("block", "residual")
    hp.Fixed("optimizer", "adam")
    cfg = space.sample(KerasTunerTrial(hp), epochs=4)
    assert cfg.arch.block == "residual" and "preact" in cfg.arch.block_options
    assert 1 <= cfg.arch.stages <= 3 and 1e-4 <= cfg.train.learning_rate <= 1e-1
    assert "momentum" not in hp.values and "plain.convs" not in hp.values  # not sampled: conditions false
    lr = next(p for p in hp.space if p.name == "learning_rate")
    assert lr.sampling == "log"


def test_kerastuner_starts_from_the_space_defaults():
    space = load_space("airbench")
    hypermodel = SpaceHyperModel(space, SPLITS, epochs=3)
    hp = kt.HyperParameters()  # as in the build that registers the space: no value set yet
    cfg = hypermodel.config(hp)
    assert hp.values == space.default_params()
    assert (cfg.arch.base_filters, cfg.train.learning_rate, cfg.train.batch_size) == (64, 1.5, 1024)
    lr = next(p for p in hp.space if p.name == "learning_rate")
    assert lr.default == 1.5 and lr.sampling == "log"


def test_kerastuner_hyperband_trains_the_space_models(tmp_path):
    space = load_space("tiny")
    hypermodel = SpaceHyperModel(space, SPLITS, epochs=3)
    tuner = kt.Hyperband(hypermodel, objective="val_accuracy", max_epochs=3, factor=3, seed=0,
                         directory=str(tmp_path), project_name="tiny", max_consecutive_failed_trials=1)
    tuner.search(SPLITS.x_train, SPLITS.y_train, validation_data=(SPLITS.x_val, SPLITS.y_val))
    trials = list(tuner.oracle.trials.values())
    assert len(trials) >= 3 and all(t.score is not None for t in trials)
    best_hp = tuner.get_best_hyperparameters(1)[0]
    cfg = hypermodel.config(best_hp)
    same = build_model(cfg.arch, SPLITS.x_train.shape[1:], len(SPLITS.class_names))
    assert tuner.get_best_models(1)[0].count_params() == same.count_params()
