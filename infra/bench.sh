#!/usr/bin/env bash
# Run the benchmarks (package @portcullis/bench in bench/) after setup.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source infra/lib.sh

if [[ ! -f bench/package.json ]]; then
  log "bench/package.json is missing: there is no @portcullis/bench package to run yet"
  exit 1
fi

bash infra/setup.sh
pnpm --filter @portcullis/bench run bench "$@"
