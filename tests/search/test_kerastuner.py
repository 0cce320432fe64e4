import keras_tuner as kt

from cifar_automl.models import build_model
from cifar_automl.search.kerastuner import KerasTunerTrial, SpaceHyperModel
from cifar_automl.search.space import load_space, parse_space

from ..helpers import synthetic_splits

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
    assert hp.values == {  # airbench94's published recipe, as the space's defaults
        "base_filters": 64, "activation": "gelu", "learning_rate": 1.5, "momentum": 0.85, "weight_decay": 0.0089,
        "batch_size": 1024, "warmup_fraction": 0.23, "label_smoothing": 0.2}
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


def _recording(monkeypatch, module, record):
    """Spy on `module.fit` (training.fit as that module calls it): the learning rate of every step and
    the labels of every training batch, per epoch."""
    import importlib

    import keras
    import numpy as np

    from cifar_automl.training.pipeline import take

    fit_module = importlib.import_module("cifar_automl.training.fit")  # the module (the package exports the function)

    # the functions themselves, not a spy installed by an earlier call
    real_fit = getattr(module.fit, "original", module.fit)
    real_dataset = getattr(fit_module.make_dataset, "original", fit_module.make_dataset)

    class LearningRates(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            record["lr"].append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def dataset(*args, **kwargs):
        ds = real_dataset(*args, **kwargs)
        if kwargs.get("training"):
            steps = max(1, len(args[0]) // args[3])
            batches = [np.argmax(np.asarray(y), axis=1).tolist() for _, y in take(ds, steps * 2)]
            record["epochs"] = [batches[:steps], batches[steps:]]
        return ds

    def fit(model, x, y, cfg, **kwargs):
        record["cfg"] = cfg
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), LearningRates()]
        return real_fit(model, x, y, cfg, **kwargs)

    fit.original, dataset.original = real_fit, real_dataset
    monkeypatch.setattr(module, "fit", fit)
    monkeypatch.setattr(fit_module, "make_dataset", dataset)


def test_kerastuner_trains_as_a_search_trial_and_resumes_where_it_would_be(monkeypatch):
    """A KerasTuner trial is trained by training.fit like a search trial: the same schedule step by step
    and the same batches; a model Hyperband resumes at epoch 2 gets epoch 2's learning rates and
    batches, not the first epoch's again."""
    import optuna

    from cifar_automl.search import kerastuner as kt_module
    from cifar_automl.search import objective as objective_module
    from cifar_automl.search.objective import Objective

    space, splits = load_space("tiny"), synthetic_splits(n_per_class=40, size=8)  # 3 steps of 32 per epoch
    params = {"block": "plain", "stages": 1, "batch_norm": True, "dense_dropout": 0.0, "optimizer": "sgd",
              "learning_rate": 0.05, "momentum": 0.9, "augment": "none"}
    trial_run: dict = {"lr": []}
    _recording(monkeypatch, objective_module, trial_run)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    study.enqueue_trial(params)
    study.optimize(Objective(space, splits, epochs=2, seed=0), n_trials=1)
    steps = len(trial_run["lr"]) // 2
    assert steps >= 2 and len(set(trial_run["lr"])) > steps  # a schedule that moves every step

    hypermodel = SpaceHyperModel(space, splits, epochs=2, seed=0)
    hp = kt.HyperParameters()
    hypermodel.build(hp)  # registers the space
    hp.values.update(params)
    tuner_run: dict = {"lr": []}
    _recording(monkeypatch, kt_module, tuner_run)
    data = (splits.x_train, splits.y_train)
    hypermodel.fit(hp, hypermodel.build(hp), *data, validation_data=(splits.x_val, splits.y_val), epochs=2)
    assert tuner_run["cfg"] == trial_run["cfg"]
    assert tuner_run["lr"] == trial_run["lr"] and tuner_run["epochs"] == trial_run["epochs"]

    resumed: dict = {"lr": []}
    _recording(monkeypatch, kt_module, resumed)
    hypermodel.fit(hp, hypermodel.build(hp), *data, validation_data=(splits.x_val, splits.y_val), epochs=2,
                   initial_epoch=1)
    assert resumed["lr"] == trial_run["lr"][steps:]
    assert resumed["epochs"][0] == trial_run["epochs"][1]
