#!/usr/bin/env bash
# `npm start`: the idempotent set-up (pnpm, dependencies, RabbitMQ for the AMQP
# edge, the mosquitto and amqp-tools clients of the demo), then the all-in-one
# gateway with the demo account. Extra arguments go to `portcullis serve`
# (e.g. `npm start -- --data-dir /var/lib/portcullis`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source infra/lib.sh

bash infra/setup.sh
log "starting: pnpm -s portcullis serve --demo $*"
exec pnpm -s portcullis serve --demo "$@"
