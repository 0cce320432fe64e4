"""Keras models: block types in a registry (`blocks`), the builder of searched networks (`build`), and
textbook reference networks with their recipes (`presets`).

Adding a block type is one function decorated with `@register_block` (see `blocks.py`) plus one
entry in a search space's `arch.block` choices.
"""

from .blocks import BLOCKS, BlockType, block_option_defaults, register_block
from .build import (
    ACTIVATIONS,
    HEADS,
    POOLINGS,
    STEMS,
    all_layers,
    build_model,
    estimate_flops,
    whitening_kernel,
)
from .presets import PRESETS, Preset, build_preset, get_preset

__all__ = [
    "ACTIVATIONS", "BLOCKS", "HEADS", "POOLINGS", "PRESETS", "STEMS", "BlockType", "Preset", "all_layers",
    "block_option_defaults", "build_model", "build_preset", "estimate_flops", "get_preset", "register_block",
    "whitening_kernel",
]
