#!/usr/bin/env bash
# Install mmcv 2.1.0 with compiled ops into the venv given as $1.
# Prefers a prebuilt wheel in ../shared/wheels (or $CMCGNS_WHEELS); otherwise builds the sdist
# once (fixing -std=c++17 -> -std=c++20 for torch 2.14) and caches the wheel for later venvs.
set -euo pipefail
venv="$1"
py="$venv/bin/python"
if "$py" -c "import mmcv, mmcv.ops" 2>/dev/null; then exit 0; fi
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/cmcgns/wheels"
for dir in "${CMCGNS_WHEELS:-}" "$here/../shared/wheels" "$cache"; do
  [ -n "$dir" ] || continue
  wheel=$(ls "$dir"/mmcv-2.1.0-cp311-*linux_x86_64.whl 2>/dev/null | head -n1 || true)
  if [ -n "$wheel" ]; then
    "$py" -m pip install -q "$wheel"
    exit 0
  fi
done
echo "no prebuilt mmcv wheel found: building mmcv 2.1.0 from source (15-20 min on 2 cores)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m pip download -q --no-deps --no-binary :all: mmcv==2.1.0 -d "$work"
tar -xzf "$work"/mmcv-2.1.0.tar.gz -C "$work"
sed -i 's/-std=c++17/-std=c++20/g' "$work"/mmcv-2.1.0/setup.py
(cd "$work"/mmcv-2.1.0 && MAX_JOBS=2 MMCV_WITH_OPS=1 "$py" -m pip wheel -q --no-build-isolation --no-deps -w "$cache" .)
"$py" -m pip install -q "$cache"/mmcv-2.1.0-*.whl
