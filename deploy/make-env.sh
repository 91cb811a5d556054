#!/bin/sh
# Prints .env.example with every `change-me-...` secret replaced by a random one (48 hex
# characters from /dev/urandom), keeping MLCYCLE_API_KEY equal to MLCYCLE_API_KEYS:
#   sh deploy/make-env.sh > .env
set -eu
here=$(dirname "$0")
random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
api_key=$(random)
while IFS= read -r line; do
    case "$line" in
        MLCYCLE_API_KEYS=change-me-* | MLCYCLE_API_KEY=change-me-*)
            echo "${line%%=*}=$api_key" ;;
        MINIO_ROOT_USER=change-me-*)
            echo "MINIO_ROOT_USER=mlcycle-$(random | cut -c1-12)" ;;
        *=change-me-*)
            echo "${line%%=*}=$(random)" ;;
        *)
            echo "$line" ;;
    esac
done < "$here/../.env.example"
