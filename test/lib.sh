# test/lib.sh: shared by test/run and demo/run (sourced, not run).
#
# Installs what the extension needs on Debian, builds and installs it, and
# runs throwaway PostgreSQL clusters as an unprivileged OS user: PostgreSQL
# refuses to run as root, so root hands the cluster to the "postgres" user.

set -euo pipefail

# The PostgreSQL major to build and test against.  Debian 12 ships 15;
# another major is built from Debian's own source package into a cache
# outside the clone, kept between runs on the same machine (pg_build).
PGVERSION=${PGVERSION:-15}
PGCACHE=${PGCACHE:-/var/cache/tools-tests}
if [ "$PGVERSION" = 15 ]; then
    PGBIN=/usr/lib/postgresql/$PGVERSION/bin
else
    PGBIN=$PGCACHE/pg$PGVERSION/bin
fi
export PATH="$PGBIN:$PATH"
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

# Install the Debian packages the build and the tests need, if missing
# (for a major that Debian 12 does not ship: what building it needs, then
# the build).
install_deps() {
    local pkgs="postgresql-$PGVERSION postgresql-server-dev-$PGVERSION postgresql-contrib libipc-run-perl make gcc"
    local missing=""
    if [ "$PGVERSION" != 15 ]; then
        pkgs="libipc-run-perl make gcc bison flex pkg-config libicu-dev libssl-dev zlib1g-dev libreadline-dev"
    fi
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
    [ "$PGVERSION" = 15 ] || pg_build
}

# The Debian suite whose source package of a PostgreSQL major we build.
pg_suite() {
    case "$1" in
        13) echo bullseye ;;
        17) echo trixie ;;
        *) echo sid ;;
    esac
}

# Before 14, installing src/test/isolation installs nothing: put its two
# programs where PGXS looks for them.
pg_install_isolation() {
    local dir
    dir="$("$PGBIN/pg_config" --pkglibdir)/pgxs/src/test/isolation"
    [ -x "$dir/pg_isolation_regress" ] && return 0
    as_root make -s -C "$1/src/test/isolation" all >/dev/null &&
        as_root mkdir -p "$dir" &&
        as_root install -m 755 "$1/src/test/isolation/pg_isolation_regress" \
            "$1/src/test/isolation/isolationtester" "$dir/"
}

# Build PostgreSQL $PGVERSION from Debian's source package into
# $PGCACHE/pg$PGVERSION, once per machine: the server, the contribs the
# tests use, pg_isolation_regress and the TAP modules.  apt runs with a
# configuration of its own (a deb-src line of the machine's Debian mirror),
# which leaves the machine's sources alone.
pg_build() {
    local prefix="$PGCACHE/pg$PGVERSION" apt mirror tarball tree
    [ -f "$prefix/.built" ] && return 0
    echo "building PostgreSQL $PGVERSION from Debian's source package (once per machine)"
    apt=$(mktemp -d /tmp/tools-pgsrc.XXXXXX)
    chmod 755 "$apt"
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror:-http://deb.debian.org/debian} $(pg_suite "$PGVERSION") main" >"$apt/sources.list"
    mkdir -p "$apt/lists/partial" "$apt/archives/partial"
    local opts=(-o Dir::Etc::sourcelist="$apt/sources.list" -o Dir::Etc::sourceparts=/dev/null
        -o Dir::State::lists="$apt/lists" -o Dir::Cache::archives="$apt/archives"
        -o APT::Sandbox::User=root)
    as_root apt-get -qq "${opts[@]}" update
    (cd "$apt" && as_root apt-get -qq "${opts[@]}" source --download-only "postgresql-$PGVERSION")
    tarball=$(ls "$apt"/postgresql-"$PGVERSION"_*.orig.tar.* | head -n 1)
    tree="$PGCACHE/src-pg$PGVERSION"
    as_root rm -rf "$tree" "$prefix"
    as_root mkdir -p "$tree"
    as_root tar xf "$tarball" -C "$tree" --strip-components=1
    (cd "$tree" &&
        as_root ./configure -q --prefix="$prefix" --enable-tap-tests --with-icu --with-openssl >/dev/null &&
        as_root make -s -j"$(nproc)" >/dev/null 2>&1 &&
        as_root make -s install >/dev/null &&
        for d in contrib/postgres_fdw contrib/file_fdw contrib/citext src/test/isolation src/test/perl; do
            as_root make -s -C "$d" install >/dev/null || exit 1
        done &&
        pg_install_isolation "$tree")
    as_root touch "$prefix/.built"
    as_root rm -rf "$apt"
}

# Install what the MariaDB test needs: its server (kept from starting a
# system instance of its own) and mysql_fdw.  Where they cannot install,
# the test says so and is skipped.
install_mariadb_deps() {
    local pkgs="mariadb-server postgresql-$PGVERSION-mysql-fdw" missing="" p
    if [ "$PGVERSION" != 15 ]; then
        echo "mysql_fdw is packaged for PostgreSQL 15 only here: the MariaDB test will be skipped on $PGVERSION"
        return 0
    fi
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
    case "$PGVERSION" in 15) ;; *) echo "Citus is built for PostgreSQL 15 only here: the Citus test will be skipped on $PGVERSION"; return 0 ;; esac
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
    make -C "$TOP" -s clean PG_CONFIG="$PGBIN/pg_config"
    make -C "$TOP" -s PG_CONFIG="$PGBIN/pg_config"
    as_root make -C "$TOP" -s install PG_CONFIG="$PGBIN/pg_config"
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
