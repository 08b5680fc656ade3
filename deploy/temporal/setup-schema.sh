#!/bin/sh
# setup-schema.sh: creates Temporal's two PostgreSQL databases (temporal,
# temporal_visibility) and brings their schemas to the version this
# admin-tools image ships. Runs in the temporal-schema service (image
# temporalio/admin-tools) before the Temporal server starts. Every step is
# idempotent: an existing database is kept, setup-schema does nothing on a
# database that already has a schema, and update-schema applies only the
# missing versions, so it is also how the schema is upgraded when the image
# tags in docker-compose.yml are raised.
set -eu

: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS to the database host}"
: "${POSTGRES_USER:?set POSTGRES_USER}"
: "${SQL_PASSWORD:?set SQL_PASSWORD}"
DB_PORT=${DB_PORT:-5432}
SCHEMA_DIR=${SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}

sql() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

for db in temporal temporal_visibility; do
  case $db in
    temporal) dir=$SCHEMA_DIR/temporal/versioned ;;
    *) dir=$SCHEMA_DIR/visibility/versioned ;;
  esac
  echo "temporal-schema: database $db"
  sql --db "$db" create
  sql --db "$db" setup-schema -v 0.0
  sql --db "$db" update-schema -d "$dir"
done
echo "temporal-schema: done"
