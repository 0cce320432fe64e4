import dataclasses
import importlib
import math
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from cifar_automl.config import ArchConfig, TrainConfig
from cifar_automl.models import build_model
from cifar_automl.training import (
    EpochProgress,
    EpochRecorder,
    Lookahead,
    evaluate,
    fit,
    fit_within,
    make_optimizer,
)
from cifar_automl.training.callbacks import StepTimer, recalibrate_batch_norm
from cifar_automl.training.fit import _resize_points, _segment_seconds
from cifar_automl.training.pipeline import make_dataset

from ..helpers import TIMED, synthetic_splits

fit_module = importlib.import_module("cifar_automl.training.fit")  # the package's `fit` is the function


def test_fit_learns_the_synthetic_task_and_records_every_epoch():
    s = synthetic_splits()
    model = build_model(ArchConfig(block="plain", stages=1, base_filters=8), s.x_train.shape[1:], 3)
    cfg = TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=16, epochs=4, augment="flip")
    result = fit(model, s.x_train, s.y_train, cfg, validation=(s.x_val, s.y_val), seed=0)
    assert result.epochs_run == 4
    assert set(result.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 for v in result.history.values())
    assert all(t > 0 for t in result.epoch_seconds)
    assert all(tr <= ep for tr, ep in zip(result.train_seconds, result.epoch_seconds))
    assert result.images_per_second > 0
    best, epoch = result.best("val_accuracy")
    assert best >= 0.8 and 0 <= epoch < 4  # three colour classes are easy
    assert evaluate(model, s.x_val, s.y_val)["accuracy"] == pytest.approx(result.history["val_accuracy"][-1])


def test_a_schedule_in_steps_cuts_its_last_epoch_short_and_decays_over_those_steps():
    s = synthetic_splits()  # 16-image batches: steps per epoch from the synthetic set's size
    steps = len(s.x_train) // 16
    model = build_model(ArchConfig(block="plain", stages=1, base_filters=8), s.x_train.shape[1:], 3)
    cfg = TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=16, epochs=3, steps=2 * steps + 3,
                      augment="none")
    result = fit(model, s.x_train, s.y_train, cfg, validation=(s.x_val, s.y_val), seed=0)
    assert int(model.optimizer.iterations) == 2 * steps + 3  # stopped 3 steps into the third epoch
    assert result.epochs_run == 3 and len(result.history["val_accuracy"]) == 3  # which still validated
    sched = make_optimizer(cfg, steps)._learning_rate
    assert float(sched(2 * steps + 3)) == pytest.approx(0.0, abs=1e-7)  # the schedule ends with training
    assert float(sched(steps)) > 0.004
    assert TrainConfig(epochs=3, steps=10**6).total_steps(steps) == 3 * steps  # never past its epochs
    resumed = build_model(ArchConfig(block="plain", stages=1, base_filters=8), s.x_train.shape[1:], 3)
    fit(resumed, s.x_train, s.y_train, cfg, seed=0, initial_epoch=1)  # as KerasTuner resumes a model
    assert int(resumed.optimizer.iterations) == 2 * steps + 3  # the same last step, counted from epoch 1


def test_recorder_flags_a_nan_loss_and_stops_training():
    rec = EpochRecorder(train_images=10)
    rec.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    rec.on_epoch_begin(0)
    rec.on_epoch_end(0, {"loss": 1.0})
    rec.on_epoch_begin(1)
    rec.on_epoch_end(1, {"loss": float("nan")})
    assert rec.result.nan_epoch == 1 and rec.model.stop_training
    assert math.isnan(rec.result.history["loss"][1])


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle"])
def test_optimizers_and_schedules(optimizer, schedule):
    cfg = TrainConfig(optimizer=optimizer, lr_schedule=schedule, learning_rate=0.1, epochs=10,
                      weight_decay=1e-4)
    opt = make_optimizer(cfg, steps_per_epoch=10)
    lr = opt.learning_rate if schedule == "constant" else None
    if schedule == "cosine":
        sched = opt._learning_rate
        assert float(sched(0)) == pytest.approx(0.1) and float(sched(100)) == pytest.approx(0.0, abs=1e-6)
    if schedule == "onecycle":
        sched = opt._learning_rate
        assert float(sched(0)) == pytest.approx(0.01)  # starts at a tenth of the peak
        assert float(sched(20)) == pytest.approx(0.1)  # peak after the warm-up (20% of 100 steps)
        assert float(sched(100)) == pytest.approx(0.0, abs=1e-6)
    if lr is not None:
        assert float(lr) == pytest.approx(0.1)
    if optimizer == "sgd":
        assert opt.nesterov and opt.momentum == pytest.approx(0.9)


def test_onecycle_start_and_end_rates():
    cfg = TrainConfig(optimizer="sgd", lr_schedule="onecycle", learning_rate=1.5, epochs=10, warmup_fraction=0.2,
                      warmup_start=0.2, final_lr_fraction=0.07)
    sched = make_optimizer(cfg, steps_per_epoch=10)._learning_rate
    assert float(sched(0)) == pytest.approx(0.3) and float(sched(20)) == pytest.approx(1.5)
    assert float(sched(100)) == pytest.approx(0.105, rel=1e-4)


def test_lookahead_pulls_weights_to_their_slow_average_and_ends_on_it():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    la = Lookahead(total_steps=10, every=2, max_decay=0.5, start=0.3)
    la.set_model(model)
    la.on_train_begin()
    kernel = model.layers[0].kernel
    start = kernel.numpy().copy()
    for step in range(3):  # steps 1-3: before the start, nothing happens
        kernel.assign(kernel.numpy() + 1.0)
        la.on_train_batch_end(step)
    np.testing.assert_allclose(kernel.numpy(), start + 3.0)
    la.on_epoch_end(0)  # not started yet: the weights stay
    np.testing.assert_allclose(kernel.numpy(), start + 3.0)
    kernel.assign(start + 4.0)
    la.on_train_batch_end(3)  # step 4: the slow copy starts from the weights
    np.testing.assert_allclose(la.slow[0].numpy(), start + 4.0)
    kernel.assign(start + 5.0)
    la.on_train_batch_end(4)  # step 5: not a lookahead step
    np.testing.assert_allclose(kernel.numpy(), start + 5.0)
    kernel.assign(start + 6.0)
    la.on_train_batch_end(5)  # step 6: decay 0.5 * (6/10)**3 = 0.108 towards 6
    np.testing.assert_allclose(kernel.numpy(), start + 4.0 + 2.0 * (1 - 0.108), rtol=1e-6)
    slow = la.slow[0].numpy()
    kernel.assign(slow + 1.0)
    la.on_train_batch_end(6)  # step 7: not a lookahead step, but the epoch ends: back to the slow copy
    la.on_epoch_end(1)
    np.testing.assert_allclose(kernel.numpy(), slow, rtol=1e-6)
    for step in range(7, 9):
        kernel.assign(kernel.numpy() + 1.0)
        la.on_train_batch_end(step)
    slow = la.slow[0].numpy()
    kernel.assign(slow + 5.0)
    la.on_train_batch_end(9)  # the last step: the weights become the slow average
    np.testing.assert_allclose(kernel.numpy(), slow, rtol=1e-6)


def test_lookahead_trains_through_fit():
    s = synthetic_splits()
    cfg = TrainConfig(optimizer="sgd", learning_rate=0.05, batch_size=16, epochs=3, augment="altflip_crop2",
                      lookahead=True)
    model = build_model(ArchConfig(block="plain", stages=1, base_filters=8), s.x_train.shape[1:], 3)
    result = fit(model, s.x_train, s.y_train, cfg, validation=(s.x_val, s.y_val))
    assert result.epochs_run == 3 and result.history["val_accuracy"][-1] > 0.6


def test_unknown_optimizer_is_an_error():
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer(TrainConfig(optimizer="lion"), 10)


def test_weight_averaging_validates_and_keeps_the_averaged_weights():
    """EMA weights are copied into the model after every epoch and at the end, so the final weights are
    the average the last validation scored, not the raw ones."""
    s = synthetic_splits()
    cfg = TrainConfig(optimizer="sgd", learning_rate=0.05, batch_size=16, epochs=2, augment="none",
                      weight_averaging=0.9)
    opt = make_optimizer(cfg, steps_per_epoch=5)
    assert opt.use_ema and opt.ema_momentum == pytest.approx(0.9) and opt.ema_overwrite_frequency == 5
    assert not make_optimizer(TrainConfig(), 5).use_ema
    model = build_model(ArchConfig(block="plain", stages=1, base_filters=8, batch_norm=False),
                        s.x_train.shape[1:], 3)
    result = fit(model, s.x_train, s.y_train, cfg, validation=(s.x_val, s.y_val))
    ema = {v.path: v.numpy() for v in model.optimizer._model_variables_moving_average}
    for w in model.trainable_weights:  # after fit, the model holds the moving averages
        assert (abs(w.numpy() - ema[w.path]).max() if w.path in ema else 0) < 1e-6
    assert evaluate(model, s.x_val, s.y_val)["accuracy"] == pytest.approx(result.history["val_accuracy"][-1])


def test_weight_averaging_re_estimates_batch_norm_statistics_for_the_averaged_weights():
    """Keras' EMA averages trainable weights only; fit() must recompute the batch-norm moving statistics
    for the averaged network, else it evaluates with statistics of weights it no longer has."""
    s = synthetic_splits()
    n = 64  # two equal batches of 32: the mean of the batch means is the mean over all images
    cfg = TrainConfig(optimizer="sgd", learning_rate=0.1, batch_size=32, epochs=3, augment="none",
                      weight_averaging=0.9)
    model = build_model(ArchConfig(block="plain", stages=1, base_filters=8), s.x_train.shape[1:], 3)
    fit(model, s.x_train[:n], s.y_train[:n], cfg)
    bn = model.get_layer("stem_bn")  # later layers' inputs depend on how the batches were drawn
    before = bn.moving_mean.numpy()
    recalibrate_batch_norm(model, make_dataset(s.x_train[:n], s.y_train[:n], 3, 32, training=True), 2)
    np.testing.assert_allclose(bn.moving_mean.numpy(), before, rtol=1e-4, atol=1e-4)
    assert bn.momentum == pytest.approx(0.9)  # restored


def test_recalibration_averages_batch_statistics():
    model = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(momentum=0.5)])
    batches = [np.array([[0.0, 1.0], [2.0, 3.0]], "float32"), np.array([[4.0, 5.0], [6.0, 7.0]], "float32")]
    data = tf.data.Dataset.from_tensor_slices((np.stack(batches), np.zeros((2, 2), "float32")))
    recalibrate_batch_norm(model, data, 2)
    bn = model.layers[0]
    np.testing.assert_allclose(bn.moving_mean.numpy(), [3.0, 4.0])
    np.testing.assert_allclose(bn.moving_variance.numpy(), [1.0, 1.0])  # each batch's variance is 1


def _plain(s):
    return build_model(ArchConfig(block="plain", stages=1, base_filters=8), s.x_train.shape[1:], 3)


def test_resuming_without_recompiling_trains_on_the_new_schedule_with_the_same_optimizer():
    s = synthetic_splits()
    model = _plain(s)
    still = TrainConfig(optimizer="sgd", learning_rate=0.0, momentum=0.0, batch_size=16, epochs=2,
                        lr_schedule="cosine", augment="none")
    fit(model, s.x_train, s.y_train, still, stop_epoch=1)
    optimizer, before = model.optimizer, [w.copy() for w in model.get_weights()]
    moving = dataclasses.replace(still, learning_rate=0.1)
    fit(model, s.x_train, s.y_train, moving, initial_epoch=1, recompile=False)
    assert model.optimizer is optimizer  # the same optimizer went on
    assert int(optimizer.iterations) == 2 * (len(s.x_train) // 16)
    # the compiled step was traced again: a step holding the old schedule (rate 0) would not move them
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


def _starts(monkeypatch) -> list[int]:
    """The epoch each call of `fit` that `fit_within` makes starts at."""
    starts, real = [], fit_module.fit

    def counted(*args, initial_epoch=0, **kwargs):
        starts.append(initial_epoch)
        return real(*args, initial_epoch=initial_epoch, **kwargs)

    monkeypatch.setattr(fit_module, "fit", counted)
    return starts


@pytest.mark.parametrize("seconds, max_epochs, expected", [
    (1e6, 7, "cap"),  # time for far more: the cap
    (0.0, None, "one step"),  # no time left after the first epoch: one more step ends the schedule
])
def test_fit_within_re_sizes_the_schedule_after_its_first_epoch(monkeypatch, seconds, max_epochs, expected):
    s = synthetic_splits()
    steps = len(s.x_train) // 16
    cfg = TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=16, epochs=4, lr_schedule="onecycle",
                      augment="none")
    model = _plain(s)
    cap = None if max_epochs is None else max_epochs * steps + 3
    bar, spy = EpochProgress(cfg.epochs), _Spy()
    starts = _starts(monkeypatch)
    result, trained = fit_within(model, s.x_train, s.y_train, cfg, seconds, max_steps=cap, callbacks=[bar, spy])
    assert bar.bar.n == bar.bar.total == trained.epochs  # one bar over every call of fit, re-sized
    assert bar.bar.disable or bar.bar.last_print_n == trained.epochs  # closed once, at the end
    # the cap's 8 epochs are re-sized after epoch 1 and at half of them (three quarters, epoch 6, is too
    # close to the half to be timed, nine tenths too close to the end); 2 epochs are re-sized once
    assert starts == ([0, 1, 4] if expected == "cap" else [0, 1])
    assert [epoch for epoch, _ in result.resizes] == starts[1:]  # the record lists them
    assert result.resizes[-1][1] == trained.total_steps(steps)
    assert spy.begins == spy.ends == 1  # the calls of fit are one run to the callbacks
    assert spy.epochs == list(range(trained.epochs))
    total = cap if expected == "cap" else steps + 1
    assert int(model.optimizer.iterations) == total
    assert trained.total_steps(steps) == total and trained.epochs == math.ceil(total / steps)
    assert result.epochs_run == trained.epochs  # one record over every call
    assert trained.steps == total  # the last epoch cut short
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-2 * cfg.final_lr_fraction, rel=0.05)


def test_a_short_schedule_is_re_sized_at_its_one_epoch_end_and_one_of_an_epoch_is_not(monkeypatch):
    """A retrain of 1.6 epochs of 13 minutes planned with a cautious first estimate: its only epoch end
    is where the re-size can give it the time left."""
    s = synthetic_splits()
    steps = len(s.x_train) // 16
    cfg = TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=16, epochs=2, steps=steps + steps // 2,
                      augment="none")
    starts = _starts(monkeypatch)
    result, trained = fit_within(_plain(s), s.x_train, s.y_train, cfg, 1e6, max_steps=3 * steps)
    assert starts == [0, 1] and result.resizes == [(1, 3 * steps)]
    assert trained.total_steps(steps) == 3 * steps and result.epochs_run == 3
    starts.clear()
    one = dataclasses.replace(cfg, epochs=1, steps=None)
    result, trained = fit_within(_plain(s), s.x_train, s.y_train, one, 1e6, max_steps=3 * steps)
    assert starts == [0] and result.resizes == [] and trained == one


class _Spy(keras.callbacks.Callback):
    """Counts the run's beginnings and ends and records its epochs; stops training after epoch `stop_after`."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__()
        self.begins, self.ends, self.epochs, self.stop_after = 0, 0, [], stop_after

    def on_train_begin(self, logs=None):
        self.begins += 1

    def on_train_end(self, logs=None):
        self.ends += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        if epoch == self.stop_after:
            self.model.stop_training = True


def test_early_stopping_sees_one_run_across_the_re_sizes():
    s = synthetic_splits()
    steps = len(s.x_train) // 16
    cfg = TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=16, epochs=4, augment="none")
    model = _plain(s)
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=100,
                                            restore_best_weights=True)
    result, trained = fit_within(model, s.x_train, s.y_train, cfg, 1e6, max_steps=8 * steps,
                                 validation=(s.x_val, s.y_val), callbacks=[stopper])
    assert trained.epochs == result.epochs_run == 8
    # its best is the whole run's, and the weights it restored at the end score it (each call of fit
    # would have started it afresh, and restored the best of the last call's epochs in the middle)
    assert stopper.best == max(result.history["val_accuracy"])
    assert evaluate(model, s.x_val, s.y_val)["accuracy"] == pytest.approx(stopper.best, abs=1e-6)


def test_a_run_stopped_after_a_re_size_returns_the_schedule_it_followed():
    s = synthetic_splits()
    steps = len(s.x_train) // 16
    cfg = TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=16, epochs=4, augment="none")
    spy = _Spy(stop_after=5)  # in the call of fit after the re-size at half of 8 epochs
    result, trained = fit_within(_plain(s), s.x_train, s.y_train, cfg, 1e6, max_steps=8 * steps, callbacks=[spy])
    assert result.epochs_run == 6 and spy.ends == 1
    assert trained.epochs == 8 and trained.total_steps(steps) == 8 * steps  # the schedule, not the stop


class _Sleep(keras.callbacks.Callback):
    """Until epoch `until`, every step takes `seconds` longer (a machine busy with other work at first)."""

    def __init__(self, until: int, seconds: float) -> None:
        super().__init__()
        self.until, self.seconds, self.epoch = until, seconds, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch < self.until:
            time.sleep(self.seconds)


def _on_a_clock(monkeypatch, epoch_seconds, trace: float = 0.0) -> list[float]:
    """`fit_within` on a clock of its own: its `fit` trains nothing, and epoch e takes `epoch_seconds(e)`
    (a cut last epoch its share), the first epoch of each call of fit `trace` seconds more (tracing the
    step), which the step timer leaves out. Returns the clock."""
    now = [0.0]
    monkeypatch.setattr(fit_module, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))

    def clocked(model, x, y, cfg, *, recorder, initial_epoch=0, stop_epoch=None, callbacks=(), **kwargs):
        steps = len(x) // cfg.batch_size
        for timer in (c for c in callbacks if isinstance(c, StepTimer)):  # its steady steps
            timer.times = list(np.arange(steps + 1) * epoch_seconds(initial_epoch) / steps)
        for epoch in range(initial_epoch, stop_epoch or cfg.epochs):
            took = epoch_seconds(epoch) * min(1.0, (cfg.total_steps(steps) - epoch * steps) / steps)
            took += trace if epoch == initial_epoch else 0.0
            now[0] += took
            recorder.result.epoch_seconds.append(took)
            recorder.result.train_seconds.append(took)
        return recorder.result

    monkeypatch.setattr(fit_module, "fit", clocked)
    return now


def test_the_test_pass_after_training_keeps_its_time_when_the_machine_slows_down(monkeypatch):
    """A retrain planned at 10 s an epoch, with 5 s for its test pass, on a machine whose epochs take
    15 s from the second on: the test will take 7.5 s. Kept as 5 s, it would be left 5.9 s; scaled with
    the epochs' speed at each re-size, it is left what it takes."""
    x, y = np.zeros((1600, 1)), np.zeros((1600, 1))  # 100 steps an epoch
    cfg = TrainConfig(batch_size=16, epochs=10, augment="none")
    model = types.SimpleNamespace(stop_training=False)

    def slower(epoch):
        return 10.0 if epoch == 0 else 15.0

    monkeypatch.setattr(fit_module, "LONG_EPOCH_TRACE_SHARE", 0.0)  # re-sizes three epochs apart
    clock = _on_a_clock(monkeypatch, slower)
    result, trained = fit_within(model, x, y, cfg, 105.0, after=5.0)
    assert [epoch for epoch, _ in result.resizes] == [1, 5]
    assert 105.0 - clock[0] >= 0.5 * 15.0  # the test's time at the speed measured
    assert 105.0 - clock[0] < 0.6 * 15.0  # and less than a tenth of an epoch more (the steps' margin)
    as_seconds = _on_a_clock(monkeypatch, slower)
    fit_within(model, x, y, cfg, 100.0)  # the 5 s kept aside, unscaled
    assert 105.0 - as_seconds[0] < 0.5 * 15.0


@pytest.mark.parametrize("done, epochs, used, expected", [
    (1, 40, 0, [(1, 20), (2, 30), (3, 36)]),
    (20, 44, 1, [(2, 33), (3, 40)]),  # the half is behind: three quarters and nine tenths of the new length
    (1, 8, 0, [(1, 4)]),  # 6 is too close to 4 to be timed, 7 too close to the end
    (1, 6, 0, [(2, 4)]),  # 3 is too close to the first re-size
    (1, 4, 0, []),
    (36, 40, 3, []),
])
def test_later_re_sizes_are_at_shares_of_the_schedule_three_epochs_apart(done, epochs, used, expected):
    assert _resize_points(done, epochs, used) == expected


@pytest.mark.parametrize("seconds, trace, expected", [
    ([12.0, 10.0, 11.0], 2.0, 10.5),  # three or more: the first (which traced) left out
    ([10.1], 0.1, 10.0),  # one (long epochs, re-sized after each): less its trace
    ([10.1, 10.4], 0.1, 10.2),
])
def test_an_epoch_is_timed_without_the_trace_its_segment_paid(seconds, trace, expected):
    assert _segment_seconds(seconds, trace) == pytest.approx(expected)


@pytest.mark.parametrize("long_epochs", [True, False])
def test_long_epochs_that_slow_down_late_are_followed_to_the_end(monkeypatch, long_epochs):
    """A 2-hour retrain's shape, scaled down: epochs of 10 s whose step is traced in 0.1 s, slowing by 12%
    from epoch 6 on, in 77 s (7.7 epochs at the first speed). Re-sized after every epoch, the schedule
    ends within a second of the time; at shares of it three epochs apart (after 1 and 4 only, as
    epochs with a costly trace are), it ends past it."""
    if not long_epochs:
        monkeypatch.setattr(fit_module, "LONG_EPOCH_TRACE_SHARE", 0.0)
    x, y = np.zeros((1600, 1)), np.zeros((1600, 1))  # 100 steps an epoch
    cfg = TrainConfig(batch_size=16, epochs=10, augment="none")
    model = types.SimpleNamespace(stop_training=False)
    clock = _on_a_clock(monkeypatch, lambda epoch: 10.0 if epoch < 5 else 11.2, trace=0.1)
    result, trained = fit_within(model, x, y, cfg, 77.0)
    if long_epochs:
        assert [epoch for epoch, _ in result.resizes] == list(range(1, trained.epochs))
        assert 76.0 <= clock[0] <= 77.0
    else:
        assert [epoch for epoch, _ in result.resizes] == [1, 4]
        assert clock[0] > 77.5


@TIMED
def test_fit_within_follows_steps_that_speed_up_mid_run(monkeypatch):
    monkeypatch.setattr(fit_module, "RESIZE_TRACE_SHARE", 1.0)  # re-size again however short the run
    s = synthetic_splits()
    cfg = TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=16, epochs=4, augment="none")
    fit(_plain(s), s.x_train, s.y_train, cfg)  # warm the machine up
    traced = fit(_plain(s), s.x_train, s.y_train, dataclasses.replace(cfg, epochs=1)).epoch_seconds[0]
    # the first 3 epochs' steps take 40 ms more, then they speed up several times: a schedule sized only on
    # the first epoch would end far too soon. The time holds the re-sizes' traces and 6 s of steps.
    seconds = 4 * traced + 6.0
    # two tries: the other test worker's load can change in the middle of a run of 0.05-s epochs, which
    # then end sooner or later than the re-sized plan; a schedule sized only on the first epoch misses
    # the time in every try
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        _, trained = fit_within(_plain(s), s.x_train, s.y_train, cfg, seconds, callbacks=[_Sleep(3, 0.04)])
        runs.append((time.perf_counter() - start, trained.epochs))
        if seconds * 0.7 <= runs[-1][0] <= seconds * 1.3:
            break
    took, epochs = runs[-1]
    assert seconds * 0.7 <= took <= seconds * 1.3, (runs, seconds)
    assert epochs > 3


@TIMED  # on the clock: not beside the speed-up test, whose many short epochs keep a core busy
def test_fit_within_fills_the_time_it_is_given():
    s = synthetic_splits()
    cfg = TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=16, epochs=4, augment="none")
    fit(_plain(s), s.x_train, s.y_train, cfg)  # warm the machine up
    timed = fit(_plain(s), s.x_train, s.y_train, dataclasses.replace(cfg, epochs=3)).epoch_seconds
    # ~40 steady epochs' worth, and the first epoch's tracing three times (twice in fit_within, and once
    # more as slack: a first epoch right after other tests can be slower): the schedule of 4 grows tenfold
    seconds = 3 * timed[0] + 40 * float(np.median(timed[1:]))
    start = time.perf_counter()
    _, trained = fit_within(_plain(s), s.x_train, s.y_train, cfg, seconds)
    took = time.perf_counter() - start
    assert trained.epochs >= 20
    assert took <= seconds * 1.3  # generous: other work on the machine slows steps down
