import keras
import numpy as np
import pytest

from cifar_automl.training import predict_probs


def _position_sensitive_model(shape=(6, 6, 3), classes=4):
    """A model whose output changes when the image is mirrored or moved (flatten + dense)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


def test_test_time_augmentation_averages_the_views_airbench_uses():
    model = _position_sensitive_model()
    x = np.random.default_rng(0).integers(0, 256, (5, 6, 6, 3)).astype(np.uint8)

    def p(images):
        return model.predict(images.astype(np.float32), verbose=0)

    plain = predict_probs(model, x)
    np.testing.assert_allclose(plain, p(x), rtol=1e-6)
    mirror = (p(x) + p(x[:, :, ::-1])) / 2
    np.testing.assert_allclose(predict_probs(model, x, tta="flip"), mirror, rtol=1e-6)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    up_left, down_right = padded[:, :6, :6], padded[:, 2:, 2:]
    moved = ((p(up_left) + p(up_left[:, :, ::-1])) / 2 + (p(down_right) + p(down_right[:, :, ::-1])) / 2) / 2
    both = predict_probs(model, x, tta="flip_translate")
    np.testing.assert_allclose(both, (mirror + moved) / 2, rtol=1e-5)
    np.testing.assert_allclose(both.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        predict_probs(model, x, tta="rotate")
