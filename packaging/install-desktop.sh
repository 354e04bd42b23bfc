#!/usr/bin/env bash
# Install (or remove) PercepNet Desktop's Linux desktop integration for the current user:
#   applications/percepnet.desktop              menu entry          ($XDG_DATA_HOME, ~/.local/share)
#   icons/hicolor/scalable/apps/percepnet.svg   its icon            ($XDG_DATA_HOME)
#   autostart/percepnet.desktop                 start at login, minimized to the tray, last
#                                               devices (`percepnet gui --minimized`)
#                                                                    ($XDG_CONFIG_HOME, ~/.config)
#   systemd/user/percepnet.service              headless service (`percepnet run`), installed
#                                               but not enabled     ($XDG_CONFIG_HOME)
# The list of what was written is kept in $XDG_DATA_HOME/percepnet/installed-files;
# --uninstall removes exactly those files (and the folders it created, when empty).
#
# Usage: install-desktop.sh [--exec PATH] [--no-autostart] [--no-service]
#        install-desktop.sh --uninstall
#   --exec PATH     the percepnet command the entries run (default: the bundle's own
#                   executable when this script sits in dist/percepnet/, else the checkout's
#                   .venv/bin/percepnet, else `percepnet` found in PATH)
#   DESTDIR=DIR     prefix every target path with DIR (packagers, tests); systemctl is then
#                   not called (nor with PERCEPNET_NO_SYSTEMCTL=1)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
templates="$here/linux"
uninstall=0 autostart=1 service=1 exec_path=""
while [ $# -gt 0 ]; do
  case "$1" in
    --uninstall) uninstall=1 ;;
    --no-autostart) autostart=0 ;;
    --no-service) service=0 ;;
    --exec) [ $# -ge 2 ] || { echo "install-desktop: --exec needs a path" >&2; exit 2; }
            exec_path=$2; shift ;;
    --exec=*) exec_path=${1#--exec=} ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' \
                 "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "install-desktop: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

destdir=${DESTDIR:-}
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
config_home=${XDG_CONFIG_HOME:-$HOME/.config}
manifest="$destdir$data_home/percepnet/installed-files"

systemctl_user() {
  # Best effort, and only for a real install (not into DESTDIR).
  if [ -z "$destdir" ] && [ -z "${PERCEPNET_NO_SYSTEMCTL:-}" ] \
     && command -v systemctl >/dev/null 2>&1; then
    systemctl --user "$@" >/dev/null 2>&1 || true
  fi
}

if [ "$uninstall" -eq 1 ]; then
  if [ ! -f "$manifest" ]; then
    echo "install-desktop: nothing to uninstall ($manifest not found)"
    exit 0
  fi
  if grep -q '^f .*/systemd/user/percepnet\.service$' "$manifest"; then
    systemctl_user disable --now percepnet.service
  fi
  # Files first, then the folders this script created, deepest first, only when empty.
  dirs=()
  if [ -f "$manifest.dirs" ]; then
    while IFS= read -r line; do dirs+=("${line:2}"); done < <(grep '^d ' "$manifest.dirs")
  fi
  while IFS= read -r line; do
    [ "${line:0:2}" = "f " ] || continue
    f=${line:2}
    if [ -f "$f" ] || [ -L "$f" ]; then rm -f -- "$f" && echo "removed $f"; fi
  done <"$manifest"
  rm -f -- "$manifest" "$manifest.dirs"
  if [ ${#dirs[@]} -gt 0 ]; then
    while IFS= read -r d; do
      rmdir -- "$d" 2>/dev/null || true
    done < <(printf '%s\n' "${dirs[@]}" | sort -r)
  fi
  systemctl_user daemon-reload
  exit 0
fi

# The command the entries run.
if [ -z "$exec_path" ]; then
  if [ -x "$here/percepnet" ] && [ -f "$here/percepnet" ]; then
    exec_path="$here/percepnet"                    # dist/percepnet/install-desktop.sh
  elif [ -x "$here/../.venv/bin/percepnet" ]; then
    exec_path="$here/../.venv/bin/percepnet"       # packaging/ of a checkout after `make run`
  elif command -v percepnet >/dev/null 2>&1; then
    exec_path=$(command -v percepnet)
  else
    echo "install-desktop: no percepnet command found; pass --exec PATH" >&2
    exit 1
  fi
fi
case "$exec_path" in /*) ;; *) exec_path="$(cd "$(dirname "$exec_path")" && pwd)/$(basename "$exec_path")" ;; esac
exec_path=$(cd "$(dirname "$exec_path")" && pwd -P)/$(basename "$exec_path")
if [ ! -x "$exec_path" ]; then
  echo "install-desktop: $exec_path is not an executable file" >&2
  exit 1
fi
# Both the desktop-entry Exec= and systemd's ExecStart= need these escaped; refuse them
# rather than escape them two different ways.
case "$exec_path" in
  *[\"\`\$\\%\']*|*$'\n'*)
    echo "install-desktop: the path $exec_path contains a quote, \$, \\ or %; move it" >&2
    exit 1 ;;
esac
quoted=$exec_path
case "$exec_path" in *" "*) quoted="\"$exec_path\"" ;; esac

created_dirs=()
installed=()
make_dir() {  # mkdir -p that remembers each folder it created
  local d=$1 missing=()
  while [ ! -d "$d" ]; do missing+=("$d"); d=$(dirname "$d"); done
  local i
  for ((i=${#missing[@]}-1; i>=0; i--)); do
    mkdir -- "${missing[i]}"
    created_dirs+=("${missing[i]}")
  done
}

# install_file TEMPLATE TARGET: copy, with the first word of Exec=/ExecStart= (the bare
# `percepnet` of the templates) replaced by the absolute command.
install_file() {
  local src=$1 dst=$2
  make_dir "$(dirname "$dst")"
  local tmp="$dst.tmp.$$"
  awk -v exe="$quoted" '
    /^(Exec|ExecStart)=percepnet( |$)/ { sub(/=percepnet/, "=" exe) }
    { print }' "$src" >"$tmp"
  chmod 644 "$tmp"
  mv -f -- "$tmp" "$dst"
  installed+=("$dst")
  echo "installed $dst"
}

# A previous install's files stay listed (re-running updates them in place).
previous_files=() previous_dirs=()
if [ -f "$manifest" ]; then
  while IFS= read -r line; do previous_files+=("${line:2}"); done < <(grep '^f ' "$manifest")
fi
if [ -f "$manifest.dirs" ]; then
  while IFS= read -r line; do previous_dirs+=("${line:2}"); done < <(grep '^d ' "$manifest.dirs")
fi

apps="$destdir$data_home/applications"
install_file "$templates/percepnet.desktop" "$apps/percepnet.desktop"
install_file "$templates/percepnet.svg" "$destdir$data_home/icons/hicolor/scalable/apps/percepnet.svg"
if [ "$autostart" -eq 1 ]; then
  install_file "$templates/percepnet-autostart.desktop" "$destdir$config_home/autostart/percepnet.desktop"
fi
if [ "$service" -eq 1 ]; then
  install_file "$templates/percepnet.service" "$destdir$config_home/systemd/user/percepnet.service"
fi

make_dir "$(dirname "$manifest")"
printf '%s\n' "${previous_files[@]+"${previous_files[@]}"}" "${installed[@]}" \
  | sed '/^$/d' | sort -u | sed 's/^/f /' >"$manifest"
printf '%s\n' "${previous_dirs[@]+"${previous_dirs[@]}"}" "${created_dirs[@]+"${created_dirs[@]}"}" \
  | sed '/^$/d' | sort -u | sed 's/^/d /' >"$manifest.dirs"
systemctl_user daemon-reload
echo "PercepNet Desktop: menu entry and autostart run $exec_path"
if [ "$service" -eq 1 ]; then
  echo "headless service (instead of the window at login): systemctl --user enable --now percepnet.service"
fi
