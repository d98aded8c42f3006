# shellcheck shell=bash
# Shared helpers for the infra/ scripts. Source it; do not run it.
#
#   log MSG...                      progress line on stderr, prefixed with the calling script
#   die MSG...                      log and exit 1
#   as_root CMD...                  run CMD as root (directly, or through sudo when not root)
#   find_bin NAME                   print the path of NAME (PATH, then the sbin dirs) or fail
#   apt_install_if_missing BIN PKG  apt-get install PKG unless BIN is already installed
#   port_open HOST PORT             succeed when HOST:PORT accepts a TCP connection
#   wait_for_port HOST PORT SECS [PID]
#                                   wait until port_open succeeds; fail after SECS seconds,
#                                   or as soon as process PID (the server being waited for) exits
#
# Only needs bash and coreutils, so it works on a bare Debian 12 machine.

_PC_LOG_TAG="${_PC_LOG_TAG:-$(basename "${BASH_SOURCE[1]:-$0}" .sh)}"

log() { printf '[%s] %s\n' "$_PC_LOG_TAG" "$*" >&2; }

die() {
  log "error: $*"
  exit 1
}

as_root() {
  if [[ ${EUID} -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run \`$*\` (not root, and sudo is not installed)"
  fi
}

# Debian puts daemons in /usr/sbin, which is not on a normal user's PATH.
find_bin() {
  local name=$1 dir
  if command -v "$name" 2>/dev/null; then
    return 0
  fi
  for dir in /usr/local/sbin /usr/sbin /sbin; do
    if [[ -x "$dir/$name" ]]; then
      printf '%s\n' "$dir/$name"
      return 0
    fi
  done
  return 1
}

_PC_APT_UPDATED=0

# `apt-get update` at most once per script, and not at all when the package
# lists were refreshed within the last hour (e.g. by a sibling ensure-* script).
_apt_update_once() {
  if [[ ${_PC_APT_UPDATED} -eq 1 ]]; then
    return 0
  fi
  if [[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 -print -quit 2>/dev/null)" ]]; then
    _PC_APT_UPDATED=1
    return 0
  fi
  log "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  _PC_APT_UPDATED=1
}

apt_install_if_missing() {
  local bin=$1 pkg=$2
  if find_bin "$bin" >/dev/null; then
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "\`$bin\` is missing and apt-get is not available; install \`$pkg\` yourself"
  _apt_update_once
  log "installing $pkg (for \`$bin\`)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
  find_bin "$bin" >/dev/null || die "installed $pkg but \`$bin\` is still missing"
}

port_open() {
  local host=$1 port=$2
  # A subshell so the descriptor is closed again; `timeout` guards against
  # addresses that drop packets instead of refusing.
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null
}

wait_for_port() {
  local host=$1 port=$2 secs=$3 pid=${4:-}
  local deadline=$((SECONDS + secs))
  until port_open "$host" "$port"; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.2
  done
}
