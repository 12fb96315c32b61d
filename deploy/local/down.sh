#!/usr/bin/env bash
# Stop local test servers started by up.sh: down.sh [kafka|minio|postgres|toxiproxy|seaweedfs|keycloak|all].
# Data is kept.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

down_kafka() {
    if pid_alive "$KAFKA_PIDFILE"; then
        log "stopping kafka (pid $(cat "$KAFKA_PIDFILE"))"
        stop_pidfile "$KAFKA_PIDFILE" 60
    else
        rm -f "$KAFKA_PIDFILE"
        log "kafka not running"
    fi
}

down_minio() {
    if pid_alive "$MINIO_PIDFILE"; then
        log "stopping minio (pid $(cat "$MINIO_PIDFILE"))"
        stop_pidfile "$MINIO_PIDFILE" 30
    else
        rm -f "$MINIO_PIDFILE"
        log "minio not running"
    fi
}

down_toxiproxy() {
    if pid_alive "$TOXIPROXY_PIDFILE"; then
        log "stopping toxiproxy (pid $(cat "$TOXIPROXY_PIDFILE"))"
        stop_pidfile "$TOXIPROXY_PIDFILE" 10
    else
        rm -f "$TOXIPROXY_PIDFILE"
        log "toxiproxy not running"
    fi
}

down_seaweedfs() {
    if pid_alive "$SEAWEEDFS_PIDFILE"; then
        log "stopping seaweedfs (pid $(cat "$SEAWEEDFS_PIDFILE"))"
        stop_pidfile "$SEAWEEDFS_PIDFILE" 30
    else
        rm -f "$SEAWEEDFS_PIDFILE"
        log "seaweedfs not running"
    fi
}

down_keycloak() {
    if pid_alive "$KEYCLOAK_PIDFILE"; then
        log "stopping keycloak (pid $(cat "$KEYCLOAK_PIDFILE"))"
        stop_pidfile "$KEYCLOAK_PIDFILE" 30
    else
        rm -f "$KEYCLOAK_PIDFILE"
        log "keycloak not running"
    fi
}

down_postgres() {
    local base data
    base="$(pg_base_dir)"
    data="$base/data"
    if [[ -f "$data/PG_VERSION" ]] && as_pg_user "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "stopping postgres ($data)"
        as_pg_user "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null ||
            die "pg_ctl stop failed; see $base/postgres.log"
    else
        log "postgres not running"
    fi
}

main() {
    local component pids=() rc=0 pid
    for component in $(components_from_args "${1:-all}"); do
        # Started or stopped by hand: pytest sessions must no longer stop it at their end.
        [[ "${SONOBRIDGE_FIXTURE:-}" == 1 ]] || rm -f "$RUN_DIR/leases/$component.fixture-started"
        with_lock "$RUN_DIR/.up-$component.lock" "down_$component" &
        pids+=("$!")
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || rc=1
    done
    return "$rc"
}

main "$@"
