#!/usr/bin/env bash
# Benchmark (not a test): the billing oracle (issue #16, point 11) over N
# random cases (default 10,000) in a release build — the property test
# `billing::oracle::billing_oracle_local_path` of crates/api/tests/api, run
# alone. It prints the seed, then the cases, operations, charges compared and
# wall time, and how often each billing rule was exercised; a failing case is
# shrunk and printed with the seed and case number that reproduce it.
#
#   bench/billing_oracle.sh [N]        (default 10000)
#
# Passed through: TENANTRY_ORACLE_SEED (default random), TENANTRY_ORACLE_MAX_OPS,
# TENANTRY_ORACLE_SKIP, TENANTRY_ORACLE_KEEP_GOING=1 (report every kind of
# failure instead of stopping at the first), TENANTRY_ORACLE_CREDITS=off.
#
# Uses DATABASE_URL's server if set (each run clones its own database from a
# migrated template there), else a private cluster under ./var/bench-oracle-postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}

if [ -z "${DATABASE_URL:-}" ]; then
  dir=./var/bench-oracle-postgres
  trap 'scripts/pg-cluster stop "$dir"' EXIT
  base=$(PG_EXTRA_OPTS="-c fsync=off -c synchronous_commit=off -c max_connections=200 ${BENCH_PG_OPTS:-}" \
    scripts/pg-cluster start "$dir" "${TENANTRY_BENCH_PG_PORT:-54338}")
  export DATABASE_URL="$base/postgres"
fi
export TENANTRY_ORACLE_CASES=$n
export TENANTRY_LOG=${TENANTRY_LOG:-warn}

echo "billing oracle: $n cases, release build…" >&2
started=$(date +%s)
cargo test --quiet --release --locked -p tenantry-api --test api -- \
  --exact billing::oracle::billing_oracle_local_path --nocapture --test-threads=1
echo "billing oracle: $n cases in $(( $(date +%s) - started )) s (with the build)" >&2
