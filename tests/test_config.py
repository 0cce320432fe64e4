import json

import pytest

from cifar_automl.config import ArchConfig, TrainConfig, TrialConfig


def test_round_trip_through_json():
    cfg = TrialConfig(
        arch=ArchConfig(block="residual", stages=2, block_options={"preact": True}),
        train=TrainConfig(optimizer="sgd", learning_rate=0.05, epochs=7),
    )
    again = TrialConfig.from_json(json.dumps(json.loads(cfg.to_json())))
    assert again == cfg


def test_unknown_field_is_rejected():
    with pytest.raises(ValueError, match="unknown ArchConfig fields: depth"):
        TrialConfig.from_dict({"arch": {"depth": 3}, "train": {}})


def test_stage_widths_grow_and_round_to_multiples_of_8():
    assert ArchConfig(base_filters=24, width_growth=1.5, stages=4).stage_widths() == [24, 40, 56, 80]
    assert ArchConfig(base_filters=16, width_growth=2.0, stages=3).stage_widths() == [16, 32, 64]


def test_max_width_caps_every_stage():
    assert ArchConfig(base_filters=64, width_growth=4.0, stages=3, max_width=256).stage_widths() == [64, 256, 256]
    assert ArchConfig(base_filters=64, width_growth=4.0, stages=3).stage_widths() == [64, 256, 1024]
