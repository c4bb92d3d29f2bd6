# test/lib.sh: shared by test/run and demo/run (sourced, not run).
#
# Installs what the extension needs on Debian, builds and installs it, and
# runs throwaway PostgreSQL clusters as an unprivileged OS user: PostgreSQL
# refuses to run as root, so root hands the cluster to the "postgres" user.

set -euo pipefail

PGVERSION=${PGVERSION:-15}
export PATH="/usr/lib/postgresql/$PGVERSION/bin:$PATH"
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Run a command as root: directly, or through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The OS user that owns throwaway clusters.
cluster_user() {
    if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

# Run a command as the cluster user, keeping the environment given.
as_cluster_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- env PATH="$PATH" "$@"
    else
        "$@"
    fi
}

# Install the Debian packages the build and the tests need, if missing.
install_deps() {
    local pkgs="postgresql-$PGVERSION postgresql-server-dev-$PGVERSION postgresql-contrib libipc-run-perl make gcc"
    local missing=""
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "installing:$missing"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
    # Debian's package starts a cluster of its own on port 5432; ours use
    # private sockets and need nothing from it.
}

# Install what the MariaDB test needs: its server (kept from starting a
# system instance of its own) and mysql_fdw.  Where they cannot install,
# the test says so and is skipped.
install_mariadb_deps() {
    local pkgs="mariadb-server postgresql-$PGVERSION-mysql-fdw" missing="" p
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -n "$missing" ] || return 0
    echo "installing:$missing"
    local norc=/usr/sbin/policy-rc.d added=false
    if [ ! -e "$norc" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$norc" >/dev/null
        as_root chmod +x "$norc"
        added=true
    fi
    { as_root apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; } ||
        echo "could not install$missing: the MariaDB test will be skipped"
    if $added; then as_root rm -f "$norc"; fi
}

# Build and install Citus from ../shared/vendor (Debian does not package
# it), for the Citus test only, when the source is there, the server is a
# version it supports and it is not installed yet.  The build tree is kept
# in a cache outside the clone.  Where it cannot be built, the test says so
# and is skipped.
CITUS_VERSION=13.2.2
install_citus() {
    local vendor="$TOP/../shared/vendor" cache=/var/cache/tools-tests
    local tarball="$vendor/citus-$CITUS_VERSION.tar.gz"
    local tree="$cache/citus-$CITUS_VERSION-pg$PGVERSION"
    [ -f "$(pg_config --pkglibdir)/citus.so" ] && return 0
    case "$PGVERSION" in 15|16|17) ;; *) echo "Citus $CITUS_VERSION does not support PostgreSQL $PGVERSION: the Citus test will be skipped"; return 0 ;; esac
    if [ ! -f "$tarball" ]; then
        echo "no Citus source in $vendor: the Citus test will be skipped"
        return 0
    fi
    echo "building Citus $CITUS_VERSION (once per machine)"
    {
        as_root apt-get install -y -qq libkrb5-dev liblz4-dev libzstd-dev \
            libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev >/dev/null &&
        as_root mkdir -p "$cache" &&
        if [ ! -f "$tree/citus.built" ]; then
            as_root rm -rf "$tree" && as_root mkdir -p "$tree" &&
            as_root tar xzf "$tarball" -C "$tree" &&
            (cd "$tree" &&
                for p in "$vendor"/citus-$CITUS_VERSION-*.patch; do
                    if [ -f "$p" ]; then as_root patch -s -p1 < "$p" || exit 1; fi
                done) &&
            (cd "$tree" && as_root ./configure --without-libcurl \
                PG_CONFIG="$(command -v pg_config)" >/dev/null &&
                as_root make -s -j"$(nproc)" >/dev/null 2>&1) &&
            as_root touch "$tree/citus.built"
        fi &&
        as_root make -s -C "$tree" install >/dev/null
    } || echo "could not build Citus: the Citus test will be skipped"
}

# Build and install the extension into the server's directories.
build_install() {
    make -C "$TOP" -s PG_CONFIG="/usr/lib/postgresql/$PGVERSION/bin/pg_config"
    as_root make -C "$TOP" -s install PG_CONFIG="/usr/lib/postgresql/$PGVERSION/bin/pg_config"
}

# Start a throwaway cluster: socket in a fresh temp dir, no TCP.  Sets
# CLUSTER_DIR, PGHOST, PGPORT, PGUSER, PGDATABASE; cluster_stop removes it.
cluster_start() {
    CLUSTER_DIR=$(mktemp -d /tmp/tools-cluster.XXXXXX)
    chmod 755 "$CLUSTER_DIR"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$CLUSTER_DIR"; fi
    export PGHOST="$CLUSTER_DIR" PGPORT=54329 PGUSER=$(cluster_user) PGDATABASE=postgres
    as_cluster_user initdb -D "$CLUSTER_DIR/data" -U "$PGUSER" -A trust --no-sync >"$CLUSTER_DIR/initdb.log" 2>&1 ||
        { cat "$CLUSTER_DIR/initdb.log"; return 1; }
    cat >>"$CLUSTER_DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$CLUSTER_DIR'
port = $PGPORT
fsync = off
max_connections = 40
${CLUSTER_CONF:-}
CONF
    as_cluster_user pg_ctl -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w start >/dev/null
}

cluster_stop() {
    [ -n "${CLUSTER_DIR:-}" ] || return 0
    as_cluster_user pg_ctl -D "$CLUSTER_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$CLUSTER_DIR"
    CLUSTER_DIR=
}
