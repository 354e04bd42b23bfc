#!/usr/bin/env bash
# Smoke test of the one-folder bundle (`make package-smoke` builds it first):
#   1. contents: kernel sources, model, demo clip and band layout present; training, test and
#      benchmark code, torch/scipy/matplotlib/pytest and the trimmed Qt parts absent; no
#      bundled library needs one that was trimmed away; the xcb plugin's X11 libraries bundled
#   2. `percepnet --version`
#   3. `percepnet run --input-device demo --output-device null --duration 3`, first with an
#      empty numba cache (cold: every kernel compiles), then warm
#   4. `percepnet gui --self-test 3` under QT_QPA_PLATFORM=offscreen: opens the window,
#      processes the demo clip, exits 0 (warm; SMOKE_COLD_GUI=1 also times it cold)
# Everything runs from a scratch HOME/XDG tree with a minimal environment and the working
# directory outside the repository, as on a machine without Python or the sources. Prints
# the bundle size and the start-up times.
# Usage: packaging/smoke.sh [BUNDLE_DIR]   (default dist/percepnet)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
bundle=$(cd "${1:-$root/dist/percepnet}" && pwd)
exe="$bundle/percepnet"
internal="$bundle/_internal"
[ -x "$exe" ] || { echo "smoke: $exe not found; run make package" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
timings=()

# run NAME CACHE_DIR ARGS...: the bundle in a clean environment, timed; output in $scratch/NAME.log
run() {
  local name=$1 cache=$2; shift 2
  local start end rc=0
  start=$(date +%s.%N)
  (cd "$scratch" && env -i PATH=/usr/bin:/bin HOME="$scratch/home" LANG=C.UTF-8 \
      XDG_CACHE_HOME="$cache" XDG_CONFIG_HOME="$scratch/config" \
      XDG_RUNTIME_DIR="$scratch/runtime" TMPDIR="$scratch/tmp" QT_QPA_PLATFORM=offscreen \
      "$exe" "$@" >"$scratch/$name.log" 2>&1) || rc=$?
  end=$(date +%s.%N)
  timings+=("$(awk -v n="$name" -v a="$start" -v b="$end" 'BEGIN { printf "%-34s %6.2f s", n, b - a }')")
  if [ "$rc" -ne 0 ]; then
    cat "$scratch/$name.log" >&2
    fail "$name exited $rc"
  fi
}
mkdir -p "$scratch/home" "$scratch/config" "$scratch/runtime" "$scratch/tmp"
chmod 700 "$scratch/runtime"

echo "== contents"
for f in percepnet/dsp/fft.py percepnet/dsp/network.py percepnet/dsp/denoiser.py \
         percepnet/dsp/data/erb34.json percepnet/app/assets/demo_speech.ogg \
         percepnet/app/assets/demo_noise.ogg; do
  [ -f "$internal/$f" ] || fail "$f missing from the bundle"
done
for f in "$root"/weights/*.json "$root"/weights/*.npz; do
  [ -e "$f" ] || continue
  cmp -s "$f" "$internal/percepnet/weights/$(basename "$f")" \
    || fail "weights/$(basename "$f") missing from the bundle or stale"
done
for d in torch scipy matplotlib pytest _pytest hypothesis pyroomacoustics PIL \
         percepnet/training percepnet/benchmarks percepnet/tests PyQt6/Qt6/translations \
         PyQt6/Qt6/qml; do
  [ ! -e "$internal/$d" ] || fail "$d should not be in the bundle"
done
for lib in libQt6Pdf libQt6Qml libQt6Quick libQt6WebEngineCore libQt6Network; do
  ! ls "$internal/PyQt6/Qt6/lib/$lib".so* >/dev/null 2>&1 || fail "$lib should not be in the bundle"
done
# every bundled Qt library and plugin still finds the Qt libraries it links to
missing=$(find "$internal/PyQt6" -name '*.so*' -type f -print0 \
  | LD_LIBRARY_PATH="$internal/PyQt6/Qt6/lib:$internal" xargs -0 -n 20 ldd 2>/dev/null \
  | grep 'libQt6.* => not found' | sort -u || true)
[ -z "$missing" ] || fail "trimmed Qt libraries still needed: $missing"
# the X11 libraries of the xcb platform plugin travel with the bundle (not every desktop
# has libxcb-icccm4, libxcb-keysyms1, libxcb-cursor0 installed; libxcb itself is the
# system's, which PyInstaller never bundles)
xcb_outside=$(LD_LIBRARY_PATH="$internal/PyQt6/Qt6/lib:$internal" ldd \
    "$internal/PyQt6/Qt6/plugins/platforms/libqxcb.so" "$internal"/PyQt6/Qt6/lib/libQt6XcbQpa.so* \
  | awk '$1 ~ /^lib(xcb-|xkb|X11-xcb)/ && index($3, "'"$internal"'") != 1 { print $1 " => " $3 }' \
  | sort -u)
[ -z "$xcb_outside" ] || fail "xcb libraries not bundled (packaging/system-deps.sh --package): $xcb_outside"

echo "== --version"
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/__init__.py")
run "--version (empty numba cache)" "$scratch/cache-cold" --version
grep -qx "percepnet $version" "$scratch/--version (empty numba cache).log" \
  || fail "--version printed $(cat "$scratch/--version (empty numba cache).log")"
run "--version (warm)" "$scratch/cache-cold" --version

echo "== run --duration 3 (demo clip -> null output)"
run "run --duration 3 (cold cache)" "$scratch/cache-run" \
  run --input-device demo --output-device null --duration 3 --status-interval 1
grep -q '^stopped: .*errors=0' "$scratch/run --duration 3 (cold cache).log" \
  || { cat "$scratch/run --duration 3 (cold cache).log"; fail "run reported errors"; }
ls "$scratch"/cache-run/percepnet/numba/*/ >/dev/null 2>&1 \
  || fail "no numba cache written under XDG_CACHE_HOME/percepnet/numba"
run "run --duration 3 (warm cache)" "$scratch/cache-run" \
  run --input-device demo --output-device null --duration 3 --status-interval 1
tail -n 3 "$scratch/run --duration 3 (warm cache).log"

echo "== gui --self-test 3 (offscreen)"
if [ "${SMOKE_COLD_GUI:-0}" = 1 ]; then
  run "gui --self-test 3 (cold cache)" "$scratch/cache-gui" gui --self-test 3
fi
run "gui --self-test 3 (warm cache)" "$scratch/cache-run" gui --self-test 3
tail -n 5 "$scratch/gui --self-test 3 (warm cache).log"

echo "== no writable cache directory"
# numba must still find a writable cache (packaging/rthook_numba_cache.py falls back to
# the temporary directory); /proc/... cannot be created, even by root.
run "--version (unwritable cache dir)" /proc/percepnet-no-cache --version
ls -d "$scratch"/tmp/percepnet-numba-*/* >/dev/null 2>&1 || fail "no fallback numba cache dir"

echo "== summary"
du -sh "$bundle"
for t in "${timings[@]}"; do echo "$t"; done
echo "smoke: OK"
