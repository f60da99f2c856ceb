#!/bin/sh
# One-shot Temporal schema job (service `temporal-admin-tools` in docker-compose.yml).
#
# Creates the two PostgreSQL databases Temporal needs -- `temporal` (persistence) and
# `temporal_visibility` (list/filter queries, custom search attributes) -- and brings both
# schemas up to the version shipped in this admin-tools image. Safe to run on every
# `docker compose up`: `create` ignores an existing database, `setup-schema -v 0.0` leaves
# a newer recorded version alone, and `update-schema` applies only the missing steps.
# When the server image is upgraded, upgrade admin-tools to the same version: this job then
# migrates the schema before the new server starts (the server waits for it to succeed).
set -eu

PLUGIN="${DB:-postgres12}"
HOST="${POSTGRES_SEEDS:-postgresql}"
PORT="${DB_PORT:-5432}"
USER_NAME="${POSTGRES_USER:-temporal}"
TEMPORAL_DB="${DBNAME:-temporal}"
VISIBILITY_DB="${VISIBILITY_DBNAME:-temporal_visibility}"
SCHEMA_DIR="${SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}"

# temporal-sql-tool reads the password from SQL_PASSWORD; keep it off the command line.
SQL_PASSWORD="${SQL_PASSWORD:-${POSTGRES_PWD:?POSTGRES_PWD is not set}}"
export SQL_PASSWORD

echo "Waiting for PostgreSQL at ${HOST}:${PORT}..."
tries=0
until nc -z -w 5 "$HOST" "$PORT"; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "PostgreSQL at ${HOST}:${PORT} not reachable after ${tries} attempts" >&2
    exit 1
  fi
  sleep 2
done

sql_tool() {
  temporal-sql-tool --plugin "$PLUGIN" --ep "$HOST" -p "$PORT" -u "$USER_NAME" "$@"
}

setup_database() {
  db="$1"
  versioned_dir="$2"
  echo "Schema for database '${db}' (from ${versioned_dir})"
  sql_tool --db "$db" create
  sql_tool --db "$db" setup-schema -v 0.0
  sql_tool --db "$db" update-schema -d "$versioned_dir"
}

setup_database "$TEMPORAL_DB" "${SCHEMA_DIR}/temporal/versioned"
setup_database "$VISIBILITY_DB" "${SCHEMA_DIR}/visibility/versioned"

echo "Temporal schemas are up to date."
