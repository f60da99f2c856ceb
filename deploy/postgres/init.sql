-- Runs once, when the PostgreSQL data volume is initialised for the first time
-- (mounted into /docker-entrypoint-initdb.d by docker-compose.yml; executed by psql as
-- POSTGRES_USER). Temporal's own databases (temporal, temporal_visibility) are created by
-- the temporal-admin-tools schema job; this creates the application's database, which
-- holds notices, the in-app inbox and parked callbacks (SENTINEL_DATABASE_URL).
-- Idempotent, so it can also be run by hand against an existing volume:
--   docker compose exec -T postgresql psql -U "$POSTGRES_USER" -d postgres < deploy/postgres/init.sql
SELECT 'CREATE DATABASE sentinel'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'sentinel')\gexec
