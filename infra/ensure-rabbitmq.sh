#!/usr/bin/env bash
# Make sure rabbitmq-server is installed and that a broker listens on
# 127.0.0.1:$RABBITMQ_PORT (default 5672; default user guest/guest, which
# RabbitMQ allows from loopback only). Does nothing if something already listens
# there. Also installs mosquitto-clients (mosquitto_pub/sub) for the e2e tests
# and amqp-tools (amqp-publish/consume) for the demo.
# Idempotent.
#
# Env: RABBITMQ_PORT (5672); RABBITMQ_NODENAME and the other RABBITMQ_* variables
# are passed through to rabbitmq-server and rabbitmqctl.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

host=127.0.0.1
port="${RABBITMQ_PORT:-5672}"
budget=60

apt_install_if_missing mosquitto_pub mosquitto-clients
# amqp-publish/amqp-consume: the AMQP clients of the `serve --demo` printout.
apt_install_if_missing amqp-publish amqp-tools
apt_install_if_missing rabbitmq-server rabbitmq-server

if port_open "$host" "$port"; then
  log "rabbitmq: already listening on $host:$port"
  exit 0
fi

server_bin="$(find_bin rabbitmq-server)"
ctl_bin="$(find_bin rabbitmqctl)"

# Debian's wrappers switch to the rabbitmq user when run as root, keeping the
# environment (su without -l), so RABBITMQ_* settings reach the node.
rabbit_env=(env "RABBITMQ_NODE_IP_ADDRESS=$host" "RABBITMQ_NODE_PORT=$port")
for name in $(compgen -e); do
  case "$name" in
    RABBITMQ_NODE_IP_ADDRESS | RABBITMQ_NODE_PORT | RABBITMQ_PORT) ;;
    RABBITMQ_*) rabbit_env+=("$name=${!name}") ;;
  esac
done

log "rabbitmq: starting $server_bin -detached on $host:$port"
start=$SECONDS
as_root "${rabbit_env[@]}" "$server_bin" -detached

if ! wait_for_port "$host" "$port" "$budget"; then
  log "rabbitmq: nothing listens on $host:$port after ${budget}s; newest log in /var/log/rabbitmq:"
  newest="$(ls -t /var/log/rabbitmq/*.log 2>/dev/null | head -n 1 || true)"
  if [[ -n "$newest" ]]; then
    grep -E '\[(error|critical)\]' "$newest" | tail -n 5 >&2 || true
  fi
  exit 1
fi
left=$((budget - (SECONDS - start)))
if ((left < 10)); then
  left=10
fi
if ! as_root "${rabbit_env[@]}" timeout "$((left + 5))" "$ctl_bin" --timeout "$left" await_startup >/dev/null; then
  log "rabbitmq: port is open but \`rabbitmqctl await_startup\` did not succeed within ${left}s"
  exit 1
fi
log "rabbitmq: ready on $host:$port (user guest/guest)"
