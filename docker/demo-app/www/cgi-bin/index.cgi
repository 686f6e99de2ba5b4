#!/bin/busybox sh
# The demo product's page (`GET /`): which tenant, plan and database this
# request is served for, and whether the instance is dedicated or shared.
#
# Tenant: the `X-Tenantry-Tenant` request header when present (what the
# router of a shared instance sends), else env TENANT_SLUG (a dedicated
# instance). Plan: env TENANT_PLAN, else header `X-Tenantry-Plan`, else
# "unknown". Database: env DATABASE_NAME, else the tenant's database name
# derived from its slug as TenantDbName::from_slug does. The env values
# describe the env tenant only: for another tenant named by the header
# they are not used. Header values must be slugs ([a-z0-9-], else 400);
# nothing is written into the HTML unescaped.
#
# Status: 200 page; 400 bad header; 404 a shared instance asked without
# a tenant; 405 a method other than GET/HEAD.
PATH=/bin

respond() { # status, then the body on stdin
  printf 'Status: %s\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n\r\n' "$1"
  cat
}

esc() { # HTML-escape $1
  printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' \
    -e 's/"/\&quot;/g' -e "s/'/\&#39;/g"
}

is_slug() { # a tenant slug: 3-63 of [a-z0-9-], no hyphen at either end
  case "$1" in
    ''|*[!a-z0-9-]*|-*|*-) return 1 ;;
  esac
  [ "${#1}" -ge 3 ] && [ "${#1}" -le 63 ]
}

is_code() { # a plan code: 1-63 of [a-z0-9-]
  case "$1" in
    ''|*[!a-z0-9-]*) return 1 ;;
  esac
  [ "${#1}" -le 63 ]
}

db_name() { # TenantDbName::from_slug: t_<slug, - -> _>; over 60 chars:
  # t_<first 48, - -> _>_<first 12 hex of sha256(slug)>
  if [ "${#1}" -le 60 ]; then
    printf 't_%s' "$(printf '%s' "$1" | tr '-' '_')"
  else
    printf 't_%s_%s' "$(printf '%s' "$1" | cut -c1-48 | tr '-' '_')" \
      "$(printf '%s' "$1" | sha256sum | cut -c1-12)"
  fi
}

error_page() { # status, error code, message
  respond "$1" <<PAGE
<!doctype html>
<html><head><title>Inventory</title></head>
<body><h1>Inventory</h1><p>$3</p>
<pre>
error=$2
mode=$mode
</pre></body></html>
PAGE
  exit 0
}

env_tenant=${TENANT_SLUG:-}
if [ -n "$env_tenant" ]; then mode=dedicated; else mode=shared; fi

case "${REQUEST_METHOD:-GET}" in
  GET|HEAD) ;;
  *) error_page "405 Method Not Allowed" method-not-allowed "Only GET and HEAD are served." ;;
esac

tenant=$env_tenant
header_tenant=${HTTP_X_TENANTRY_TENANT-}
if [ -n "${HTTP_X_TENANTRY_TENANT+set}" ]; then
  is_slug "$header_tenant" ||
    error_page "400 Bad Request" bad-tenant-header "The X-Tenantry-Tenant header is not a tenant slug."
  tenant=$header_tenant
fi
if [ -z "$tenant" ]; then
  error_page "404 Not Found" no-tenant "No tenant named: this shared instance needs the X-Tenantry-Tenant header."
fi

header_plan=${HTTP_X_TENANTRY_PLAN-}
if [ -n "${HTTP_X_TENANTRY_PLAN+set}" ] && ! is_code "$header_plan"; then
  error_page "400 Bad Request" bad-plan-header "The X-Tenantry-Plan header is not a plan code."
fi

if [ "$tenant" = "$env_tenant" ] && [ -n "${TENANT_PLAN:-}" ]; then
  plan=$TENANT_PLAN
elif [ -n "$header_plan" ]; then
  plan=$header_plan
else
  plan=unknown
fi

if [ "$tenant" = "$env_tenant" ] && [ -n "${DATABASE_NAME:-}" ]; then
  database=$DATABASE_NAME
else
  database=$(db_name "$tenant")
fi

host=$(hostname 2>/dev/null || cat /etc/hostname 2>/dev/null)

t=$(esc "$tenant"); p=$(esc "$plan"); d=$(esc "$database"); h=$(esc "$host")
respond "200 OK" <<PAGE
<!doctype html>
<html><head><title>Inventory for $t</title></head>
<body>
<h1>Inventory</h1>
<p>Stock and warehouse management for tenant <strong>$t</strong>
on plan <strong>$p</strong>, using database <code>$d</code>
($mode instance on host <code>$h</code>).</p>
<pre>
tenant=$t
plan=$p
database=$d
mode=$mode
host=$h
</pre>
</body></html>
PAGE
