#!/usr/bin/env bash
# Full check: setup, typecheck, lint, then every vitest project (unit, int, e2e).
# Exits with the first failing step's exit code, else vitest's. Vitest also
# writes .vitest-results.json (read by .ci/run).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source infra/lib.sh

results=.vitest-results.json
# A stale file from an earlier run must never be mistaken for this run's result.
rm -f "$results"

step() {
  local name=$1 code=0
  shift
  log "$name"
  "$@" || code=$?
  if ((code != 0)); then
    log "$name failed (exit $code)"
    exit "$code"
  fi
}

step setup bash infra/setup.sh
step typecheck pnpm -s typecheck
step lint pnpm -s lint
step vitest pnpm exec vitest run --reporter=default --reporter=json --outputFile="$results"
