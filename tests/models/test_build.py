import subprocess
import sys

import keras
import numpy as np
import pytest

from cifar_automl.config import ArchConfig
from cifar_automl.models import BLOCKS, build_model, estimate_flops, register_block


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


def test_whitening_stem_decorrelates_patches_of_the_training_images():
    """airbench's stem: fixed 2x2 filters under which the patches of the (normalised) training images
    have unit variance and no correlation; the filters come in +/- pairs and only the bias learns."""
    from cifar_automl.models.build import WHITEN_EPS, whitening_kernel

    rng = np.random.default_rng(0)
    base = rng.normal(120, 40, (300, 8, 8, 3))
    x = np.clip(base + np.roll(base, 1, axis=2) * 0.8, 0, 255).astype(np.uint8)  # correlated neighbours
    mean, std = [0.5, 0.45, 0.4], [0.25, 0.25, 0.25]
    kernel = whitening_kernel(x, mean, std)
    assert kernel.shape == (2, 2, 3, 24)
    np.testing.assert_allclose(kernel[..., 12:], -kernel[..., :12])
    norm = (x / 255.0 - np.array(mean)) / np.array(std)
    patches = np.stack([norm[:, i:i + 7, j:j + 7] for i in range(2) for j in range(2)], axis=3).reshape(-1, 12)
    out = patches @ kernel[..., :12].reshape(12, 12)
    cov = out.T @ out / len(out)
    eigenvalues = np.linalg.eigvalsh(patches.T @ patches / len(patches))
    np.testing.assert_allclose(np.diag(cov), np.sort(eigenvalues / (eigenvalues + WHITEN_EPS)), rtol=1e-6)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-6

    arch = ArchConfig(block="conv_pool", stages=3, stem="whiten", pool_first_stage=True, base_filters=8,
                      head="gmp", logit_scale=1 / 9, block_options={"pool_padding": "valid", "dirac": True})
    model = build_model(arch, (8, 8, 3), 4, mean=mean, std=std, sample=x)
    stem = model.get_layer("stem_whiten")
    np.testing.assert_allclose(stem.kernel.numpy(), kernel)
    trainable = {v.path for v in model.trainable_variables}
    assert "stem_whiten/kernel" not in trainable and "stem_whiten/bias" in trainable
    assert stem.output.shape[1:] == (7, 7, 24)
    assert model.get_layer("stage1_block1_pool").output.shape[1:3] == (3, 3)  # valid pooling: 7 -> 3
    assert not model.get_layer("logits").use_bias and model.get_layer("logit_scale").scale == pytest.approx(1 / 9)


def test_dirac_convs_start_as_the_identity_on_their_input_channels():
    arch = ArchConfig(block="conv_pool", stages=1, base_filters=8, stem_filters=4, batch_norm=False,
                      block_options={"dirac": True})
    model = build_model(arch, (6, 6, 3), 2)
    conv = model.get_layer("stage1_block1_1_conv")
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")
    y = keras.ops.convert_to_numpy(conv(x))
    np.testing.assert_allclose(y[..., :4], x, atol=1e-6)  # the first filters pass their channel through
    assert np.abs(y[..., 4:]).max() > 0  # the rest start at random


def test_batch_norm_options_of_conv_pool():
    arch = ArchConfig(block="conv_pool", stages=1, base_filters=8,
                      block_options={"bn_momentum": 0.6, "bn_epsilon": 1e-12, "bn_scale": False})
    bn = build_model(arch, (8, 8, 3), 2).get_layer("stage1_block1_2_bn")
    assert bn.momentum == pytest.approx(0.6) and bn.epsilon == pytest.approx(1e-12) and bn.gamma is None
    assert build_model(ArchConfig(block="conv_pool", stages=1, base_filters=8), (8, 8, 3), 2).get_layer(
        "stage1_block1_2_bn").gamma is not None  # the defaults keep Keras' batch norm
