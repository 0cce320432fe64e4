"""Pure model builders: `build_model(arch, input_shape, num_classes) -> keras.Model`.

stem -> stages of increasing width (each `blocks_per_stage` blocks of the chosen type, downsampling
between stages, and in the first stage too with `pool_first_stage`) -> head (global average pooling
or flatten, optional dense layer, dropout, softmax).
Preprocessing (scaling and per-channel normalisation) is part of the model, so a raw image
with pixel values 0..255 goes in and class probabilities come out, also after export.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import layers

from .blocks import BLOCKS, conv_bn_act
from .config import ArchConfig


def build_model(
    arch: ArchConfig,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build the network `arch` describes. `mean`/`std` are per-channel statistics in [0, 1] units."""
    if arch.block not in BLOCKS:
        raise ValueError(f"unknown block type '{arch.block}' (registered: {', '.join(sorted(BLOCKS))})")
    block = BLOCKS[arch.block]
    height, width, channels = (int(d) for d in input_shape)

    inputs = keras.Input(shape=(height, width, channels), name="image")
    if mean is not None and std is not None:
        # (pixel / 255 - mean) / std as one per-channel scale and offset: plain constants, which every
        # exporter (SavedModel, TFLite, ONNX) freezes into the graph
        x = layers.Rescaling(
            scale=[1.0 / (255.0 * float(s)) for s in std],
            offset=[-float(m) / float(s) for m, s in zip(mean, std)],
            name="normalize",
        )(inputs)
    else:
        x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    widths = arch.stage_widths()
    x = conv_bn_act(
        x, arch.stem_filters or widths[0], 3, activation=arch.activation, batch_norm=arch.batch_norm,
        name="stem",
    )
    size = min(height, width)
    for s, filters in enumerate(widths):
        stride = 1
        if (s > 0 or arch.pool_first_stage) and size >= 4:  # never pool a feature map below 2x2
            size = (size + 1) // 2
            if block.downsamples:
                stride = 2
            else:
                pool = layers.MaxPooling2D if arch.pooling == "max" else layers.AveragePooling2D
                x = pool(2, padding="same", name=f"stage{s + 1}_pool")(x)
        for b in range(arch.blocks_per_stage):
            x = block.build(
                x,
                filters,
                stride=stride if b == 0 else 1,
                kernel_size=arch.kernel_size,
                activation=arch.activation,
                batch_norm=arch.batch_norm,
                name=f"stage{s + 1}_block{b + 1}",
                **arch.block_options,
            )
        if arch.conv_dropout > 0:
            x = layers.SpatialDropout2D(arch.conv_dropout, name=f"stage{s + 1}_dropout")(x)

    if arch.head == "flatten":
        x = layers.Flatten(name="head_flatten")(x)
    else:
        x = layers.GlobalAveragePooling2D(name="head_gap")(x)
    if arch.dense_units > 0:
        x = layers.Dense(arch.dense_units, name="head_dense")(x)
        x = layers.Activation(arch.activation, name="head_act")(x)
    if arch.dense_dropout > 0:
        x = layers.Dropout(arch.dense_dropout, name="head_dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probs")(x)
    model_name = name or f"{arch.block}_{arch.stages}x{arch.blocks_per_stage}_w{widths[0]}"
    return keras.Model(inputs, outputs, name=model_name)


def estimate_flops(model: keras.Model) -> int:
    """Forward-pass FLOPs for one image (2 per multiply-add) of conv and dense layers."""
    total = 0
    for layer in all_layers(model):
        if isinstance(layer, layers.Conv2D):
            out = layer.output.shape  # (None, h, w, c_out)
            k_h, k_w = layer.kernel_size
            c_in = layer.input.shape[-1] // layer.groups
            total += 2 * k_h * k_w * c_in * int(np.prod(out[1:]))
        elif isinstance(layer, layers.Dense):
            total += 2 * int(layer.input.shape[-1]) * int(layer.units)
    return int(total)


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    out = []
    for layer in model.layers:
        out.extend(all_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out
