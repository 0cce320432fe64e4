"""The backend and device choices of runtime.py (and __main__'s --backend), on a CPU-only machine."""

import os
import subprocess
import sys

import keras
import pytest

from cifar_automl.__main__ import backend_flag
from cifar_automl.errors import UserError
from cifar_automl.runtime import (
    gpu_for_worker,
    is_out_of_memory,
    select_backend,
    visible_gpus,
)


def test_each_new_worker_takes_the_least_used_gpu():
    gpus = ["0", "1", "2"]
    in_use: list[str | None] = []
    for _ in range(5):
        in_use.append(gpu_for_worker(gpus, in_use))
    assert in_use == ["0", "1", "2", "0", "1"]
    assert gpu_for_worker(gpus, ["1", "1", "0"]) == "2"  # a replaced worker's card is free again
    assert gpu_for_worker([], ["0"]) is None  # no GPU: workers are not pinned


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", "")  # no nvidia-smi
    assert visible_gpus() == []


def test_workers_auto_is_one_per_gpu_and_one_without(monkeypatch):
    from cifar_automl.search.settings import SearchSettings, parse_workers

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert parse_workers("auto") == 4 and SearchSettings(workers="auto").workers == 4
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert parse_workers("auto") == 1 and parse_workers("3") == 3
    with pytest.raises(UserError, match="number or auto"):
        parse_workers("many")


def test_backend_flag_is_taken_from_anywhere_on_the_command_line():
    assert backend_flag(["--backend", "jax", "search", "--trials", "3"]) == ("jax", ["search", "--trials", "3"])
    assert backend_flag(["search", "--backend=torch"]) == ("torch", ["search"])
    assert backend_flag(["predict", "--", "--backend"]) == (None, ["predict", "--", "--backend"])


def test_the_backend_is_refused_once_keras_runs_on_another():
    other = next(b for b in ("jax", "torch", "tensorflow") if b != keras.backend.backend())
    with pytest.raises(UserError, match="before importing Keras"):
        select_backend(other)
    with pytest.raises(UserError, match="unknown backend"):
        select_backend("theano")
    assert select_backend(keras.backend.backend()) == keras.backend.backend()


def test_a_bad_backend_is_one_line_and_exit_2():
    run = subprocess.run([sys.executable, "-m", "cifar_automl", "--backend", "theano", "spaces"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.strip() == (
        "cifar-automl: error: unknown backend 'theano' (choose from tensorflow, jax, torch)")


def test_the_backend_flag_reaches_keras():
    """`cifar-automl --backend jax` runs Keras on JAX (when JAX is installed)."""
    pytest.importorskip("jax")
    code = ("import sys; sys.argv = ['cifar-automl', '--backend', 'jax', 'spaces']; "
            "from cifar_automl.__main__ import main; code = main(); import keras; "
            "print(keras.backend.backend(), code)")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-1000:]
    assert run.stdout.strip().splitlines()[-1] == "jax 0"


@pytest.mark.parametrize("error, oom", [
    (MemoryError(), True),
    (type("ResourceExhaustedError", (Exception,), {})("OOM when allocating tensor"), True),
    (RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8.00GiB"), True),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (ValueError("Negative dimension size"), False),
])
def test_out_of_memory_is_recognised_on_every_backend(error, oom):
    assert is_out_of_memory(error) is oom


def test_the_source_commit_is_the_checkouts_and_empty_without_git(monkeypatch):
    import re

    from cifar_automl import runtime

    commit = runtime.source_commit()
    assert re.fullmatch(r"[0-9a-f]{7,40}", commit), commit  # the tests run from a checkout

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert runtime.source_commit() == ""
