#!/usr/bin/env bash
# Every GPU figure this project records, in one command on one GPU (H100 / H200):
#
#   bash benchmarks/gpu_figures.sh [OUT]
#
# Runs, in order: the training step at arc1 shapes in eager and compiled mode (examples/s, tokens/s,
# MFU against the matmul rate measured in the same run, peak memory), prediction at arc1 shape in
# both modes (candidates/s, MFU), and a 1-GPU DeepSpeed ZeRO-2 training run of the tiny preset.
# Each benchmark appends to benchmarks/RESULTS.md; that file and the logs are copied to OUT (default
# $OUT, else benchmarks/gpu-out). Needs torch with CUDA and this project's requirements; on a machine
# without a package index, put their wheels in .whl/ (see the README's Benchmarks section).
# Sizes can be changed: PRESET (arc1), TRAIN_BATCH (192, the reference's per-GPU share of 768 over
# 4 GPUs), TRAIN_STEPS (10), PREDICT_BATCH (256), PREDICT_BATCHES (8).
set -euo pipefail
out=${1:-${OUT:-benchmarks/gpu-out}}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/arc_trm_site .whl/*.whl
  export PYTHONPATH=/tmp/arc_trm_site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')" | tee "$out/device.log"
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv >>"$out/device.log" 2>&1 || true
python3 benchmarks/train_throughput.py --preset "${PRESET:-arc1}" --batch "${TRAIN_BATCH:-192}" \
  --steps "${TRAIN_STEPS:-10}" --warmup 3 --modes eager,compiled 2>&1 | tee "$out/train.log"
python3 benchmarks/predict_throughput.py --shapes "${PRESET:-arc1}" --batch "${PREDICT_BATCH:-256}" \
  --batches "${PREDICT_BATCHES:-8}" --modes eager,compiled 2>&1 | tee "$out/predict.log"
rm -rf /tmp/arc_trm_zero2
python3 -m accelerate.commands.launch --config_file accelerate_configs/deepspeed_zero2.yaml --num_processes 1 \
  -m arc_trm.train train.steps=20 run.tracker=none run.dir=/tmp/arc_trm_zero2 2>&1 | tail -n 20 | tee "$out/zero2.log"
cp benchmarks/RESULTS.md "$out/RESULTS.md"
