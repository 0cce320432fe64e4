#!/usr/bin/env bash
# The GPU path on a machine with JAX and/or PyTorch (CUDA builds) but no TensorFlow, no Keras and no
# package index: at most 8 minutes, one benchmarks/gpu_check.py run per backend found there.
#
#   bash benchmarks/gpu_check.sh --prepare   # here, with internet or a package index: wheels + data
#                                            #   into .gpu-check/ (git-ignored, ~45 MiB), which travels
#   bash benchmarks/gpu_check.sh             # on the GPU machine, in a copy of the working tree
#   bash benchmarks/gpu_check.sh --cpu       # the same run on this CPU (TensorFlow, and JAX if installed)
#
# Prints one JSON line of figures per backend (images/s, GPU memory per worker, trials per minute,
# test accuracy); benchmarks/RESULTS.md keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.gpu-check
MODE=${1:-gpu}

if [ "$MODE" = "--prepare" ]; then
    rm -rf "$DIR/wheels" "$DIR/data"
    mkdir -p "$DIR/wheels" "$DIR/data"
    # the package itself (the YAML spaces ship inside its wheel) and what it imports beyond what a
    # CUDA JAX / PyTorch machine has (numpy, scipy, ml_dtypes come with JAX; they are left out)
    pip wheel -q --no-deps -w "$DIR/wheels" .
    pip download -q -d "$DIR/wheels" --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any \
        keras==3.15.1 optuna==5.0.0 pandas==3.1.1 scikit-learn==1.9.1 pyyaml==6.0.3 pillow==13.0.0 \
        tqdm==4.70.1 tabulate==0.10.0 requests cloudpickle
    rm -f "$DIR"/wheels/numpy-* "$DIR"/wheels/scipy-* "$DIR"/wheels/ml_dtypes-*
    # 12,000 Fashion-MNIST training images (searched) and the official 10,000 test images, as IDX files
    python - "$DIR/data" <<'PY'
import gzip, sys
from pathlib import Path
src, out = Path("/usr/share/datasets/fashion-mnist"), Path(sys.argv[1])
for name, keep, header in [("train-images-idx3-ubyte.gz", 12000, 16), ("train-labels-idx1-ubyte.gz", 12000, 8),
                           ("t10k-images-idx3-ubyte.gz", 10000, 16), ("t10k-labels-idx1-ubyte.gz", 10000, 8)]:
    data = gzip.open(src / name).read()
    size = 784 if header == 16 else 1
    head = bytearray(data[:header]); head[4:8] = keep.to_bytes(4, "big")
    (out / name).write_bytes(gzip.compress(bytes(head) + data[header:header + keep * size]))
PY
    du -sh "$DIR"
    exit 0
fi

deadline=$((SECONDS + 8 * 60))
if [ "$MODE" = "--cpu" ]; then
    PY=${PYTHON:-python}
    backends="tensorflow"
    "$PY" -c "import jax" 2>/dev/null && backends="$backends jax"
    extra=(--cpu --minutes 1 --subset 3000 --retrain-epochs 1)
else
    # the prepared wheels into a folder put first on PYTHONPATH, over the machine's own JAX / PyTorch, with
    # nothing from an index (a venv would not do: the machine's python3 is itself a venv, and a venv made
    # from it sees the base interpreter's packages, not the JAX and PyTorch installed beside it)
    SITE=${SITE:-/tmp/gpu-check-site}
    ${PYTHON:-python3} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$DIR"/wheels/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    PY=${PYTHON:-python3}
    backends=""
    for b in jax torch; do "$PY" -c "import $b" 2>/dev/null && backends="$backends $b"; done
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    extra=(--minutes 1.5)
fi
for b in $backends; do
    left=$((deadline - SECONDS))
    [ "$left" -lt 90 ] && { echo "{\"backend\": \"$b\", \"skipped\": \"under 90 s left of 8 min\"}"; continue; }
    timeout "$left" "$PY" benchmarks/gpu_check.py --backend "$b" --data-dir "$DIR/data" "${extra[@]}" \
        || echo "{\"backend\": \"$b\", \"failed\": $?}"
done
