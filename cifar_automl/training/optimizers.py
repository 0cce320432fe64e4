"""Optimizers and learning-rate schedules, each a small function in a registry keyed by its config name.

`make_optimizer(train_cfg, steps_per_epoch)` lays the schedule out over `train_cfg.epochs` epochs, so a
longer retrain stretches it. Adding an optimizer or a schedule is one decorated function here; search
spaces may then name it (`train.optimizer`, `train.lr_schedule`).
"""

from __future__ import annotations

from typing import Any, Callable

import keras

from ..config import TrainConfig

OptimizerFn = Callable[[Any, TrainConfig, dict[str, Any]], keras.optimizers.Optimizer]
ScheduleFn = Callable[[TrainConfig, int], Any]
OPTIMIZERS: dict[str, OptimizerFn] = {}
SCHEDULES: dict[str, ScheduleFn] = {}


def register_optimizer(name: str) -> Callable[[OptimizerFn], OptimizerFn]:
    """Register `fn(learning_rate_or_schedule, train_cfg, ema_kwargs) -> keras optimizer`."""

    def deco(fn: OptimizerFn) -> OptimizerFn:
        OPTIMIZERS[name] = fn
        return fn

    return deco


def register_schedule(name: str) -> Callable[[ScheduleFn], ScheduleFn]:
    """Register `fn(train_cfg, total_steps) -> a learning rate or a Keras schedule`."""

    def deco(fn: ScheduleFn) -> ScheduleFn:
        SCHEDULES[name] = fn
        return fn

    return deco


@register_schedule("constant")
def constant(cfg: TrainConfig, total: int) -> Any:
    return cfg.learning_rate


@register_schedule("cosine")
def cosine(cfg: TrainConfig, total: int) -> Any:
    return keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=total, alpha=cfg.final_lr_fraction)


@register_schedule("onecycle")
def onecycle(cfg: TrainConfig, total: int) -> Any:
    """Linear warm-up from `warmup_start` x the peak over `warmup_fraction` of the steps, then cosine."""
    warmup = min(total - 1, max(1, int(round(cfg.warmup_fraction * total))))
    return keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate * cfg.warmup_start, decay_steps=total - warmup, alpha=cfg.final_lr_fraction,
        warmup_target=cfg.learning_rate, warmup_steps=warmup,
    )


@register_optimizer("adam")
def adam(lr: Any, cfg: TrainConfig, ema: dict[str, Any]) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(lr, weight_decay=cfg.weight_decay or None, **ema)


@register_optimizer("adamw")
def adamw(lr: Any, cfg: TrainConfig, ema: dict[str, Any]) -> keras.optimizers.Optimizer:
    return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay, **ema)


@register_optimizer("sgd")
def sgd(lr: Any, cfg: TrainConfig, ema: dict[str, Any]) -> keras.optimizers.Optimizer:
    """SGD with Nesterov momentum (`momentum`), decoupled weight decay."""
    return keras.optimizers.SGD(lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay or None, **ema)


@register_optimizer("rmsprop")
def rmsprop(lr: Any, cfg: TrainConfig, ema: dict[str, Any]) -> keras.optimizers.Optimizer:
    return keras.optimizers.RMSprop(lr, weight_decay=cfg.weight_decay or None, **ema)


def make_schedule(cfg: TrainConfig, steps_per_epoch: int) -> Any:
    """The learning rate (a Keras schedule, or a constant) over `cfg.epochs` epochs of `steps_per_epoch`
    (or `cfg.steps` steps)."""
    if cfg.lr_schedule not in SCHEDULES:
        raise ValueError(f"unknown lr_schedule '{cfg.lr_schedule}'")
    return SCHEDULES[cfg.lr_schedule](cfg, cfg.total_steps(steps_per_epoch))


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer with its learning-rate schedule over `cfg.epochs` epochs of `steps_per_epoch` (or
    `cfg.steps` steps, when the last epoch is cut short)."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{cfg.optimizer}'")
    lr = make_schedule(cfg, steps_per_epoch)
    # weight averaging: Keras' own EMA of the weights, copied into the model after every epoch (so each
    # epoch's validation scores the averaged weights, as the final model will be); fit() then re-estimates
    # the batch-norm statistics for them (callbacks.BatchNormRecalibration)
    ema: dict[str, Any] = {}
    if cfg.weight_averaging:
        ema = dict(use_ema=True, ema_momentum=cfg.weight_averaging, ema_overwrite_frequency=steps_per_epoch)
    return OPTIMIZERS[cfg.optimizer](lr, cfg, ema)
