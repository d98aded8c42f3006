#!/usr/bin/env bash
# Run Portcullis distributed on one machine (SPEC §9): NATS JetStream as the
# event store, the admin API alone, MQTT_EDGES MQTT edges and one AMQP edge as
# separate processes that follow the store and report their applied positions
# over NATS ("revocation confirmed" waits for all of them). The same commands,
# with other addresses, run the processes on several machines.
#
#   bash infra/distributed.sh start    # set-up, then start everything; prints the endpoints
#   bash infra/distributed.sh status   # which processes run
#   bash infra/distributed.sh stop     # stop them (the JetStream data stays in $RUN_DIR)
#
# Env (defaults):
#   RUN_DIR=./.data/distributed   data dir of the admin API (master.key, root-credentials.json), pids, logs
#   NATS_URL=nats://127.0.0.1:4222 the JetStream store; started by infra/ensure-nats.sh when local and absent
#   ADMIN_PORT=8281  MQTT_EDGES=2  MQTT_PORT=1893 (then 1894, …)  AMQP_PORT=5683
#   AMQP_UPSTREAM=amqp://guest:guest@127.0.0.1:5672 (the AMQP edge starts only if it is reachable)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source infra/lib.sh

RUN_DIR="${RUN_DIR:-$root/.data/distributed}"
NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
ADMIN_PORT="${ADMIN_PORT:-8281}"
MQTT_EDGES="${MQTT_EDGES:-2}"
MQTT_PORT="${MQTT_PORT:-1893}"
AMQP_PORT="${AMQP_PORT:-5683}"
AMQP_UPSTREAM="${AMQP_UPSTREAM:-amqp://guest:guest@127.0.0.1:5672}"
cli="$root/packages/cli/bin/portcullis.mjs"

# Start one background process: name, then the command; its pid goes to RUN_DIR/<name>.pid.
spawn() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.log" &
  echo $! >"$RUN_DIR/$name.pid"
}

# Wait until a process prints its ready line; fail with its log otherwise.
await_ready() {
  local name=$1 deadline=$((SECONDS + 60))
  until grep -q "ready" "$RUN_DIR/$name.out" 2>/dev/null; do
    if ! kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null || ((SECONDS >= deadline)); then
      log "$name did not start; its output:"
      cat "$RUN_DIR/$name.out" "$RUN_DIR/$name.log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
  grep -v '^\$ ' "$RUN_DIR/$name.out" | grep -v 'ready (Ctrl-C' >&2 || true
}

start() {
  bash infra/setup.sh
  local hostport=${NATS_URL#nats://}
  if [[ ${hostport%%:*} == 127.0.0.1 ]]; then
    NATS_PORT="${hostport##*:}" bash infra/ensure-nats.sh
  fi
  mkdir -p "$RUN_DIR"
  log "admin API on the JetStream store at $NATS_URL"
  spawn admin node "$cli" serve --data-dir "$RUN_DIR" --store jetstream --nats "$NATS_URL" \
    --admin-port "$ADMIN_PORT" --no-mqtt --no-amqp --log-file -
  await_ready admin
  local i
  for ((i = 0; i < MQTT_EDGES; i++)); do
    spawn "mqtt-$((i + 1))" node "$cli" mqtt-edge --nats "$NATS_URL" --master-key-file "$RUN_DIR/master.key" \
      --port "$((MQTT_PORT + i))" --edge-id "mqtt-$((i + 1))" --health-port 0
    await_ready "mqtt-$((i + 1))"
  done
  local account
  account="$(node -p "require('$RUN_DIR/root-credentials.json').accountId")"
  spawn amqp-1 node "$cli" amqp-edge --nats "$NATS_URL" --master-key-file "$RUN_DIR/master.key" \
    --port "$AMQP_PORT" --edge-id amqp-1 --upstream "$AMQP_UPSTREAM" --account "$account" --health-port 0
  await_ready amqp-1
  log "running; admin credentials: $RUN_DIR/root-credentials.json"
  log "e.g. PORTCULLIS_ENDPOINT=http://127.0.0.1:$ADMIN_PORT pnpm -s portcullis admin --credentials $RUN_DIR/root-credentials.json user list"
}

status() {
  local f
  for f in "$RUN_DIR"/*.pid; do
    [[ -e $f ]] || continue
    if kill -0 "$(cat "$f")" 2>/dev/null; then
      echo "$(basename "$f" .pid): running (pid $(cat "$f"))"
    else
      echo "$(basename "$f" .pid): stopped"
    fi
  done
}

stop() {
  local f pid
  for f in "$RUN_DIR"/*.pid; do
    [[ -e $f ]] || continue
    pid="$(cat "$f")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  status) status ;;
  stop) stop ;;
  *)
    echo "usage: bash infra/distributed.sh start|status|stop" >&2
    exit 2
    ;;
esac
