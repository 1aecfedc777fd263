#!/bin/sh
# Creates the application role and its three databases: Dagster's storage, the warehouse and
# MLflow's backend store. The postgres image runs this once, on its first start with an empty data
# volume (mounted into /docker-entrypoint-initdb.d); the connection comes from the usual libpq
# variables (PGHOST, PGPORT, PGPASSWORD, ...) when they are set, from the image's socket otherwise.
set -eu
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v app_user="${OKR_DB_USER:?}" -v app_password="${OKR_DB_PASSWORD:?}" \
    -v dagster_db="${DAGSTER_DB:-dagster}" -v warehouse_db="${WAREHOUSE_DB:-okr_warehouse}" \
    -v mlflow_db="${MLFLOW_DB:-mlflow}" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"dagster_db" OWNER :"app_user";
CREATE DATABASE :"warehouse_db" OWNER :"app_user";
CREATE DATABASE :"mlflow_db" OWNER :"app_user";
SQL
