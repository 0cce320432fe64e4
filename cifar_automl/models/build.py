"""Pure model builders: `build_model(arch, input_shape, num_classes) -> keras.Model`.

stem (a conv, or airbench's fixed whitening conv set from the training images) -> stages of increasing
width (each `blocks_per_stage` blocks of the chosen type, downsampling between stages, and in the
first stage too with `pool_first_stage`) -> head (global average or max pooling, or flatten, optional
dense layer, dropout, logit scale, softmax).
Preprocessing (scaling and per-channel normalisation) is part of the model, so a raw image
with pixel values 0..255 goes in and class probabilities come out, also after export.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import layers

from ..config import ArchConfig
from .blocks import BLOCKS, conv_bn_act

WHITEN_KERNEL = 2  # airbench whitens 2x2 patches
WHITEN_EPS = 5e-4  # added to the patch covariance's eigenvalues
WHITEN_IMAGES = 5000  # images the patch covariance is estimated from

# the choices build_model implements for these ArchConfig fields (a search space may offer any of them)
ACTIVATIONS = ("relu", "elu", "gelu", "swish", "tanh", "selu", "leaky_relu")  # Keras activation names
STEMS = ("conv", "whiten")
POOLINGS = ("max", "avg")
HEADS = ("gap", "gmp", "flatten")


def build_model(
    arch: ArchConfig,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    name: str | None = None,
    sample: np.ndarray | None = None,
) -> keras.Model:
    """Build the network `arch` describes. `mean`/`std` are per-channel statistics in [0, 1] units.

    `sample`: training images (N, H, W, C, pixel values 0..255) that data-dependent layers are set from:
    a whitening stem needs them (without, it keeps a random kernel: fine for a summary, not for training).
    """
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
    size = min(height, width)
    if arch.stem == "whiten":
        stem = layers.Conv2D(2 * channels * WHITEN_KERNEL**2, WHITEN_KERNEL, padding="valid", name="stem_whiten")
        x = layers.Activation(arch.activation, name="stem_act")(stem(x))
        if sample is not None:
            stem.kernel.assign(whitening_kernel(sample, mean, std))
        stem.kernel.trainable = False  # fixed; its bias learns
        size -= WHITEN_KERNEL - 1
    elif arch.stem == "conv":
        x = conv_bn_act(
            x, arch.stem_filters or widths[0], 3, activation=arch.activation, batch_norm=arch.batch_norm,
            name="stem",
        )
    else:
        raise ValueError(f"unknown stem '{arch.stem}' (known: conv, whiten)")
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
    elif arch.head == "gmp":
        x = layers.GlobalMaxPooling2D(name="head_gmp")(x)
    else:
        x = layers.GlobalAveragePooling2D(name="head_gap")(x)
    if arch.dense_units > 0:
        x = layers.Dense(arch.dense_units, name="head_dense")(x)
        x = layers.Activation(arch.activation, name="head_act")(x)
    if arch.dense_dropout > 0:
        x = layers.Dropout(arch.dense_dropout, name="head_dropout")(x)
    if arch.logit_scale != 1.0:  # airbench: a bias-free classifier whose logits are scaled down by 9
        x = layers.Dense(num_classes, use_bias=False, name="logits")(x)
        x = layers.Rescaling(arch.logit_scale, name="logit_scale")(x)
    else:
        x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probs")(x)
    model_name = name or f"{arch.block}_{arch.stages}x{arch.blocks_per_stage}_w{widths[0]}"
    return keras.Model(inputs, outputs, name=model_name)


def whitening_kernel(
    images: np.ndarray, mean: Sequence[float] | None, std: Sequence[float] | None, k: int = WHITEN_KERNEL
) -> np.ndarray:
    """airbench's whitening conv: the eigenvectors of the k x k patch covariance of the (normalised)
    images, each scaled by 1/sqrt(its eigenvalue), as 2·k·k·C filters (each one and its negative).

    After it, patches are decorrelated with unit variance: the first layer starts from the statistics
    of the data instead of having to learn them. Returns a (k, k, C, 2·k·k·C) Keras kernel.
    """
    x = np.asarray(images[:WHITEN_IMAGES], dtype=np.float64) / 255.0
    if mean is not None and std is not None:
        x = (x - np.asarray(mean)) / np.asarray(std)
    n, h, w, c = x.shape
    patches = np.stack([x[:, i:h - k + 1 + i, j:w - k + 1 + j, :] for i in range(k) for j in range(k)], axis=3)
    flat = patches.reshape(-1, k * k * c)  # (h, w, c) order, as a Keras kernel's first three axes
    eigenvalues, eigenvectors = np.linalg.eigh(flat.T @ flat / len(flat))
    filters = (eigenvectors / np.sqrt(eigenvalues + WHITEN_EPS)).reshape(k, k, c, k * k * c)
    return np.concatenate([filters, -filters], axis=-1).astype(np.float32)


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
