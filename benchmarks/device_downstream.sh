#!/usr/bin/env bash
# Downstream checks of issue 12 for a lent CUDA machine: host memory of the streamed linear probe
# (covidx-cls, --protocol mgca, encoder on the GPU, 8 loader workers) at 2,000 and 20,000 images,
# with and without giving freed heap pages back. Needs .gpu/whl (bash benchmarks/device_check.sh
# --prepare); run from the repository root, carrying .gpu:
#   bash benchmarks/device_downstream.sh     # logs under $OUT (default /tmp/device-downstream)
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
OUT="${OUT:-/tmp/device-downstream}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH="$root:$root/.gpu/site:/tmp/site" PYTHONUNBUFFERED=1 CMCGNS_DISABLE_EXTERNAL_PLUGINS=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc
for run in "2000" "20000" "20000 --no-release"; do
  set -- $run
  name="memory-$1${2:+-no-release}"
  t0=$SECONDS
  timeout 200 python3 benchmarks/downstream_memory.py --rows "$1" ${2:-} --workers 8 --device cuda >"$OUT/$name.log" 2>&1
  echo "== $name: exit $? in $((SECONDS - t0)) s"
  tail -n 2 "$OUT/$name.log"
done
