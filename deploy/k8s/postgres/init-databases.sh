#!/bin/sh
# Creates mlcycle's databases and their owners on one PostgreSQL server, least privilege: each
# database is owned by its own login role and only that role may connect to it (CONNECT is
# revoked from PUBLIC), so the serving workloads never hold the superuser's or MLflow's password.
#   $MLFLOW_DB, $MLFLOW_AUTH_DB  MLflow tracking + registry, and its basic-auth users and
#                                permissions; owner $TRACKING_DB_USER ($TRACKING_DB_PASSWORD)
#   $PREDICTIONS_DB              the prediction log (MLCYCLE_PREDICTION_LOG_URL): serving writes,
#                                the monitoring jobs read, `mlcycle log prune` deletes; owner
#                                $PREDICTIONS_DB_USER ($PREDICTIONS_DB_PASSWORD)
# The official postgres image runs it on the first start (files in /docker-entrypoint-initdb.d
# run when the data directory is empty); it is idempotent, and run again (as the superuser,
# `psql` reaching the server through PGHOST/PGPORT/PGUSER or the socket) it sets the
# passwords anew: that is how they are rotated. docker-compose mounts this file; Kubernetes
# gets it through the ConfigMap `postgres-init` (deploy/k8s/kustomization.yaml).
set -eu

: "${TRACKING_DB_PASSWORD:?TRACKING_DB_PASSWORD is required}"
: "${PREDICTIONS_DB_PASSWORD:?PREDICTIONS_DB_PASSWORD is required}"

# psql variables (:'name' quotes a literal, :"name" an identifier) keep passwords out of the SQL.
create_owned() {  # role password database...
    role=$1 password=$2
    shift 2
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        -v role="$role" -v password="$password" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
SQL
    for db in "$@"; do
        echo "init-databases: database $db owned by $role"
        psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" \
            --dbname postgres -v role="$role" -v db="$db" >/dev/null <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"role";
SQL
    done
}

create_owned "${TRACKING_DB_USER:-mlflow}" "$TRACKING_DB_PASSWORD" \
    "${MLFLOW_DB:-mlflow}" "${MLFLOW_AUTH_DB:-mlflow_auth}"
create_owned "${PREDICTIONS_DB_USER:-predictions}" "$PREDICTIONS_DB_PASSWORD" \
    "${PREDICTIONS_DB:-predictions}"
