#!/usr/bin/env bash
# Make sure every server the test suite needs answers on 127.0.0.1, as CI expects:
#   PostgreSQL :5432 (trust auth, database "test")   MariaDB :3306 (root, no password, database "test")
#   Redis      :6379                                 memcached :11211
# A server that answers is left alone; one installed but stopped is started; one missing is
# installed (Debian, as root) and started. Idempotent: running it twice changes nothing.
# Prints one line per server; exits non-zero with the reason when a server cannot be brought up.
set -euo pipefail

WAIT_SECONDS="${SERVICES_WAIT_SECONDS:-30}"
export DEBIAN_FRONTEND=noninteractive
apt_updated=0

die() {
    echo "services: $*" >&2
    exit 1
}

# Install Debian packages, running `apt-get update` at most once per run.
install_packages() {
    [ "$(id -u)" -eq 0 ] || die "cannot install $* : not root (install it yourself, or run as root)"
    command -v apt-get >/dev/null || die "cannot install $* : no apt-get on this machine"
    if [ "$apt_updated" -eq 0 ]; then
        apt-get update -qq >/dev/null
        apt_updated=1
    fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# wait_for <what> <command...>: retry the command until it succeeds, for at most WAIT_SECONDS.
wait_for() {
    local what="$1"
    shift
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "$what did not answer within ${WAIT_SECONDS}s"
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------- PostgreSQL
pg_answers() { pg_isready -q -h 127.0.0.1 -p 5432; }

pg_psql() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -v ON_ERROR_STOP=1 -tAq "$@"; }

pg_start() {
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    [ -n "$version" ] || die "postgresql: no cluster under /etc/postgresql"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
}

ensure_postgresql() {
    local how="running"
    if ! command -v pg_isready >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        install_packages postgresql
        local version hba
        version="$(ls /etc/postgresql | sort -V | tail -n 1)"
        hba="/etc/postgresql/$version/main/pg_hba.conf"
        # The first matching line wins, so trust for loopback goes on top.
        if ! grep -Eq '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
            sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
            # Where apt already started the server (systemd machines), make it reread the file.
            if pg_answers; then
                pg_ctlcluster --skip-systemctl-redirect "$version" main reload
            fi
        fi
        how="installed and started"
    fi
    if ! pg_answers; then
        [ "$how" = "running" ] && how="started"
        pg_start >/dev/null 2>&1 || pg_answers || die "postgresql: pg_ctlcluster start failed"
        wait_for "postgresql on 127.0.0.1:5432" pg_answers
    fi
    # pg_isready answers before the server accepts queries during recovery; wait for a real one.
    wait_for "postgresql (trust login as postgres)" pg_psql -c "SELECT 1"
    if [ "$(pg_psql -c "SELECT 1 FROM pg_database WHERE datname = 'test'")" != "1" ]; then
        pg_psql -c "CREATE DATABASE test" >/dev/null
    fi
    echo "postgresql 127.0.0.1:5432: $how, database test ready"
}

# ---------------------------------------------------------------- MariaDB
my_sql() { mariadb --protocol=TCP -h 127.0.0.1 -P 3306 -u root --connect-timeout=2 "$@"; }

my_answers() { my_sql -e "SELECT 1"; }

my_start() {
    install -d -o mysql -g mysql /run/mysqld
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
}

ensure_mariadb() {
    local how="running" fresh=0
    if [ ! -x /usr/sbin/mariadbd ]; then
        install_packages mariadb-server mariadb-client
        how="installed and started"
        fresh=1
    fi
    if ! my_answers >/dev/null 2>&1; then
        [ "$how" = "running" ] && how="started"
        my_start >/dev/null
        if [ "$fresh" -eq 1 ]; then
            # A fresh Debian root logs in by unix_socket only; the tests log in over TCP
            # without a password, so allow that (throwaway CI machine, loopback only).
            wait_for "mariadb socket" mariadb -u root -e "SELECT 1"
            mariadb -u root -e "
                CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
                GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
                ALTER USER 'root'@'localhost'
                    IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
                FLUSH PRIVILEGES;"
        fi
        wait_for "mariadb on 127.0.0.1:3306 (root, no password)" my_answers
    fi
    my_sql -e "CREATE DATABASE IF NOT EXISTS test" >/dev/null
    echo "mariadb 127.0.0.1:3306: $how, database test ready"
}

# ---------------------------------------------------------------- Redis
redis_answers() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

ensure_redis() {
    local how="running"
    if ! command -v redis-server >/dev/null; then
        install_packages redis-server
        how="installed and started"
    fi
    if ! redis_answers; then
        [ "$how" = "running" ] && how="started"
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
        wait_for "redis on 127.0.0.1:6379" redis_answers
    fi
    echo "redis 127.0.0.1:6379: $how"
}

# ---------------------------------------------------------------- memcached
# Bash's /dev/tcp speaks the text protocol, so no client package is needed to check.
memcached_answers() {
    local reply=""
    exec 3<>/dev/tcp/127.0.0.1/11211 || return 1
    printf 'version\r\n' >&3
    read -r -t 2 reply <&3 || true
    exec 3<&- 3>&-
    [[ "$reply" == VERSION* ]]
}

ensure_memcached() {
    local how="running"
    if ! command -v memcached >/dev/null; then
        install_packages memcached
        how="installed and started"
    fi
    if ! memcached_answers 2>/dev/null; then
        [ "$how" = "running" ] && how="started"
        local user=memcache
        getent passwd "$user" >/dev/null || user=nobody
        memcached -d -u "$user" -l 127.0.0.1 -p 11211 -m 64 || die "memcached failed to start"
        wait_for "memcached on 127.0.0.1:11211" memcached_answers
    fi
    echo "memcached 127.0.0.1:11211: $how"
}

ensure_postgresql
ensure_mariadb
ensure_redis
ensure_memcached
