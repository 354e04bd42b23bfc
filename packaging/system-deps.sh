#!/usr/bin/env bash
# Install the Debian/Ubuntu packages PercepNet Desktop needs, only those that are missing.
# Usage: packaging/system-deps.sh PYTHON [--run|--test|--package]
#   --run (default): what the app needs at run time: PortAudio, libsndfile, ALSA's pulse
#     plugin, and the X11 libraries Qt's xcb platform plugin links to (without them the
#     window aborts on an X11 desktop: "could not load the Qt platform plugin xcb").
#   --test: also the real servers the test suite starts itself: PulseAudio, PipeWire with
#     wireplumber and pipewire-pulse (on a private D-Bus), rtkit and polkitd (on a private
#     system bus: the audio threads' priority), an X server (Xvfb) for the window, headless
#     Chromium as a meeting client, and desktop-file-validate.
#   --package: the run set plus what `make package` needs (PyInstaller uses objdump).
# Fails loudly (exit 1) when something is missing and cannot be installed.
set -euo pipefail
python=${1:-python3}
mode=${2:---run}

# Qt 6's xcb platform plugin: libxcb-cursor0 (Qt >= 6.5), icccm, keysyms, xkbcommon-x11,
# and the rest of the xcb family it dlopens; libegl1/libgl1/libfontconfig1 for the widgets.
qt_x11=(libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0
        libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0 libxcb-xkb1
        libxkbcommon-x11-0 libxkbcommon0 libegl1 libgl1 libfontconfig1 libdbus-1-3)
pkgs=(libportaudio2 libasound2-plugins libsndfile1 pulseaudio-utils "${qt_x11[@]}")
case "$mode" in
  --run) ;;
  --test)
    pkgs+=(pulseaudio pipewire pipewire-bin pipewire-pulse wireplumber dbus rtkit
           xvfb xauth chromium desktop-file-utils espeak-ng) ;;
  --package) pkgs+=(binutils) ;;
  *) echo "system-deps: unknown mode $mode (--run, --test or --package)" >&2; exit 2 ;;
esac
# venv/ensurepip are split out of Debian's python3 package.
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  pkgs+=(python3-venv)
fi
# pesq (PESQ-WB in the tests) builds from source: it needs a C compiler and Python.h.
if [ "$mode" != --run ]; then
  if ! command -v cc >/dev/null 2>&1; then
    pkgs+=(gcc)
  fi
  if ! "$python" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' >/dev/null 2>&1; then
    pkgs+=(python3-dev)
  fi
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
