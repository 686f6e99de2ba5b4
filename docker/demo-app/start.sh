#!/bin/busybox sh
# Starts the demo app: busybox httpd on $PORT (8080) serving /www, whose
# /cgi-bin/index.cgi answers `GET /` (busybox httpd's fallback for a
# directory without index.html) and /healthz answers `ok`.
#
# httpd runs as a child rather than exec'd: PID 1 ignores SIGTERM unless it
# handles it, so this shell forwards TERM/INT and `docker stop` is prompt.
bb=/bin/busybox
# Applet links (made at build time; again here for an image built without).
[ -e /bin/sh ] || $bb --install -s /bin
$bb mkdir -p /www/cgi-bin
[ -f /www/healthz ] || echo ok > /www/healthz
port=${PORT:-8080}
case "$port" in
  ''|*[!0-9]*) echo "start.sh: PORT must be a number (got '$port')" >&2; exit 2 ;;
esac
if [ -n "${TENANT_SLUG:-}" ]; then
  echo "inventory demo: dedicated to $TENANT_SLUG, serving on :$port"
else
  echo "inventory demo: shared (tenant from X-Tenantry-Tenant), serving on :$port"
fi
$bb httpd -f -p "$port" -h /www &
pid=$!
trap '$bb kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
wait "$pid"
