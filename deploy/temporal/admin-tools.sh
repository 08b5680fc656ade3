#!/bin/sh
# admin-tools.sh: the temporal-admin-tools service. Waits until the Temporal
# cluster answers `temporal operator cluster health`, registers the namespace
# sanwatch uses (TEMPORAL_NAMESPACE, kept NAMESPACE_RETENTION) when it is
# missing, then stays up so that operators can run the `temporal` CLI in it:
#   docker compose exec temporal-admin-tools temporal workflow list
# Its health check (cluster healthy and namespace registered) is what the
# worker and starter services wait for.
set -eu

: "${TEMPORAL_ADDRESS:?set TEMPORAL_ADDRESS, e.g. temporal:7233}"
NAMESPACE=${TEMPORAL_NAMESPACE:-default}
RETENTION=${NAMESPACE_RETENTION:-72h}

tries=0
until temporal operator cluster health >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ]; then
    echo "admin-tools: Temporal at $TEMPORAL_ADDRESS is not healthy after 120 tries" >&2
    exit 1
  fi
  sleep 2
done
echo "admin-tools: Temporal at $TEMPORAL_ADDRESS is healthy"

if temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "admin-tools: namespace $NAMESPACE exists"
else
  temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION"
  echo "admin-tools: namespace $NAMESPACE created (retention $RETENTION)"
fi

# Stay up for `docker compose exec`; the service runs with init: true, so
# SIGTERM from `docker compose stop` ends this at once.
exec tail -f /dev/null
