#!/usr/bin/env bash
# Benchmark (not a test): 1,000 tenants provisioned against pve-sim with zero
# task delay, with 2, 4 and 8 job workers; prints a Markdown table of
# tenants/s (crates/api/benches/provision.rs says what one run does and
# checks).
#
#   bench/provision.sh                       (BENCH_TENANTS=1000 BENCH_WORKERS=2,4,8)
#
# Uses DATABASE_URL's server if set (its role must create databases and
# roles), else a private cluster under ./var/bench-postgres.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${DATABASE_URL:-}" ]; then
  dir=./var/bench-postgres
  trap 'scripts/pg-cluster stop "$dir"' EXIT
  # Sized like a small production server rather than PostgreSQL's defaults;
  # every tenant gets a database, so WAL and checkpoints matter.
  base=$(PG_EXTRA_OPTS="-c shared_buffers=1GB -c max_wal_size=4GB -c checkpoint_timeout=30min ${BENCH_PG_OPTS:-}" \
    scripts/pg-cluster start "$dir" "${TENANTRY_BENCH_PG_PORT:-54339}")
  export DATABASE_URL="$base/postgres"
fi
exec cargo bench --locked -p tenantry-api --bench provision
