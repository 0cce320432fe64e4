"""Textbook reference CNNs as named presets, each with the recipe it was published or taught with.

`PRESETS[name].build(input_shape, num_classes)` returns a Keras model with the same input contract
as the searched models (raw pixel values 0..255 in, probabilities out: a `Rescaling(1/255)` layer
comes first). `recipe` is the `TrainConfig` it is trained with; presets that a search space can
express also give `as_config()`, used by `search --warm-start baselines`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import keras
from keras import layers

from ..config import ArchConfig, TrainConfig, TrialConfig
from ..errors import UserError
from .blocks import subsample


@dataclass(frozen=True)
class Preset:
    name: str
    build: Callable[[Sequence[int], int], keras.Model]
    recipe: TrainConfig
    description: str
    default_shape: tuple[int, int, int] = (32, 32, 3)
    val_fraction: float = 0.2
    early_stopping_patience: int | None = None  # on val accuracy, restoring the best weights
    as_config: Callable[[], TrialConfig] | None = None
    shape_note: str = "any input size from 32x32 and any class count"


PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


def _start(input_shape: Sequence[int]) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=tuple(int(d) for d in input_shape), name="image")
    return inputs, layers.Rescaling(1.0 / 255, name="rescale")(inputs)


def _head(x, num_classes: int, units: Sequence[int], *, dropout: float = 0.0, l2: float = 0.0,
          flatten: bool = True):
    if flatten:
        x = layers.Flatten(name="flatten")(x)
    reg = keras.regularizers.L2(l2) if l2 else None
    for i, n in enumerate(units):
        x = layers.Dense(n, activation="relu", kernel_regularizer=reg, name=f"dense{i + 1}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dense{i + 1}_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg, name="probs", dtype="float32")(x)


def _conv(x, filters: int, k: int, name: str, padding: str = "valid", bn: bool = False):
    x = layers.Conv2D(filters, k, padding=padding, activation=None if bn else "relu", name=name)(x)
    if bn:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def net1(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    inputs, x = _start(input_shape)
    for i, f in enumerate((32, 64, 64)):
        x = _conv(x, f, 3, f"conv{i + 1}")
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    return keras.Model(inputs, _head(x, num_classes, [512]), name="net1")


def net2(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    inputs, x = _start(input_shape)
    x = _conv(x, 32, 5, "conv1")
    x = _conv(x, 64, 5, "conv2")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv(x, 64, 5, "conv3")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    return keras.Model(inputs, _head(x, num_classes, [512]), name="net2")


def net3(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    inputs, x = _start(input_shape)
    x = _conv(x, 96, 3, "conv1", "same")
    x = _conv(x, 96, 3, "conv2", "same")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Dropout(0.5, name="pool1_dropout")(x)
    x = _conv(x, 128, 3, "conv3", "same")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Dropout(0.5, name="pool2_dropout")(x)
    for i in range(3):
        x = _conv(x, 128, 3, f"conv{4 + i}", "same")
    x = layers.MaxPooling2D(2, name="pool3")(x)
    x = layers.Dropout(0.5, name="pool3_dropout")(x)
    return keras.Model(inputs, _head(x, num_classes, [1024, 512], dropout=0.5, l2=5e-4), name="net3")


def _simple_trunk(input_shape: Sequence[int]):
    inputs, x = _start(input_shape)
    x = _conv(x, 32, 3, "conv1")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Dropout(0.25, name="pool1_dropout")(x)
    x = _conv(x, 64, 3, "conv2")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Dropout(0.25, name="pool2_dropout")(x)
    return inputs, x


def simple_dropout(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    inputs, x = _simple_trunk(input_shape)
    return keras.Model(inputs, _head(x, num_classes, [128]), name="simple_dropout")


def simple_inception(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    inputs, x = _simple_trunk(input_shape)
    branches = [
        layers.Conv2D(64, 1, padding="same", activation="relu", name="incep_1x1")(x),
        layers.Conv2D(128, 3, padding="same", activation="relu", name="incep_3x3")(x),
        layers.Conv2D(32, 5, padding="same", activation="relu", name="incep_5x5")(x),
        layers.MaxPooling2D(3, strides=1, padding="same", name="incep_pool")(x),
    ]
    x = layers.Concatenate(name="incep_concat")(branches)
    return keras.Model(inputs, _head(x, num_classes, [128]), name="simple_inception")


def simple_residual(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    inputs, x = _simple_trunk(input_shape)
    y = layers.Conv2D(64, 3, padding="same", activation="relu", name="res_conv")(x)
    x = layers.Add(name="res_add")([x, y])
    return keras.Model(inputs, _head(x, num_classes, [128]), name="simple_residual")


def _three_block(input_shape: Sequence[int], num_classes: int, bn: bool) -> keras.Model:
    inputs, x = _start(input_shape)
    for i, (f, k) in enumerate(((32, 5), (64, 3), (128, 3))):
        x = _conv(x, f, k, f"conv{i + 1}", "same", bn=bn)
        x = layers.MaxPooling2D(2, padding="same", name=f"pool{i + 1}")(x)
    return keras.Model(inputs, _head(x, num_classes, [128]), name="three_block_bn" if bn else "three_block")


def three_block(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    return _three_block(input_shape, num_classes, bn=False)


def three_block_bn(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    return _three_block(input_shape, num_classes, bn=True)


def vgg_bn_aug(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    inputs, x = _start(input_shape)
    for s, f in enumerate((32, 64, 128, 256)):
        for c in range(2):  # conv - relu - batch norm, as in the popular Keras CIFAR-10 recipe
            x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"block{s + 1}_conv{c + 1}")(x)
            x = layers.BatchNormalization(name=f"block{s + 1}_bn{c + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"block{s + 1}_pool")(x)
        x = layers.Dropout(0.2 + 0.1 * s, name=f"block{s + 1}_dropout")(x)
    return keras.Model(inputs, _head(x, num_classes, []), name="vgg_bn_aug")


def wrn_16_8(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """Wide ResNet 16-8 (Zagoruyko & Komodakis): 3 groups of 2 pre-activation blocks, widths 128/256/512."""
    inputs, x = _start(input_shape)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(x)
    for g, (width, stride) in enumerate(((128, 1), (256, 2), (512, 2))):
        for b in range(2):
            name = f"group{g + 1}_block{b + 1}"
            s = stride if b == 0 else 1
            pre = layers.BatchNormalization(name=f"{name}_bn1")(x)
            pre = layers.Activation("relu", name=f"{name}_relu1")(pre)
            shortcut = x
            if s != 1 or x.shape[-1] != width:
                shortcut = layers.Conv2D(width, 1, use_bias=False, name=f"{name}_proj")(
                    subsample(pre, s, name=name)
                )
            y = layers.Conv2D(width, 3, strides=s, padding="same", use_bias=False, name=f"{name}_conv1")(pre)
            y = layers.BatchNormalization(name=f"{name}_bn2")(y)
            y = layers.Activation("relu", name=f"{name}_relu2")(y)
            y = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
            x = layers.Add(name=f"{name}_add")([shortcut, y])
    x = layers.BatchNormalization(name="final_bn")(x)
    x = layers.Activation("relu", name="final_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x), name="wrn_16_8")


def fmnist_cnn(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    inputs, x = _start(input_shape)
    x = _conv(x, 32, 5, "conv1", "same")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv(x, 64, 3, "conv2", "same")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = _conv(x, 128, 1, "conv3")
    x = layers.Dropout(0.2, name="conv3_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(1024, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.25, name="dense1_dropout")(x)
    x = layers.Dense(32, activation="relu", name="dense2")(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x), name="fmnist_cnn")


def _cfg(arch: ArchConfig, train: TrainConfig, augment: str | None = None) -> Callable[[], TrialConfig]:
    """The preset as a configuration of our own builders, for `search --warm-start baselines`: the
    architecture and optimizer of the recipe with the search's cosine schedule (the search sets the
    epochs)."""
    changes = {"lr_schedule": "cosine", **({"augment": augment} if augment else {})}
    return lambda: TrialConfig(arch=arch, train=dataclasses.replace(train, **changes))


ADAM20 = TrainConfig(optimizer="adam", learning_rate=1e-3, batch_size=128, epochs=20, lr_schedule="constant", augment="none")
RMS30 = TrainConfig(optimizer="rmsprop", learning_rate=1e-3, batch_size=128, epochs=30, lr_schedule="constant", augment="none")
ADAM_ES = TrainConfig(optimizer="adam", learning_rate=1e-3, batch_size=128, epochs=50, lr_schedule="constant", augment="none")
VGG = TrainConfig(optimizer="rmsprop", learning_rate=1e-3, batch_size=128, epochs=100, lr_schedule="constant",
                  augment="classic")
WRN = TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4, batch_size=128, epochs=200,
                  lr_schedule="cosine", augment="flip_shift")
FMNIST = TrainConfig(optimizer="adam", learning_rate=1e-4, batch_size=1024, epochs=20, lr_schedule="constant",
                     augment="none")

for _p in (
    Preset("net1", net1, ADAM20, "conv3-32, pool, conv3-64, pool, conv3-64, pool, dense 512 (valid padding)",
           shape_note="inputs from 22x22 (three valid 3x3 convs and three pools)"),
    Preset("net2", net2, ADAM20, "conv5-32, conv5-64, pool, conv5-64, pool, dense 512 (valid padding)",
           shape_note="inputs from 20x20 (three valid 5x5 convs and two pools)"),
    Preset("net3", net3, ADAM20, "2x conv3-96, pool, conv3-128, pool, 3x conv3-128, pool, dense 1024/512, "
           "dropout 0.5, L2 5e-4 on dense", shape_note="inputs from 8x8"),
    Preset("simple-dropout", simple_dropout, RMS30, "conv3-32, pool, dropout, conv3-64, pool, dropout, dense 128",
           shape_note="inputs from 10x10"),
    Preset("simple-inception", simple_inception, RMS30, "simple-dropout trunk + naive inception block, dense 128",
           shape_note="inputs from 10x10"),
    Preset("simple-residual", simple_residual, RMS30, "simple-dropout trunk + 3x3-64 conv added to its input, dense 128",
           shape_note="inputs from 10x10"),
    Preset("three-block", three_block, ADAM_ES, "conv5-32, conv3-64, conv3-128 (same), pools, dense 128; early stopping",
           early_stopping_patience=5, shape_note="any input size",
           as_config=_cfg(ArchConfig(block="plain", stages=3, blocks_per_stage=1, base_filters=32, width_growth=2.0,
                                     kernel_size=3, batch_norm=False, head="flatten", dense_units=128,
                                     block_options={"convs": 1}), ADAM_ES)),
    Preset("three-block-bn", three_block_bn, ADAM_ES, "three-block with batch norm after each conv",
           early_stopping_patience=5, shape_note="any input size",
           as_config=_cfg(ArchConfig(block="plain", stages=3, blocks_per_stage=1, base_filters=32, width_growth=2.0,
                                     kernel_size=3, batch_norm=True, head="flatten", dense_units=128,
                                     block_options={"convs": 1}), ADAM_ES)),
    Preset("vgg-bn-aug", vgg_bn_aug, VGG, "(conv3-relu-BN) x2, pool, dropout, for 32/64/128/256; RMSprop; "
           "flips, 10% shifts, 15 degree rotations; 100 epochs", shape_note="inputs from 16x16",
           as_config=_cfg(ArchConfig(block="plain", stages=4, blocks_per_stage=1, base_filters=32, width_growth=2.0,
                                     kernel_size=3, batch_norm=True, conv_dropout=0.2, head="flatten",
                                     block_options={"convs": 2}), VGG, augment="flip_shift_rotate")),
    Preset("wrn-16-8", wrn_16_8, WRN, "Wide ResNet 16-8 (11M parameters): SGD 0.1, nesterov, wd 5e-4, cosine",
           shape_note="any input size from 4x4",
           as_config=_cfg(ArchConfig(block="residual", stages=3, blocks_per_stage=2, base_filters=128,
                                     width_growth=2.0, kernel_size=3, batch_norm=True, head="gap",
                                     block_options={"preact": True}), WRN)),
    Preset("fmnist-cnn", fmnist_cnn, FMNIST, "conv5-32, pool, conv3-64, pool, conv1-128, dense 1024/32; Adam 1e-4, "
           "batch 1024", default_shape=(28, 28, 1), shape_note="any input size from 4x4"),
):
    register_preset(_p)


def build_preset(preset: Preset, input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """The preset's model for this data, or one clear error when its design does not fit the input."""
    try:
        return preset.build(input_shape, num_classes)
    except ValueError as e:
        raise UserError(f"preset {preset.name} does not fit {tuple(input_shape)} inputs ({preset.shape_note}): "
                        f"{str(e).splitlines()[0][:150]}") from None


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})")
    return PRESETS[name]
