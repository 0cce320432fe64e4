import subprocess
import sys

import keras
import numpy as np
import pytest

from cifar_automl.blocks import BLOCKS, register_block
from cifar_automl.config import ArchConfig
from cifar_automl.models import build_model, estimate_flops


@pytest.mark.parametrize("block", sorted(BLOCKS))
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_every_block_builds_and_trains_a_step(block, shape):
    arch = ArchConfig(block=block, stages=3, blocks_per_stage=1, base_filters=8, dense_units=16,
                      dense_dropout=0.1, conv_dropout=0.1)
    model = build_model(arch, shape, 10, mean=[0.5] * shape[2], std=[0.2] * shape[2])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 256, (4, *shape)).astype("float32")
    loss = model.train_on_batch(x, np.arange(4) % 10)
    assert np.isfinite(loss)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_deep_models_on_small_inputs_stop_downsampling(block):
    model = build_model(ArchConfig(block=block, stages=5, base_filters=8), (8, 8, 1), 4)
    assert model.output.shape[-1] == 4


def test_residual_downsamples_with_projection_shortcuts():
    model = build_model(ArchConfig(block="residual", stages=3, base_filters=8), (32, 32, 3), 10)
    names = [layer.name for layer in model.layers]
    assert "stage2_block1_proj_conv" in names and "stage3_block1_proj_conv" in names
    assert model.get_layer("stage3_block1_add").output.shape[1:3] == (8, 8)


def test_conv_pool_blocks_pool_in_every_stage_when_asked():
    """The airbench shape: stem, then conv -> pool -> BN -> act -> conv in each stage, 32 -> 16 -> 8 -> 4."""
    arch = ArchConfig(block="conv_pool", stages=3, pool_first_stage=True, stem_filters=24, base_filters=16,
                      width_growth=4.0, max_width=32)
    model = build_model(arch, (32, 32, 3), 10)
    assert model.get_layer("stem_conv").output.shape[1:] == (32, 32, 24)
    assert [model.get_layer(f"stage{s}_block1_pool").output.shape[1:] for s in (1, 2, 3)] == [
        (16, 16, 16), (8, 8, 32), (4, 4, 32)]
    # the second conv of a block runs after the pool, at the lower resolution
    assert model.get_layer("stage1_block1_2_conv").output.shape[1:3] == (16, 16)
    # without pool_first_stage the first stage keeps the input size, as for the other blocks
    plain = build_model(ArchConfig(block="conv_pool", stages=3, base_filters=16), (32, 32, 3), 10)
    assert "stage1_block1_pool" not in [layer.name for layer in plain.layers]
    assert plain.get_layer("stage3_block1_pool").output.shape[1:3] == (8, 8)


def test_pool_first_stage_pools_before_non_downsampling_blocks():
    model = build_model(ArchConfig(block="plain", stages=2, base_filters=8, pool_first_stage=True),
                        (32, 32, 3), 10)
    assert model.get_layer("stage1_pool").output.shape[1:3] == (16, 16)
    assert model.get_layer("stage2_pool").output.shape[1:3] == (8, 8)


def strided_1x1_convs(model):
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
            and layer.kernel_size == (1, 1) and layer.strides != (1, 1)]


@pytest.mark.parametrize("preact", [False, True])
def test_projection_shortcuts_survive_odd_batches(preact):
    """TensorFlow 2.21's oneDNN filter gradient of a strided 1x1 conv corrupts the heap on odd batch
    sizes; the builders subsample first. The training runs in a child process, so a crash fails this
    test instead of killing the suite."""
    model = build_model(ArchConfig(block="residual", stages=2, base_filters=8,
                                   block_options={"preact": preact}), (10, 10, 3), 3)
    assert not strided_1x1_convs(model)
    assert model.get_layer("stage2_block1_add").output.shape[1:3] == (5, 5)
    code = (
        "import numpy as np\n"
        "from cifar_automl.config import ArchConfig\n"
        "from cifar_automl.models import build_model\n"
        f"m = build_model(ArchConfig(block='residual', stages=2, base_filters=8, "
        f"block_options={{'preact': {preact}}}), (10, 10, 3), 3)\n"
        "m.compile('sgd', 'sparse_categorical_crossentropy')\n"
        "r = np.random.default_rng(0)\n"
        "m.fit(r.random((39, 10, 10, 3)), r.integers(0, 3, 39), batch_size=32, epochs=3, verbose=0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_block_options_reach_the_builder():
    plain3 = build_model(ArchConfig(block="plain", stages=1, block_options={"convs": 3}), (16, 16, 3), 2)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in plain3.layers) == 1 + 3  # stem + 3


def test_flops_of_a_known_model():
    arch = ArchConfig(block="plain", stages=1, base_filters=8, batch_norm=False, head="gap",
                      block_options={"convs": 1})
    model = build_model(arch, (10, 10, 1), 2)
    stem = 2 * 3 * 3 * 1 * 8 * 10 * 10
    conv = 2 * 3 * 3 * 8 * 8 * 10 * 10
    dense = 2 * 8 * 2
    assert estimate_flops(model) == stem + conv + dense


def test_registry_adds_a_block_with_one_function():
    @register_block("identity_test", options={"scale": 1})
    def identity_block(x, filters, *, stride, kernel_size, activation, batch_norm, name, scale=1):
        """Test block: one 1x1 conv."""
        return keras.layers.Conv2D(filters, 1, name=f"{name}_conv")(x)

    try:
        model = build_model(ArchConfig(block="identity_test", stages=2), (8, 8, 3), 3)
        assert model.get_layer("stage2_block1_conv") is not None
    finally:
        del BLOCKS["identity_test"]


def test_same_config_same_model_in_a_fresh_build():
    arch = ArchConfig(block="inception", stages=2, block_options={"reduction": 0.25, "factorize": True})
    a = build_model(arch, (32, 32, 3), 10)
    b = build_model(ArchConfig(**{**arch.__dict__}), (32, 32, 3), 10)
    assert a.count_params() == b.count_params()
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
