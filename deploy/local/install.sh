#!/usr/bin/env bash
# Install pinned local test servers: install.sh [kafka|minio|postgres|toxiproxy|seaweedfs|keycloak|orthanc|all]
# Idempotent: a finished install is detected by a marker and skipped in well under a second.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install_kafka() {
    if [[ -f "$KAFKA_HOME/.installed" ]]; then
        log "kafka $KAFKA_VERSION already installed in $KAFKA_HOME"
        return 0
    fi
    command -v java >/dev/null || die "java not found; Kafka $KAFKA_VERSION needs Java 17+"
    command -v mvn >/dev/null || die "mvn not found; it fetches the Kafka jars"
    local java_major
    java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
    [[ "${java_major:-0}" -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17+, found '$java_major'"

    local stage="$KAFKA_HOME.partial" started=$SECONDS
    rm -rf "$stage"
    mkdir -p "$stage/libs"
    # A pom-packaged project whose only job is to list the broker and its log4j2 binding.
    cat >"$stage/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sonobridge</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$KAFKA_SCALA</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-api</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
    mkdir -p "$CACHE_DIR/logs"
    local mvn_log="$CACHE_DIR/logs/kafka-$KAFKA_VERSION-install.log"
    log "fetching kafka_$KAFKA_SCALA $KAFKA_VERSION jars with Maven (log: $mvn_log)"
    if ! mvn -B -f "$stage/pom.xml" "$MAVEN_DEPENDENCY_PLUGIN:copy-dependencies" \
        -DoutputDirectory="$stage/libs" -DincludeScope=runtime >"$mvn_log" 2>&1; then
        show_log_tail "$mvn_log"
        die "Maven could not fetch Kafka $KAFKA_VERSION jars"
    fi
    [[ -f "$stage/libs/kafka_$KAFKA_SCALA-$KAFKA_VERSION.jar" ]] ||
        die "Maven finished but kafka_$KAFKA_SCALA-$KAFKA_VERSION.jar is missing from $stage/libs"
    touch "$stage/.installed"
    rm -rf "$KAFKA_HOME"
    mv "$stage" "$KAFKA_HOME"
    log "kafka $KAFKA_VERSION installed in $KAFKA_HOME ($((SECONDS - started))s)"
}

install_minio() {
    if [[ -x "$MINIO_BIN" ]]; then
        log "minio $MINIO_VERSION already installed at $MINIO_BIN"
        return 0
    fi
    command -v go >/dev/null || die "go not found; MinIO is built from source with Go >= 1.24"
    local go_minor
    go_minor="$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
    [[ "${go_minor:-0}" -ge 24 ]] || die "MinIO needs Go >= 1.24, found $(go env GOVERSION)"

    local stage="$MINIO_HOME.partial" started=$SECONDS
    local build_log="$CACHE_DIR/logs/minio-$MINIO_VERSION-build.log"
    mkdir -p "$CACHE_DIR/logs" "$stage"
    log "building minio $MINIO_VERSION from source; takes minutes when cold (log: $build_log)"
    # Module, build caches and GOPATH live in the cache so a rebuild after a wipe of the clone
    # (or a second clone) is fast.
    if ! (cd "$CACHE_DIR" && env CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
        GOPATH="$CACHE_DIR/go" GOMODCACHE="$CACHE_DIR/go/pkg/mod" GOCACHE="$CACHE_DIR/go-build" \
        GOBIN="$stage" go install -trimpath -ldflags "-s -w" "$MINIO_MODULE@$MINIO_VERSION") \
        >"$build_log" 2>&1; then
        show_log_tail "$build_log"
        die "go install $MINIO_MODULE@$MINIO_VERSION failed"
    fi
    [[ -x "$stage/minio" ]] || die "go install finished but $stage/minio is missing"
    mkdir -p "$MINIO_HOME"
    mv -f "$stage/minio" "$MINIO_BIN"
    rmdir "$stage" 2>/dev/null || true
    log "minio installed at $MINIO_BIN ($((SECONDS - started))s)"
}

# Go builds keep module, build caches and GOPATH in the cache dir, like MinIO's.
go_in_cache() {
    env CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -trimpath" \
        GOPATH="$CACHE_DIR/go" GOMODCACHE="$CACHE_DIR/go/pkg/mod" GOCACHE="$CACHE_DIR/go-build" \
        go "$@"
}

install_toxiproxy() {
    if [[ -x "$TOXIPROXY_SERVER_BIN" && -x "$TOXIPROXY_CLI_BIN" ]]; then
        log "toxiproxy $TOXIPROXY_VERSION already installed in $TOXIPROXY_HOME"
        return 0
    fi
    command -v go >/dev/null || die "go not found; Toxiproxy is built from source"
    local stage="$TOXIPROXY_HOME.partial" started=$SECONDS
    local build_log="$CACHE_DIR/logs/toxiproxy-$TOXIPROXY_VERSION-build.log"
    mkdir -p "$CACHE_DIR/logs" "$stage"
    log "building toxiproxy $TOXIPROXY_VERSION from source (log: $build_log)"
    if ! (cd "$CACHE_DIR" && GOBIN="$stage" go_in_cache install -ldflags "-s -w" \
        "$TOXIPROXY_MODULE/cmd/server@$TOXIPROXY_VERSION" \
        "$TOXIPROXY_MODULE/cmd/cli@$TOXIPROXY_VERSION") >"$build_log" 2>&1; then
        show_log_tail "$build_log"
        die "go install $TOXIPROXY_MODULE@$TOXIPROXY_VERSION failed"
    fi
    [[ -x "$stage/server" && -x "$stage/cli" ]] || die "go install finished but $stage lacks server/cli"
    mkdir -p "$TOXIPROXY_HOME"
    # go install names binaries after their directory; give them the names upstream ships.
    mv -f "$stage/cli" "$TOXIPROXY_CLI_BIN"
    mv -f "$stage/server" "$TOXIPROXY_SERVER_BIN"
    rmdir "$stage" 2>/dev/null || true
    log "toxiproxy installed in $TOXIPROXY_HOME ($((SECONDS - started))s)"
}

install_seaweedfs() {
    if [[ -x "$SEAWEEDFS_BIN" ]]; then
        log "seaweedfs $SEAWEEDFS_VERSION already installed at $SEAWEEDFS_BIN"
        return 0
    fi
    command -v go >/dev/null || die "go not found; SeaweedFS is built from source"
    local stage="$SEAWEEDFS_HOME.partial" src="$SEAWEEDFS_HOME.src" started=$SECONDS dir
    local build_log="$CACHE_DIR/logs/seaweedfs-$SEAWEEDFS_VERSION-build.log"
    mkdir -p "$CACHE_DIR/logs" "$stage"
    log "building seaweedfs $SEAWEEDFS_VERSION from source; takes many minutes when cold (log: $build_log)"
    # `go install weed@version` refuses a module whose go.mod has replace directives, so the
    # module is downloaded and built in a writable copy, where its go.mod is the main one.
    if ! dir="$(cd "$CACHE_DIR" && go_in_cache mod download -json "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || [[ -z "$dir" ]]; then
        die "go mod download $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION failed"
    fi
    rm -rf "$src"
    cp -r "$dir" "$src" && chmod -R u+w "$src"
    # Niced: the build takes minutes of both cores and must not starve running tests.
    if ! (cd "$src" && renice -n 10 "$BASHPID" >/dev/null &&
        go_in_cache build -ldflags "-s -w" -o "$stage/weed" ./weed) >"$build_log" 2>&1; then
        show_log_tail "$build_log"
        die "go build of $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION failed"
    fi
    mkdir -p "$SEAWEEDFS_HOME"
    mv -f "$stage/weed" "$SEAWEEDFS_BIN"
    rm -rf "$stage" "$src"
    log "seaweedfs installed at $SEAWEEDFS_BIN ($((SECONDS - started))s)"
}

install_keycloak() {
    if [[ -f "$KEYCLOAK_HOME/.installed" ]]; then
        log "keycloak $KEYCLOAK_VERSION already installed in $KEYCLOAK_HOME"
        return 0
    fi
    command -v java >/dev/null || die "java not found; Keycloak $KEYCLOAK_VERSION needs Java 17+"
    command -v mvn >/dev/null || die "mvn not found; it fetches the Keycloak distribution"
    command -v unzip >/dev/null || die "unzip not found; it unpacks the Keycloak distribution"
    local stage="$KEYCLOAK_HOME.partial" started=$SECONDS
    local mvn_log="$CACHE_DIR/logs/keycloak-$KEYCLOAK_VERSION-install.log"
    rm -rf "$stage"
    mkdir -p "$stage" "$CACHE_DIR/logs"
    log "fetching keycloak-quarkus-dist $KEYCLOAK_VERSION (169 MB) with Maven (log: $mvn_log)"
    if ! mvn -B "$MAVEN_DEPENDENCY_PLUGIN:copy" \
        -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
        -DoutputDirectory="$stage" >"$mvn_log" 2>&1; then
        show_log_tail "$mvn_log"
        die "Maven could not fetch Keycloak $KEYCLOAK_VERSION"
    fi
    local zip="$stage/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip"
    [[ -f "$zip" ]] || die "Maven finished but $zip is missing"
    unzip -q "$zip" -d "$stage" || die "unzip of $zip failed"
    [[ -x "$stage/keycloak-$KEYCLOAK_VERSION/bin/kc.sh" ]] || die "no bin/kc.sh in the Keycloak zip"
    # The zip stays in Maven's local repository; the cache keeps only the unpacked server.
    rm -rf "$KEYCLOAK_HOME"
    mv "$stage/keycloak-$KEYCLOAK_VERSION" "$KEYCLOAK_HOME"
    rm -rf "$stage"
    touch "$KEYCLOAK_HOME/.installed"
    log "keycloak $KEYCLOAK_VERSION installed in $KEYCLOAK_HOME ($((SECONDS - started))s)"
}

install_postgres() {
    if [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]]; then
        log "postgresql $PG_MAJOR already installed in $PG_BIN"
        return 0
    fi
    [[ "$(id -u)" == "0" ]] ||
        die "PostgreSQL $PG_MAJOR server is missing ($PG_BIN/initdb); install postgresql-$PG_MAJOR as root"
    command -v apt-get >/dev/null ||
        die "PostgreSQL $PG_MAJOR server is missing and apt-get is unavailable; install it by hand"
    local started=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    log "installing postgresql-$PG_MAJOR with apt-get"
    apt-get update -q >/dev/null || die "apt-get update failed"
    # Keep the Debian package from creating and starting its own cluster on 5432: we run ours.
    apt-get install -y -q postgresql-common >/dev/null || die "apt-get install postgresql-common failed"
    if [[ -f /etc/postgresql-common/createcluster.conf ]]; then
        sed -i 's/^#\?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
            /etc/postgresql-common/createcluster.conf
    fi
    apt-get install -y -q "postgresql-$PG_MAJOR" >/dev/null || die "apt-get install postgresql-$PG_MAJOR failed"
    [[ -x "$PG_BIN/initdb" ]] || die "postgresql-$PG_MAJOR installed but $PG_BIN/initdb is missing"
    log "postgresql $PG_MAJOR installed ($((SECONDS - started))s)"
}

# Orthanc and its DICOMweb plugin for the side-by-side benchmark only (opt-in, never in "all"):
# the Debian packages and the libraries they need that this machine lacks, unpacked without root.
install_orthanc() {
    if [[ -f "$ORTHANC_HOME/.installed" ]]; then
        log "orthanc $ORTHANC_VERSION already installed in $ORTHANC_HOME"
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not found; Orthanc is taken from Debian's packages"
    local stage="$ORTHANC_HOME.partial" started=$SECONDS pkg missing
    rm -rf "$stage"
    mkdir -p "$stage/debs"
    local -a packages=(orthanc orthanc-dicomweb)
    # Direct dependencies only: the rest of their closure is in any Debian image with dcmtk.
    while read -r pkg; do
        [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" == "install ok installed" ]] ||
            packages+=("$pkg")
    done < <(apt-cache depends orthanc orthanc-dicomweb | sed -n 's/^ *Depends: \(lib[^<]*\)$/\1/p' | sort -u)
    log "fetching ${packages[*]}"
    (cd "$stage/debs" && apt-get download "${packages[@]}") >/dev/null 2>&1 ||
        die "apt-get download ${packages[*]} failed"
    for pkg in "$stage"/debs/*.deb; do
        dpkg-deb -x "$pkg" "$stage/root"
    done
    rm -rf "$stage/debs"
    [[ -x "$stage/root/usr/sbin/Orthanc" ]] || die "the orthanc package holds no usr/sbin/Orthanc"
    missing="$(LD_LIBRARY_PATH="$stage/root/usr/lib/x86_64-linux-gnu:$stage/root/usr/lib/orthanc" \
        ldd "$stage/root/usr/sbin/Orthanc" "$stage"/root/usr/share/orthanc/plugins/*.so |
        sed -n 's/^\t\(.*\) => not found$/\1/p' | sort -u)"
    [[ -z "$missing" ]] || die "Orthanc still lacks shared libraries: $missing"
    touch "$stage/.installed"
    rm -rf "$ORTHANC_HOME"
    mv "$stage" "$ORTHANC_HOME"
    log "orthanc $ORTHANC_VERSION installed in $ORTHANC_HOME ($((SECONDS - started))s)"
}

main() {
    local components component minio_pid="" seaweedfs_pid="" rc=0
    # Not a server the scripts start: the benchmark runs it in a network namespace of its own.
    if [[ "${1:-}" == orthanc ]]; then
        mkdir -p "$CACHE_DIR"
        with_lock "$CACHE_DIR/.install-orthanc.lock" install_orthanc
        return
    fi
    components="$(components_from_args "${1:-all}")"
    # "all" here also installs the tools only some tests start, so a CI machine has them.
    # SeaweedFS too (SONOBRIDGE_SEAWEEDFS=0 skips it): a cold build is long (about 20 minutes of
    # two busy cores, once per machine; 70 s with Go's caches warm), well inside CI's budget.
    if [[ "${1:-all}" == all ]]; then
        components="$components toxiproxy keycloak"
        [[ "${SONOBRIDGE_SEAWEEDFS:-1}" == 1 ]] && components="$components seaweedfs"
    fi
    mkdir -p "$CACHE_DIR"
    # The MinIO build is by far the slowest step, so it starts first and runs beside the others.
    if [[ " $components " == *" minio "* ]]; then
        with_lock "$CACHE_DIR/.install-minio.lock" install_minio &
        minio_pid=$!
    fi
    if [[ " $components " == *" seaweedfs "* ]]; then
        with_lock "$CACHE_DIR/.install-seaweedfs.lock" install_seaweedfs &
        seaweedfs_pid=$!
    fi
    for component in $components; do
        [[ "$component" == minio || "$component" == seaweedfs ]] && continue
        # Not in an "||" context, so errexit still applies inside the installer.
        set +e
        (with_lock "$CACHE_DIR/.install-$component.lock" "install_$component")
        [[ $? -eq 0 ]] || rc=1
        set -e
    done
    if [[ -n "$minio_pid" ]]; then
        log "waiting for the minio install to finish"
        wait "$minio_pid" || rc=1
    fi
    if [[ -n "$seaweedfs_pid" ]]; then
        log "waiting for the seaweedfs install to finish"
        wait "$seaweedfs_pid" || rc=1
    fi
    return "$rc"
}

main "$@"
