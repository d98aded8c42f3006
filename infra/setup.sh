#!/usr/bin/env bash
# One-time (and idempotent) machine + workspace setup: pnpm, node_modules, and
# the local servers the integration/e2e tests use (nats-server with JetStream on
# 127.0.0.1:4222, RabbitMQ on 127.0.0.1:5672, mosquitto clients).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source infra/lib.sh

if ! command -v pnpm >/dev/null 2>&1; then
  log "installing pnpm@12 with npm"
  if [[ -w "$(npm prefix -g)" ]]; then
    npm i -g pnpm@12
  else
    as_root npm i -g pnpm@12
  fi
fi

# Native addons (better-sqlite3) build with node-gyp. Without network access to
# nodejs.org it must use the headers installed beside this node binary; npm
# reads `nodedir` from ~/.npmrc but pnpm's node-gyp only sees the env var.
if [[ -z "${npm_config_nodedir:-}" ]]; then
  node_prefix="$(dirname "$(dirname "$(node -p 'process.execPath')")")"
  if [[ -f "$node_prefix/include/node/node.h" ]]; then
    export npm_config_nodedir="$node_prefix"
  fi
fi

if [[ -f pnpm-lock.yaml ]]; then
  log "pnpm install --frozen-lockfile"
  pnpm install --frozen-lockfile
else
  log "no pnpm-lock.yaml; pnpm install"
  pnpm install
fi

bash infra/ensure-nats.sh
bash infra/ensure-rabbitmq.sh
log "done"
