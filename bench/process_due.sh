#!/usr/bin/env bash
# Benchmark (not a test): seed N subscriptions whose downgrade is due (the
# period ended a minute ago, the downgrade takes effect then) and time one
# `tenantry billing process-due` run, which applies the downgrades and
# charges the renewals at the new price.
#
#   bench/process_due.sh [N]        (default 100000)
#
# Uses DATABASE_URL's server if set (a scratch database is created and
# dropped), else a private cluster under ./var/bench-postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}

cargo build --quiet --release --locked --bin tenantry
bin=target/release/tenantry

if [ -z "${DATABASE_URL:-}" ]; then
  dir=./var/bench-postgres
  trap 'scripts/pg-cluster stop "$dir"' EXIT
  # Sized like a small production server rather than PostgreSQL's defaults.
  base=$(PG_EXTRA_OPTS="-c shared_buffers=1GB -c max_wal_size=4GB -c checkpoint_timeout=30min ${BENCH_PG_OPTS:-}" \
    scripts/pg-cluster start "$dir" "${TENANTRY_BENCH_PG_PORT:-54339}")
else
  base=${DATABASE_URL%/*}
fi
db=tenantry_bench_$$
psql -q "$base/postgres" -c "CREATE DATABASE $db"
cleanup() { psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; }
trap 'cleanup; [ -n "${dir:-}" ] && scripts/pg-cluster stop "$dir"' EXIT
export DATABASE_URL="$base/$db"
export TENANTRY_JWT_KEYS="bench:$(head -c 32 /dev/urandom | base64)" TENANTRY_SECRET_KEYS="bench:$(head -c 32 /dev/urandom | base64)"
export TENANTRY_LOG=${TENANTRY_LOG:-warn}

"$bin" migrate up >/dev/null
"$bin" catalog load catalog/demo.toml >/dev/null

echo "seeding $n tenants on odoo/pro with a due downgrade to basic…" >&2
psql -q "$DATABASE_URL" <<SQL
BEGIN;
CREATE TEMP TABLE ids AS
  SELECT uuid_v7() AS tenant_id, uuid_v7() AS subscription_id, g AS i FROM generate_series(1, $n) g;
INSERT INTO tenants (id, slug, company_name, product_id, plan_id, deployment, status, provisioned_at)
  SELECT tenant_id, 'bench-' || i, 'Bench ' || i, p.product_id, p.id, 'dedicated', 'active', now() - interval '40 days'
  FROM ids, plans p JOIN products pr ON pr.id = p.product_id WHERE pr.slug = 'odoo' AND p.code = 'pro';
INSERT INTO subscriptions (id, tenant_id, plan_id, status, current_period_start, current_period_end, billing_anchor, saved_payment_method)
  SELECT subscription_id, tenant_id, p.id, 'active', now() - interval '1 month' - interval '1 minute', now() - interval '1 minute',
         now() - interval '1 month' - interval '1 minute', true
  FROM ids, plans p JOIN products pr ON pr.id = p.product_id WHERE pr.slug = 'odoo' AND p.code = 'pro';
INSERT INTO plan_changes (id, tenant_id, subscription_id, from_plan_id, to_plan_id, from_deployment, to_deployment,
                          kind, timing, status, currency, requested_at, effective_at, actor_label)
  SELECT uuid_v7(), i.tenant_id, i.subscription_id, pro.id, basic.id, 'dedicated', 'shared',
         'downgrade', 'end_of_term', 'scheduled', 'USD', now() - interval '10 days', now() - interval '1 minute', 'bench'
  FROM ids i,
       (SELECT p.id FROM plans p JOIN products pr ON pr.id = p.product_id WHERE pr.slug = 'odoo' AND p.code = 'pro') pro,
       (SELECT p.id FROM plans p JOIN products pr ON pr.id = p.product_id WHERE pr.slug = 'odoo' AND p.code = 'basic') basic;
COMMIT;
ANALYZE;
SQL

echo "running tenantry billing process-due…" >&2
start=$(date +%s.%N)
out=$("$bin" billing process-due)
end=$(date +%s.%N)
secs=$(echo "$end - $start" | bc -l)
echo "$out"
applied=$(psql -tAq "$DATABASE_URL" -c "SELECT count(*) FROM plan_changes WHERE status = 'applied'")
renewed=$(psql -tAq "$DATABASE_URL" -c "SELECT count(*) FROM charges WHERE status = 'paid'")
[ "$applied" = "$n" ] || { echo "only $applied of $n changes applied" >&2; exit 1; }
printf '| %s | %s | %s | %.2f | %.0f |\n' "$(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB" "$n" "$applied / $renewed" "$secs" "$(echo "$n / $secs" | bc -l)"
