# Shared settings and helpers for deploy/local scripts (sourced, never run directly).
# shellcheck shell=bash

# --- Pinned versions -------------------------------------------------------------------------
KAFKA_VERSION="${SONOBRIDGE_KAFKA_VERSION:-4.1.1}"
KAFKA_SCALA="2.13"
LOG4J_VERSION="2.24.3"
MAVEN_DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# MinIO community edition ships as source only. The module proxy here serves this pseudo-version
# (last commit on the archived repository, 2026-02-12); the RELEASE.2025-10-15 tag is refused.
MINIO_VERSION="${SONOBRIDGE_MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
MINIO_MODULE="github.com/minio/minio"
PG_MAJOR="15"
# Toxiproxy: the userspace link emulator for the weak-link test (the kernel here has no netem).
TOXIPROXY_VERSION="${SONOBRIDGE_TOXIPROXY_VERSION:-v2.12.0}"
TOXIPROXY_MODULE="github.com/Shopify/toxiproxy/v2"
# SeaweedFS: a second, maintained S3-compatible server for the object-store contract suite. The
# module proxy here serves this pseudo-version of the main module (command weed).
SEAWEEDFS_VERSION="${SONOBRIDGE_SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
SEAWEEDFS_MODULE="github.com/seaweedfs/seaweedfs"
# Keycloak: the cluster edition's identity provider, for the login tests (Quarkus distribution).
KEYCLOAK_VERSION="${SONOBRIDGE_KEYCLOAK_VERSION:-26.7.3}"

# --- Locations -------------------------------------------------------------------------------
DEPLOY_LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$DEPLOY_LOCAL_DIR/../.." && pwd)"
CACHE_DIR="${SONOBRIDGE_CACHE:-$HOME/.cache/sonobridge}"
RUN_DIR="${SONOBRIDGE_RUN_DIR:-$REPO_ROOT/var/local}"

KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
MINIO_HOME="$CACHE_DIR/minio-$MINIO_VERSION"
MINIO_BIN="$MINIO_HOME/minio"
TOXIPROXY_HOME="$CACHE_DIR/toxiproxy-$TOXIPROXY_VERSION"
TOXIPROXY_SERVER_BIN="$TOXIPROXY_HOME/toxiproxy-server"
TOXIPROXY_CLI_BIN="$TOXIPROXY_HOME/toxiproxy-cli"
SEAWEEDFS_HOME="$CACHE_DIR/seaweedfs-$SEAWEEDFS_VERSION"
SEAWEEDFS_BIN="$SEAWEEDFS_HOME/weed"
KEYCLOAK_HOME="$CACHE_DIR/keycloak-$KEYCLOAK_VERSION"
PG_BIN="${SONOBRIDGE_PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}"

# --- Ports and credentials (127.0.0.1 only) --------------------------------------------------
BIND_HOST="127.0.0.1"
KAFKA_PORT="${SONOBRIDGE_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${SONOBRIDGE_KAFKA_CONTROLLER_PORT:-19093}"
MINIO_PORT="${SONOBRIDGE_MINIO_PORT:-19000}"
MINIO_CONSOLE_PORT="${SONOBRIDGE_MINIO_CONSOLE_PORT:-19001}"
PG_PORT="${SONOBRIDGE_PG_PORT:-15432}"
TOXIPROXY_PORT="${SONOBRIDGE_TOXIPROXY_PORT:-18474}"
# SeaweedFS listens on several ports, each pinned (its gRPC ports are these + 10) so nothing
# lands on a default that another server may hold.
SEAWEEDFS_S3_PORT="${SONOBRIDGE_SEAWEEDFS_S3_PORT:-18333}"
SEAWEEDFS_MASTER_PORT="${SONOBRIDGE_SEAWEEDFS_MASTER_PORT:-18334}"
SEAWEEDFS_VOLUME_PORT="${SONOBRIDGE_SEAWEEDFS_VOLUME_PORT:-18335}"
SEAWEEDFS_FILER_PORT="${SONOBRIDGE_SEAWEEDFS_FILER_PORT:-18336}"
KEYCLOAK_PORT="${SONOBRIDGE_KEYCLOAK_PORT:-18080}"
# Keycloak's health/metrics listener, pinned off its default 9000.
KEYCLOAK_MANAGEMENT_PORT="${SONOBRIDGE_KEYCLOAK_MANAGEMENT_PORT:-18079}"
KEYCLOAK_REALM="sonobridge"

MINIO_ROOT_USER_VALUE="sonobridge"
MINIO_ROOT_PASSWORD_VALUE="sonobridge-secret"
PG_APP_USER="sonobridge"
PG_APP_PASSWORD="sonobridge"
PG_APP_DB="sonobridge"
# The local test Keycloak's bootstrap admin (loopback only, like the MinIO keys above).
KEYCLOAK_ADMIN_USER="admin"
KEYCLOAK_ADMIN_PASSWORD_VALUE="sonobridge-admin"

UP_TIMEOUT="${SONOBRIDGE_UP_TIMEOUT:-120}"
# A fresh unpack re-augments Quarkus on its first start: 80-140 s on two busy cores.
KEYCLOAK_UP_TIMEOUT="${SONOBRIDGE_KEYCLOAK_UP_TIMEOUT:-300}"

# --- Helpers ---------------------------------------------------------------------------------
log() { printf '[deploy/local] %s\n' "$*" >&2; }

die() {
    printf '[deploy/local] ERROR: %s\n' "$*" >&2
    exit 1
}

# Print the last 40 lines of a log file to stderr, framed so it stands out in test output.
show_log_tail() {
    local file="$1"
    if [[ -f "$file" ]]; then
        printf '[deploy/local] ---- last 40 lines of %s ----\n' "$file" >&2
        tail -n 40 "$file" >&2
        printf '[deploy/local] ---- end of %s ----\n' "$file" >&2
    else
        printf '[deploy/local] (no log file at %s)\n' "$file" >&2
    fi
}

# Succeed when something accepts TCP connections on host:port.
tcp_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Succeed when the pid in the given file names a live process of ours. Our daemons carry their
# run subdirectory (the pid file's directory) on the command line, which guards against a
# recycled pid after a crash making us wait on, or kill, an unrelated process.
pid_alive() {
    local pidfile="$1" pid cmdline
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile" 2>/dev/null)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$(dirname "$pidfile")"* ]]
}

# Run a command with an exclusive lock so concurrent callers (parallel test sessions, two
# engineers sharing a clone) do not install or start the same thing twice.
with_lock() {
    local lockfile="$1"
    shift
    mkdir -p "$(dirname "$lockfile")"
    (
        flock -w 1800 9 || die "timed out waiting for lock $lockfile"
        "$@"
    ) 9>"$lockfile"
}

# Stop the process in a pid file: TERM, wait up to $2 seconds, then KILL.
stop_pidfile() {
    local pidfile="$1" grace="${2:-30}" pid i
    pid_alive "$pidfile" || {
        rm -f "$pidfile"
        return 0
    }
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop within ${grace}s; killing"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidfile"
}

# Validate the component argument; "all" expands to the servers every test session needs.
# Toxiproxy and SeaweedFS serve only the weak-link and second-S3 tests, so they are named alone
# (install.sh all still installs them, so CI has them).
components_from_args() {
    local arg="${1:-all}"
    case "$arg" in
    all) echo "kafka minio postgres" ;;
    kafka | minio | postgres | toxiproxy | seaweedfs | keycloak) echo "$arg" ;;
    *) die "unknown component '$arg' (expected kafka, minio, postgres, toxiproxy, seaweedfs, keycloak or all)" ;;
    esac
}

# --- PostgreSQL helpers (initdb and pg_ctl refuse root, so run them as postgres) -------------
pg_os_user() {
    if [[ "$(id -u)" == "0" ]]; then echo postgres; else id -un; fi
}

as_pg_user() {
    if [[ "$(id -u)" == "0" ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# The postgres user must reach its data dir; if the run dir is not traversable for it (e.g. a
# clone under a 0700 home), fall back to a per-uid, per-run-dir directory under /tmp.
pg_base_dir() {
    local preferred="$RUN_DIR/postgres"
    if [[ "$(id -u)" != "0" ]]; then
        echo "$preferred"
        return
    fi
    mkdir -p "$preferred"
    chown postgres: "$preferred"
    if runuser -u postgres -- test -w "$preferred" -a -x "$preferred"; then
        echo "$preferred"
    else
        echo "/tmp/sonobridge-pg-$(id -u)-$(printf '%s' "$RUN_DIR" | cksum | cut -d' ' -f1)"
    fi
}

# --- Per-component runtime paths and readiness probes ----------------------------------------
KAFKA_RUN="$RUN_DIR/kafka"
KAFKA_PIDFILE="$KAFKA_RUN/kafka.pid"
KAFKA_LOG="$KAFKA_RUN/kafka.log"
MINIO_RUN="$RUN_DIR/minio"
MINIO_PIDFILE="$MINIO_RUN/minio.pid"
MINIO_LOG="$MINIO_RUN/minio.log"
TOXIPROXY_RUN="$RUN_DIR/toxiproxy"
TOXIPROXY_PIDFILE="$TOXIPROXY_RUN/toxiproxy.pid"
TOXIPROXY_LOG="$TOXIPROXY_RUN/toxiproxy.log"
SEAWEEDFS_RUN="$RUN_DIR/seaweedfs"
SEAWEEDFS_PIDFILE="$SEAWEEDFS_RUN/seaweedfs.pid"
SEAWEEDFS_LOG="$SEAWEEDFS_RUN/seaweedfs.log"
KEYCLOAK_RUN="$RUN_DIR/keycloak"
KEYCLOAK_PIDFILE="$KEYCLOAK_RUN/keycloak.pid"
KEYCLOAK_LOG="$KEYCLOAK_RUN/keycloak.log"

kafka_ready() {
    pid_alive "$KAFKA_PIDFILE" &&
        grep -q "Kafka Server started" "$KAFKA_LOG" 2>/dev/null &&
        tcp_open "$BIND_HOST" "$KAFKA_PORT"
}

minio_ready() {
    pid_alive "$MINIO_PIDFILE" &&
        curl -fsS -o /dev/null --max-time 2 "http://$BIND_HOST:$MINIO_PORT/minio/health/live" 2>/dev/null
}

postgres_ready() {
    local base
    base="$(pg_base_dir)"
    [[ -f "$base/data/postmaster.pid" ]] &&
        as_pg_user "$PG_BIN/pg_ctl" -D "$base/data" status >/dev/null 2>&1 &&
        "$PG_BIN/pg_isready" -q -h "$BIND_HOST" -p "$PG_PORT" -t 2 2>/dev/null
}

toxiproxy_ready() {
    pid_alive "$TOXIPROXY_PIDFILE" &&
        curl -fsS -o /dev/null --max-time 2 "http://$BIND_HOST:$TOXIPROXY_PORT/version" 2>/dev/null
}

# The S3 gateway answers only once master, volume and filer are up behind it.
seaweedfs_ready() {
    pid_alive "$SEAWEEDFS_PIDFILE" &&
        curl -fsS -o /dev/null --max-time 2 "http://$BIND_HOST:$SEAWEEDFS_S3_PORT/healthz" 2>/dev/null
}

# Ready once the realm is imported and its discovery document answers.
keycloak_ready() {
    pid_alive "$KEYCLOAK_PIDFILE" &&
        curl -fsS -o /dev/null --max-time 3 \
            "http://$BIND_HOST:$KEYCLOAK_PORT/realms/$KEYCLOAK_REALM/.well-known/openid-configuration" 2>/dev/null
}
