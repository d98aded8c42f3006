#!/usr/bin/env bash
# Make sure nats-server is installed and that a JetStream-enabled server listens
# on 127.0.0.1:$NATS_PORT (default 4222). Does nothing if something already
# listens there. Idempotent.
#
# Env: NATS_PORT (4222), NATS_STORE_DIR, NATS_LOG_FILE (defaults below).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

host=127.0.0.1
port="${NATS_PORT:-4222}"

apt_install_if_missing nats-server nats-server
nats_bin="$(find_bin nats-server)"

if port_open "$host" "$port"; then
  log "nats: already listening on $host:$port"
  exit 0
fi

if [[ ${EUID} -eq 0 ]]; then
  base=/var/lib/nats-server
  default_log="/var/log/nats-server-$port.log"
else
  base="${TMPDIR:-/tmp}/portcullis-nats"
  default_log="$base/$port.log"
fi
store_dir="${NATS_STORE_DIR:-$base/$port}"
log_file="${NATS_LOG_FILE:-$default_log}"
mkdir -p "$store_dir" "$(dirname "$log_file")"

log "nats: starting $nats_bin on $host:$port (JetStream store $store_dir, log $log_file)"
# setsid + closed stdio: the server outlives this script and holds no pipe of
# the caller open (a CI runner would otherwise wait for it).
setsid "$nats_bin" -a "$host" -p "$port" -js -sd "$store_dir" -l "$log_file" -P "$store_dir/nats-server.pid" \
  </dev/null >>"$log_file" 2>&1 &
pid=$!

if ! wait_for_port "$host" "$port" 10 "$pid"; then
  if kill -0 "$pid" 2>/dev/null; then
    log "nats: server did not accept connections on $host:$port within 10s; last log lines:"
  else
    log "nats: server exited before accepting connections; last log lines:"
  fi
  tail -n 20 "$log_file" >&2 || true
  exit 1
fi
log "nats: ready on $host:$port (pid $pid)"
