#!/bin/sh
# Creates the two databases mlcycle uses on one PostgreSQL server, on the first start only
# (files in /docker-entrypoint-initdb.d run when the data directory is empty):
#   $MLFLOW_DB       MLflow tracking + model registry (mlflow server --backend-store-uri)
#   $PREDICTIONS_DB  the serving prediction log (MLCYCLE_PREDICTION_LOG_URL), read by monitoring
# Both are owned by $POSTGRES_USER. The official postgres image sources this file.
set -eu

for db in "${MLFLOW_DB:-mlflow}" "${PREDICTIONS_DB:-predictions}"; do
    exists=$(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'")
    if [ "$exists" != "1" ]; then
        echo "init-databases: creating database $db"
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -c \
            "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
    fi
done
