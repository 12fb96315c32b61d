#!/usr/bin/env bash
# The cluster edition on this machine: each service its own process on the local Kafka, MinIO and
# PostgreSQL from deploy/local. Usage: scripts/cluster.sh up [--fresh] | down | status
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

action="${1:-}"
shift || true
case "$action" in
    up)
        deploy/local/install.sh all
        deploy/local/up.sh all
        eval "$(deploy/local/env.sh)"
        exec uv run sonobridge cluster up "$@"
        ;;
    down | status)
        exec uv run sonobridge cluster "$action" "$@"
        ;;
    *)
        echo "usage: scripts/cluster.sh up [--fresh] [--no-seed] | down | status" >&2
        exit 2
        ;;
esac
