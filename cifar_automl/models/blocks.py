"""Block types, one small builder each, in a registry.

Adding a block type is one function here, decorated with `@register_block`, plus one entry in a search
space YAML (`arch.block` choices and, if it has options, `blocks.<name>`). A builder takes a tensor and
returns a tensor; every layer it makes is named from the `name` prefix it is given, so models stay
readable in `model.summary()` and in exported files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from keras import layers

BlockFn = Callable[..., Any]


@dataclass(frozen=True)
class BlockType:
    name: str
    build: BlockFn
    options: dict[str, Any]  # option name -> default value; sampled per space under `blocks.<name>`
    downsamples: bool  # True: the block strides itself when asked; False: the model pools between stages
    description: str


BLOCKS: dict[str, BlockType] = {}

# Keras' default batch-norm momentum (0.99) needs thousands of steps before its moving statistics are
# usable for evaluation; search trials are a few hundred steps long, so use PyTorch's 0.9 equivalent.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3  # Keras' default


def register_block(name: str, *, options: dict[str, Any] | None = None, downsamples: bool = False):
    """Register `fn(x, filters, *, stride, kernel_size, activation, batch_norm, name, **options)`."""

    def deco(fn: BlockFn) -> BlockFn:
        BLOCKS[name] = BlockType(
            name=name,
            build=fn,
            options=dict(options or {}),
            downsamples=downsamples,
            description=(fn.__doc__ or "").strip().splitlines()[0],
        )
        return fn

    return deco


def block_option_defaults(name: str) -> dict[str, Any]:
    return dict(BLOCKS[name].options) if name in BLOCKS else {}


def subsample(x: Any, stride: int, *, name: str) -> Any:
    """`x[:, ::stride, ::stride, :]` as a Keras layer (a 1x1 max pool), for strided 1x1 convolutions.

    A 1x1 conv with stride s equals this subsampling followed by a 1x1 conv with stride 1, and the
    second form must be used: TensorFlow 2.21's oneDNN kernel for the filter gradient of a strided 1x1
    conv corrupts the heap when the batch size is odd (the process dies with SIGSEGV/SIGABRT on the
    last, partial batch of an epoch). tests/models/test_build.py keeps a check that trains through it.
    """
    if stride == 1:
        return x
    return layers.MaxPooling2D(pool_size=1, strides=stride, name=f"{name}_subsample")(x)


def conv_bn_act(
    x: Any,
    filters: int,
    kernel_size: int,
    *,
    strides: int = 1,
    activation: str | None,
    batch_norm: bool,
    name: str,
    bn_momentum: float = BN_MOMENTUM,
    bn_epsilon: float = BN_EPSILON,
    bn_scale: bool = True,
    dirac: bool = False,
) -> Any:
    """Conv (no bias when batch norm follows), optional batch norm, optional activation.

    `bn_scale=False` fixes batch norm's scale at 1 (only its offset learns); `dirac` starts the conv
    as an identity on its input channels (see `dirac_init`).
    """
    x = conv(x, filters, kernel_size, strides=strides, use_bias=not batch_norm, dirac=dirac, name=f"{name}_conv")
    if batch_norm:
        x = batch_norm_layer(bn_momentum, bn_epsilon, bn_scale, name=f"{name}_bn")(x)
    if activation:
        x = layers.Activation(activation, name=f"{name}_act")(x)
    return x


def conv(x: Any, filters: int, kernel_size: int, *, strides: int = 1, use_bias: bool, dirac: bool, name: str) -> Any:
    """A 'same'-padded conv, He-initialised, or identity-initialised on its input channels with `dirac`."""
    layer = layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=use_bias, kernel_initializer="he_normal",
        name=name,
    )
    x = layer(x)
    if dirac:
        dirac_init(layer)
    return x


def batch_norm_layer(momentum: float, epsilon: float, scale: bool, *, name: str) -> layers.Layer:
    return layers.BatchNormalization(momentum=momentum, epsilon=epsilon, scale=scale, name=name)


def dirac_init(conv: layers.Conv2D) -> None:
    """Make the first min(in, out) filters of a built conv the identity on the input channels (PyTorch's
    `dirac_`, as airbench starts its convs): the net starts close to a shallower one. The weights are
    set after building, so the saved model needs no custom initializer."""
    kernel = np.array(conv.kernel.numpy())
    kh, kw, c_in, c_out = kernel.shape
    k = min(c_in, c_out)
    kernel[:, :, :, :k] = 0.0
    kernel[kh // 2, kw // 2, np.arange(k), np.arange(k)] = 1.0
    conv.kernel.assign(kernel)


@register_block("plain", options={"convs": 2})
def plain_block(
    x: Any, filters: int, *, stride: int, kernel_size: int, activation: str, batch_norm: bool,
    name: str, convs: int = 2,
) -> Any:
    """VGG style: `convs` x (conv k x k, batch norm, activation); the model pools between stages."""
    for i in range(convs):
        x = conv_bn_act(
            x, filters, kernel_size, activation=activation, batch_norm=batch_norm, name=f"{name}_{i + 1}"
        )
    return x


@register_block("inception", options={"reduction": 0.5, "factorize": False})
def inception_block(
    x: Any, filters: int, *, stride: int, kernel_size: int, activation: str, batch_norm: bool,
    name: str, reduction: float = 0.5, factorize: bool = False,
) -> Any:
    """GoogLeNet style: parallel 1x1, 3x3 and 5x5 convs (after 1x1 reductions) and a pooling branch.

    Output widths are 1/4, 1/2, 1/8 and 1/8 of `filters`; the 3x3/5x5 inputs are first reduced by 1x1
    convs to `reduction` times their output width. `factorize` replaces the 5x5 by two 3x3 (Inception
    v2). The branches fix their own kernel sizes, so `kernel_size` does not apply.
    """
    f1, f3, f5 = max(8, filters // 4), max(8, filters // 2), max(8, filters // 8)
    fp = max(8, filters - f1 - f3 - f5)
    kw = {"activation": activation, "batch_norm": batch_norm}
    b1 = conv_bn_act(x, f1, 1, name=f"{name}_1x1", **kw)
    b3 = conv_bn_act(x, max(8, int(f3 * reduction)), 1, name=f"{name}_3x3_reduce", **kw)
    b3 = conv_bn_act(b3, f3, 3, name=f"{name}_3x3", **kw)
    b5 = conv_bn_act(x, max(8, int(f5 * reduction)), 1, name=f"{name}_5x5_reduce", **kw)
    if factorize:
        b5 = conv_bn_act(b5, f5, 3, name=f"{name}_5x5_a", **kw)
        b5 = conv_bn_act(b5, f5, 3, name=f"{name}_5x5_b", **kw)
    else:
        b5 = conv_bn_act(b5, f5, 5, name=f"{name}_5x5", **kw)
    bp = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = conv_bn_act(bp, fp, 1, name=f"{name}_pool_proj", **kw)
    return layers.Concatenate(name=f"{name}_concat")([b1, b3, b5, bp])


@register_block("residual", options={"preact": False}, downsamples=True)
def residual_block(
    x: Any, filters: int, *, stride: int, kernel_size: int, activation: str, batch_norm: bool,
    name: str, preact: bool = False,
) -> Any:
    """ResNet basic block: two k x k convs plus a shortcut, projected by a 1x1 conv when shape changes.

    `preact` gives the pre-activation ordering of ResNet v2 (batch norm and activation before each conv).
    """
    in_filters = x.shape[-1]
    needs_projection = stride != 1 or in_filters != filters
    if preact:
        pre = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_pre_bn")(x) if batch_norm else x
        pre = layers.Activation(activation, name=f"{name}_pre_act")(pre)
        shortcut = (
            layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_proj_conv")(
                subsample(pre, stride, name=f"{name}_proj")
            )
            if needs_projection
            else x
        )
        y = conv_bn_act(
            pre, filters, kernel_size, strides=stride, activation=activation, batch_norm=batch_norm,
            name=f"{name}_1",
        )
        y = layers.Conv2D(
            filters, kernel_size, padding="same", use_bias=False, kernel_initializer="he_normal",
            name=f"{name}_2_conv",
        )(y)
        return layers.Add(name=f"{name}_add")([shortcut, y])

    shortcut = x
    if needs_projection:
        shortcut = conv_bn_act(
            subsample(x, stride, name=f"{name}_proj"), filters, 1, activation=None, batch_norm=batch_norm,
            name=f"{name}_proj",
        )
    y = conv_bn_act(
        x, filters, kernel_size, strides=stride, activation=activation, batch_norm=batch_norm,
        name=f"{name}_1",
    )
    y = conv_bn_act(y, filters, kernel_size, activation=None, batch_norm=batch_norm, name=f"{name}_2")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation(activation, name=f"{name}_out")(y)



@register_block(
    "conv_pool",
    options={"bn_momentum": BN_MOMENTUM, "bn_epsilon": BN_EPSILON, "bn_scale": True, "dirac": False,
             "pool_padding": "same"},
    downsamples=True,
)
def conv_pool_block(
    x: Any, filters: int, *, stride: int, kernel_size: int, activation: str, batch_norm: bool,
    name: str, bn_momentum: float = BN_MOMENTUM, bn_epsilon: float = BN_EPSILON, bn_scale: bool = True,
    dirac: bool = False, pool_padding: str = "same",
) -> Any:
    """airbench style: conv, 2x2 max pool when downsampling, batch norm, activation, then conv, BN, act.

    Pooling right after the first conv (instead of between stages) halves the cost of the second
    conv; with `pool_first_stage`, widths 64/256/256, a whitening stem and a max-pool head this is the
    network of the fastest known CIFAR-10 training recipes (Keller Jordan's airbench), which also
    uses the options: batch norm momentum 0.6 (Keras' meaning: the weight of the old statistics),
    epsilon 1e-12, no learned batch-norm scale, identity-initialised (`dirac`) convs, and pooling that
    drops an odd last row and column (`pool_padding: valid`: 31 -> 15 -> 7 -> 3 after a whitening stem).
    """
    bn = {"bn_momentum": bn_momentum, "bn_epsilon": bn_epsilon, "bn_scale": bn_scale, "dirac": dirac}
    x = conv(x, filters, kernel_size, use_bias=not batch_norm, dirac=dirac, name=f"{name}_1_conv")
    if stride > 1:
        x = layers.MaxPooling2D(stride, padding=pool_padding, name=f"{name}_pool")(x)
    if batch_norm:
        x = batch_norm_layer(bn_momentum, bn_epsilon, bn_scale, name=f"{name}_1_bn")(x)
    x = layers.Activation(activation, name=f"{name}_1_act")(x)
    return conv_bn_act(x, filters, kernel_size, activation=activation, batch_norm=batch_norm, name=f"{name}_2", **bn)
