#!/usr/bin/env bash
# Benchmark (not a test): Stripe webhook ingest rate — verify the signature,
# dedupe by event id, record the event and apply its effect — under load.
# Seeds N Stripe-billed subscriptions, serves Tenantry with Stripe on, and
# posts one signed `invoice.paid` renewal per subscription (plus D% replays
# of already-sent event ids, which must change nothing) from C concurrent
# keep-alive clients (bench/stripe_webhooks.py).
#
#   bench/stripe_webhooks.sh [N] [C] [D]      (default 5000 16 10)
#
# Uses DATABASE_URL's server if set, else a private cluster under ./var/bench-postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}; c=${2:-16}; dup=${3:-10}
profile=${BENCH_PROFILE:-release}
if [ "$profile" = release ]; then cargo build --quiet --release --locked --bin tenantry; bin=target/release/tenantry
else cargo build --quiet --locked --bin tenantry; bin=target/debug/tenantry; fi

if [ -z "${DATABASE_URL:-}" ]; then
  dir=./var/bench-postgres
  base=$(scripts/pg-cluster start "$dir" "${TENANTRY_BENCH_PG_PORT:-54339}")
else
  base=${DATABASE_URL%/*}
fi
db=tenantry_bench_$$
psql -q "$base/postgres" -c "CREATE DATABASE $db"
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  [ -n "${dir:-}" ] && scripts/pg-cluster stop "$dir"
}
trap cleanup EXIT
export DATABASE_URL="$base/$db"
export TENANTRY_JWT_KEYS="bench:$(head -c 32 /dev/urandom | base64)" TENANTRY_SECRET_KEYS="bench:$(head -c 32 /dev/urandom | base64)"
export TENANTRY_LOG=${TENANTRY_LOG:-warn}
"$bin" migrate up >/dev/null
"$bin" catalog load catalog/demo.toml >/dev/null

psql -q "$DATABASE_URL" <<SQL
BEGIN;
CREATE TEMP TABLE ids AS SELECT uuid_v7() AS tenant_id, uuid_v7() AS subscription_id, g AS i FROM generate_series(1, $n) g;
INSERT INTO tenants (id, slug, company_name, product_id, plan_id, deployment, status, provisioned_at)
  SELECT tenant_id, 'bench-' || i, 'Bench ' || i, p.product_id, p.id, p.deployment, 'active', now()
  FROM ids, plans p JOIN products pr ON pr.id = p.product_id WHERE pr.slug = 'odoo' AND p.code = 'basic';
INSERT INTO subscriptions (id, tenant_id, plan_id, status, current_period_start, current_period_end, billing_anchor,
                           saved_payment_method, provider, provider_customer_id, provider_subscription_id)
  SELECT subscription_id, tenant_id, p.id, 'active', now() - interval '30 days', now(), now() - interval '30 days', true,
         'stripe', 'cus_bench' || i, 'sub_bench' || i
  FROM ids, plans p JOIN products pr ON pr.id = p.product_id WHERE pr.slug = 'odoo' AND p.code = 'basic';
COMMIT;
ANALYZE;
SQL

port=${BENCH_PORT:-18091}
TENANTRY_LISTEN=127.0.0.1:$port TENANTRY_PAYMENTS=stripe TENANTRY_STRIPE_SECRET_KEY=sk_bench \
TENANTRY_STRIPE_WEBHOOK_SECRETS=whsec_bench TENANTRY_WORKERS=0 TENANTRY_BILLING_INTERVAL_SECS=0 \
TENANTRY_STRIPE_RECONCILE_INTERVAL_SECS=0 TENANTRY_NODE_CHECK_SECS=0 TENANTRY_DB_POOL_SIZE=${BENCH_POOL:-16} \
  "$bin" serve & pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

python3 bench/stripe_webhooks.py "http://127.0.0.1:$port/v1/webhooks/stripe" whsec_bench "$n" "$c" "$dup"
renewed=$(psql -tAq "$DATABASE_URL" -c "SELECT count(*) FROM charges WHERE status = 'paid'")
events=$(psql -tAq "$DATABASE_URL" -c "SELECT count(*) FROM stripe_events WHERE processed_at IS NOT NULL")
echo "renewals recorded: $renewed of $n; events recorded: $events"
[ "$renewed" = "$n" ] && [ "$events" = "$n" ] || { echo "ingest lost or doubled effects" >&2; exit 1; }
