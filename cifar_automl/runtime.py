"""The process's backend and devices, set up once per process before any model is built.

Keras runs on TensorFlow (the default, fastest on a CPU here), JAX or PyTorch; `select_backend` sets
`KERAS_BACKEND` before Keras is imported (`cifar-automl --backend jax ...`), and worker processes
inherit it. On a GPU: memory growth on TensorFlow and no preallocation on JAX, so that several
workers share one card; `mixed_precision` selects Keras' `mixed_float16` policy (the softmax stays
float32; Keras adds loss scaling at compile), `mixed_bfloat16` on a CPU. `--workers auto` starts one
worker per visible GPU and pins each worker to its card (`gpu_for_worker`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from .errors import UserError

log = logging.getLogger(__name__)

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"


def select_backend(name: str | None = None) -> str:
    """Make `name` (or `$KERAS_BACKEND`, or TensorFlow) this process's Keras backend; returns it.

    Must run before Keras is imported. JAX is told not to take the whole GPU at start-up."""
    name = name or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}' (choose from {', '.join(BACKENDS)})")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != name:
            raise UserError(f"Keras already runs on {keras.backend.backend()}: choose the backend before "
                            "importing Keras (KERAS_BACKEND or cifar-automl --backend)")
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several JAX workers share one GPU
    return name


def backend_name() -> str:
    """The backend Keras runs on in this process (or will, once imported)."""
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND


def _accelerators() -> list[str]:
    """Names of the GPUs the current backend sees (imports the backend)."""
    backend = backend_name()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError as e:  # devices already initialised in this process
                log.warning("could not enable memory growth on %s: %s", gpu.name, e)
        return [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    if backend == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def source_commit() -> str:
    """The short git commit of the checkout the package runs from ("" outside a git checkout): what
    benchmark results record beside the date and the CPU."""
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


_DEVICE: str | None = None


def configure_devices(mixed_precision: bool = False) -> str:
    """Set up GPUs if present and the dtype policy; return a one-line description of the devices."""
    global _DEVICE
    import keras

    gpus = _accelerators()
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16" if gpus else "mixed_bfloat16")
    policy = keras.mixed_precision.dtype_policy().name
    _DEVICE = f"GPU: {gpus[0]}" if gpus else f"CPU: {cpu_name()}, {os.cpu_count()} cores"
    if gpus:
        return f"{backend_name()} on {len(gpus)} GPU(s) ({gpus[0]}), dtype policy {policy}"
    return f"{backend_name()} on CPU ({os.cpu_count()} cores), dtype policy {policy}"


def device_name() -> str:
    """What this process trains on, as recorded with every trial and model (`device`)."""
    if _DEVICE is None:
        configure_devices()
    return _DEVICE or "CPU"


def visible_gpus() -> list[str]:
    """The GPUs this machine lets us use, without importing a framework: `CUDA_VISIBLE_DEVICES` when
    set, else what `nvidia-smi` lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def gpu_for_worker(gpus: list[str], in_use: list[str]) -> str | None:
    """The GPU a new worker gets: the one the fewest running workers use (the first among equals);
    None without GPUs (the worker sees what the machine has)."""
    if not gpus:
        return None
    load = Counter(in_use)
    return min(gpus, key=lambda g: (load[g], gpus.index(g)))


def is_out_of_memory(e: BaseException) -> bool:
    """Whether a training error is the device (or host) running out of memory, on any backend."""
    if isinstance(e, MemoryError) or type(e).__name__ in ("ResourceExhaustedError", "OutOfMemoryError"):
        return True
    text = str(e)
    return "RESOURCE_EXHAUSTED" in text or "CUDA out of memory" in text or "Out of memory" in text


def import_tensorflow_quietly() -> None:
    """On the TensorFlow backend, import TensorFlow with its C++ start-up lines (CUDA probing, oneDNN notice) kept off stderr.

    Those lines are written before TensorFlow reads any log setting, so stderr is pointed at /dev/null
    for the import only. `--debug` keeps them.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or backend_name() != "tensorflow":
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
