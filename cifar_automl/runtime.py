"""Device set-up, done once per process before any model is built.

On a GPU: memory growth is switched on (so several workers can share one card and TensorFlow does not
grab all memory up front), and `mixed_precision` selects Keras' `mixed_float16` policy (the model's
softmax stays float32; Keras adds loss scaling at compile). On a CPU nothing needs setting. The GPU path
cannot be exercised on a CPU-only machine; it follows the TensorFlow and Keras guides.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def configure_devices(mixed_precision: bool = False) -> str:
    """Set up GPUs if present; return a one-line description of the devices used."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as e:  # devices already initialised in this process
            log.warning("could not enable memory growth on %s: %s", gpu.name, e)
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16" if gpus else "mixed_bfloat16")
    policy = keras.mixed_precision.dtype_policy().name
    if gpus:
        return f"{len(gpus)} GPU(s), dtype policy {policy}"
    return f"CPU ({os.cpu_count()} cores), dtype policy {policy}"
