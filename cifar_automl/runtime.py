"""Device set-up, done once per process before any model is built.

On a GPU: memory growth is switched on (so several workers can share one card and TensorFlow does not
grab all memory up front), and `mixed_precision` selects Keras' `mixed_float16` policy (the model's
softmax stays float32; Keras adds loss scaling at compile). On a CPU nothing needs setting. The GPU path
cannot be exercised on a CPU-only machine; it follows the TensorFlow and Keras guides.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any, Callable

log = logging.getLogger(__name__)


def configure_devices(mixed_precision: bool = False) -> str:
    """Set up GPUs if present; return a one-line description of the devices used."""
    # imported here: a worker process imports TensorFlow quietly (import_tensorflow_quietly) first
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


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up lines (CUDA probing, oneDNN notice) kept off stderr.

    Those lines are written before TensorFlow reads any log setting, so stderr is pointed at /dev/null
    for the import only. `--debug` keeps them.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource  # POSIX only; /proc is there on Linux

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class on_signal:
    """Install `handler` for `signum` inside the block (nothing outside the main thread, where
    Python allows no signal handlers), restoring the previous one after."""

    def __init__(self, signum: int, handler: Callable[[int, Any], None]) -> None:
        self.signum, self.handler = signum, handler

    def __enter__(self) -> None:
        self._previous = None
        try:
            self._previous = signal.signal(self.signum, self.handler)
        except ValueError:  # not in the main thread
            pass

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
