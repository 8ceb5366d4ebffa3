#!/usr/bin/env bash
# The whole GPU check of issue 14 in one command, on a machine whose Python already has
# jax with CUDA, optax, chex, numpy, pytest, tqdm and (for the baseline) torch:
#
#   bash scripts/gpu_check.sh [STEP ...]      # steps: env gpu-tests bench autotune compat
#
# From the repository root, with jaxcnn on PYTHONPATH (set here) and the MNIST IDX files
# in .gpu-data/mnist (git-ignored: `mkdir -p .gpu-data && cp -r ~/.cache/jaxcnn/mnist
# .gpu-data/`). Logs and JSON go to $OUT (default gpu-check/). Every step has a time
# limit and the steps together stay under 6 minutes, so that one run plus one rerun of
# the failed steps fit a 15-minute device budget (docs/benchmarks.md, "GPU").
set -uo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-gpu-check}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
export JAXCNN_DATA=${JAXCNN_DATA:-$PWD/.gpu-data}
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(env gpu-tests bench autotune compat)

run_step() {  # name, seconds, command...: log to $out/NAME.log, status to $out/status.txt
  local name=$1 limit=$2 rc=0
  shift 2
  echo "==> $name (limit ${limit} s): $*"
  local started=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1 || rc=$?
  echo "$name rc=$rc seconds=$((SECONDS - started))" | tee -a "$out/status.txt"
  tail -n 25 "$out/$name.log"
}

for step in "${steps[@]}"; do
  case $step in
    env)  # the device and every version the numbers depend on
      run_step env 20 bash -c "nvidia-smi; $python -c 'import jax, jaxlib, optax, numpy; \
print(jax.__version__, jaxlib.__version__, optax.__version__, numpy.__version__); \
print(jax.devices()); import torch; print(torch.__version__, torch.cuda.is_available())'; \
ls -l \"\$JAXCNN_DATA/mnist\"" ;;
    gpu-tests)  # ops, manual gradients, training and the compile cache on the GPU
      run_step gpu-tests 90 "$python" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py ;;
    bench)  # jaxcnn fit / CLI cold and cached / bf16 fit vs PyTorch eager and torch.compile
      run_step bench 200 "$python" -m benchmarks --models mnist-cnn,shapes --rounds 1 --bf16 \
        --timeout 100 --json "$out/bench.json" ;;
    autotune)  # the cold first epoch without XLA's GPU autotuning (the other end of the trade)
      run_step autotune 30 env XLA_FLAGS=--xla_gpu_autotune_level=0 \
        "$python" -m benchmarks._fit_child mnist-cnn 3 ;;
    compat)  # the default suite under this machine's jax (0.11.x), on its CPUs, in parallel
      run_step compat 45 env JAX_PLATFORMS=cpu "$python" -m pytest -q -x -n 12 \
        -p no:cacheprovider -m "not slow and not gpu" ;;
    *) echo "unknown step $step (steps: env gpu-tests bench autotune compat)" >&2; exit 2 ;;
  esac
done
echo "==> done; $out/status.txt:"
cat "$out/status.txt"
