"""The augmentations a training recipe can name (`train.augment`), as data: what each one does to a
training image. `pipeline.make_dataset` applies them; evaluation uses none."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Augmentation:
    flip: str = "none"  # none | random | alternate (random in the first epoch, then the other way each epoch)
    shift: float = 0.0  # max translation as a fraction of the size, interpolated (Keras RandomTranslation)
    crop: int = 0  # max translation in whole pixels: reflect-pad and crop, no interpolation (airbench)
    degrees: float = 0.0  # max rotation


AUGMENTATIONS: dict[str, Augmentation] = {
    "none": Augmentation(),
    "flip": Augmentation(flip="random"),
    "flip_shift": Augmentation(flip="random", shift=0.125),  # 4 pixels on 32x32, the classic CIFAR recipe
    "flip_shift2": Augmentation(flip="random", shift=0.0625),  # 2 pixels on 32x32
    "flip_shift_rotate": Augmentation(flip="random", shift=0.125, degrees=15.0),
    "classic": Augmentation(flip="random", shift=0.1, degrees=15.0),  # the common Keras CIFAR-10 recipe
    # airbench: each image is seen mirrored in every other epoch (random only in the first), and moved by
    # up to 2 whole pixels; sharper than interpolated shifts, and the flips cover both sides evenly
    "altflip_crop2": Augmentation(flip="alternate", crop=2),
}


def get_augmentation(name: str) -> Augmentation:
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation '{name}' (known: {', '.join(AUGMENTATIONS)})")
    return AUGMENTATIONS[name]

