"""Typed, JSON-serialisable configs: what a trial sampled, from which its model and training are rebuilt.

A trial's `TrialConfig` is stored as a user attribute of the trial and saved next to every model, so
`build_model(config.arch, ...)` and `fit(..., config.train, ...)` reproduce it without the search space.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable

CONFIG_VERSION = 1


def option(default: Any, help: str, *, type: Callable[[str], Any] | None = None,
           choices: Callable[[], Any] | None = None, metavar: str | None = None, group: str | None = None,
           flag: str | None = None, cli: bool = True, const: Any = None) -> Any:
    """A field of a settings class (`SearchSettings`, `RetrainSettings`, ...) together with its command-line
    flag, so that the flag is declared once, beside the field (`cli.add_settings_args` reads it).

    The flag is `--field-name` unless `flag` says otherwise; a boolean field whose default is False
    becomes a switch. `choices` is called when the parser is built (registries can grow until then);
    `cli=False` keeps the field out of the command line; with `const`, the flag's value may be left
    out and is then `const` (`--pareto` alone is `--pareto 5`).
    """
    meta = {"help": help, "type": type, "choices": choices, "metavar": metavar, "group": group, "flag": flag,
            "cli": cli, "const": const}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class ArchConfig:
    """Network shape: stem, `stages` stages of `blocks_per_stage` blocks each, then a head."""

    block: str = "plain"  # key in models.BLOCKS
    stages: int = 3
    blocks_per_stage: int = 1
    base_filters: int = 32  # width of stage 1; stage i has base_filters * width_growth**i
    width_growth: float = 2.0
    max_width: int = 0  # cap on any stage's width (as VGG caps at 512); 0 = no cap
    stem: str = "conv"  # conv (k x k, batch norm, activation) | whiten (airbench: see models.build.whitening_kernel)
    stem_filters: int = 0  # width of the stem conv; 0 = the width of stage 1 (a whitening stem has its own)
    pool_first_stage: bool = False  # downsample in stage 1 too (airbench); else stage 1 keeps the input size
    kernel_size: int = 3
    activation: str = "relu"
    batch_norm: bool = True
    conv_dropout: float = 0.0  # spatial dropout after each stage
    pooling: str = "max"  # downsampling between stages for plain/inception: max | avg
    head: str = "gap"  # gap (global average pooling) | gmp (global max pooling) | flatten
    dense_units: int = 0  # 0 = no hidden dense layer in the head
    dense_dropout: float = 0.0
    logit_scale: float = 1.0  # logits are multiplied by this before the softmax (airbench: 1/9)
    block_options: dict[str, Any] = field(default_factory=dict)  # block-specific choices

    def stage_widths(self) -> list[int]:
        """Channel width of each stage, rounded to a multiple of 8 (friendly to vector units), capped."""
        widths = [_round8(self.base_filters * self.width_growth**i) for i in range(self.stages)]
        return [min(w, self.max_width) for w in widths] if self.max_width > 0 else widths


@dataclass(frozen=True)
class TrainConfig:
    """How a network is trained: optimizer, schedule, batch size, augmentation."""

    optimizer: str = "adam"  # adam | adamw | sgd (nesterov momentum) | rmsprop
    learning_rate: float = 1e-3  # peak learning rate
    weight_decay: float = 0.0  # decoupled for adamw/sgd, L2-like for the others (Keras semantics)
    momentum: float = 0.9  # sgd only
    batch_size: int = 128
    epochs: int = 10
    lr_schedule: str = "cosine"  # constant | cosine | onecycle (warmup then cosine)
    warmup_fraction: float = 0.2  # onecycle only: share of all steps spent warming up linearly
    warmup_start: float = 0.1  # onecycle only: the first step's rate, as a fraction of the peak
    final_lr_fraction: float = 0.0  # cosine/onecycle: the last step's rate, as a fraction of the peak
    label_smoothing: float = 0.0
    weight_averaging: float = 0.0  # EMA momentum of the weights (e.g. 0.99); 0 = off
    lookahead: bool = False  # airbench's lookahead: every 5 steps the weights move to a slow average of them
    augment: str = "flip_shift"  # none | flip | flip_shift | altflip_crop2 | ... (see training.augment)
    # the schedule's length in training steps when it is not whole epochs: training stops at this step,
    # cutting the last of `epochs` short (a retrain sized to the time left); None = epochs x steps per epoch
    steps: int | None = None

    def total_steps(self, steps_per_epoch: int) -> int:
        """Training steps of the whole schedule."""
        whole = max(1, self.epochs * steps_per_epoch)
        return whole if self.steps is None else max(1, min(self.steps, whole))


@dataclass(frozen=True)
class TrialConfig:
    arch: ArchConfig
    train: TrainConfig
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        return cls(
            arch=_from_fields(ArchConfig, data.get("arch", {})),
            train=_from_fields(TrainConfig, data.get("train", {})),
            version=int(data.get("version", CONFIG_VERSION)),
        )

    @classmethod
    def from_json(cls, text: str) -> TrialConfig:
        return cls.from_dict(json.loads(text))

    def replace_train(self, **changes: Any) -> TrialConfig:
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes))


def _from_fields(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    return cls(**data)


def _round8(x: float) -> int:
    return max(8, int(x / 8.0 + 0.5) * 8)  # half up: 36 -> 40
