#!/usr/bin/env bash
# Report whether local test servers are up: status.sh [kafka|minio|postgres|toxiproxy|seaweedfs|keycloak|all];
# exit 0 if all are.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rc=0
for component in $(components_from_args "${1:-all}"); do
    if "${component}_ready"; then
        echo "$component: up"
    else
        echo "$component: down"
        rc=1
    fi
done
exit "$rc"
