#!/usr/bin/env bash
# Install the Debian/Ubuntu packages PercepNet Desktop needs, only those that are missing.
# Usage: packaging/system-deps.sh PYTHON [--package]
#   --package: also what `make package` needs (PyInstaller uses objdump from binutils) and
#   the X11 libraries Qt's xcb platform plugin links to that are not always installed, so
#   that PyInstaller copies them into the bundle (desktops without them still start it).
# Fails loudly (exit 1) when something is missing and cannot be installed.
set -euo pipefail
python=${1:-python3}
for_package=0
[ "${2:-}" = "--package" ] && for_package=1

# desktop-file-utils: tests/packaging validate the .desktop entries with desktop-file-validate.
pkgs=(libportaudio2 libasound2-plugins libsndfile1 pulseaudio pulseaudio-utils desktop-file-utils)
if [ "$for_package" -eq 1 ]; then
  pkgs+=(binutils libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0)
fi
# venv/ensurepip are split out of Debian's python3 package.
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  pkgs+=(python3-venv)
fi
# pesq (PESQ-WB in the tests) builds from source: it needs a C compiler and Python.h.
if ! command -v cc >/dev/null 2>&1; then
  pkgs+=(gcc)
fi
if ! "$python" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' >/dev/null 2>&1; then
  pkgs+=(python3-dev)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "system-deps: not a Debian/Ubuntu system; make sure these are installed: ${pkgs[*]}" >&2
  exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "system-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "system-deps: missing ${missing[*]} and no root or sudo to install them." >&2
  echo "  run: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
