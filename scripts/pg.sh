#!/bin/sh
# pg.sh: a throwaway PostgreSQL cluster for tests and benchmarks, run as an unprivileged
# user (initdb into a temporary directory, the server on 127.0.0.1 and a free port, fsync
# on). Installs Debian's postgresql when it is missing (scripts/bootstrap.sh test).
#   scripts/pg.sh start DIR        start a cluster in DIR; prints its base URL
#                                  (postgres://s2@127.0.0.1:PORT); exit 3: cannot install
#   scripts/pg.sh createdb DIR DB  create database DB; prints its URL
#   scripts/pg.sh stop DIR         stop it (fast shutdown) and remove DIR
#   scripts/pg.sh kill DIR         stop it the hard way (immediate shutdown: crash recovery next)
#   scripts/pg.sh restart DIR      restart it on the same port (fast shutdown, start)
#   scripts/pg.sh psql DIR DB ...  run psql against DB
set -eu
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || {
    echo "usage: scripts/pg.sh start|createdb|stop|kill|restart|psql DIR [ARGS]" >&2
    exit 2
}

bindir() {
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    done
    return 1
}

# The server refuses to run as root: use Debian's postgres user (or nobody) then.
run_as() {
    if [ "$(id -u)" = 0 ]; then
        u=postgres
        id -u "$u" >/dev/null 2>&1 || u=nobody
        runuser -u "$u" -- "$@"
    else
        "$@"
    fi
}

case $cmd in
start)
    if ! bin=$(bindir); then
        here=$(cd "$(dirname "$0")" && pwd)
        "$here/bootstrap.sh" test >&2 || true
        bin=$(bindir) || { echo "pg.sh: postgresql is not installed and cannot be" >&2; exit 3; }
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then
        u=postgres
        id -u "$u" >/dev/null 2>&1 || u=nobody
        chown "$u" "$dir"
        # the server must reach its directory through every parent
        p=$dir
        while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
    fi
    run_as "$bin/initdb" -D "$dir/data" -U s2 --auth=trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 || {
        echo "pg.sh: initdb failed, see $dir/initdb.log" >&2
        exit 1
    }
    tries=0
    while :; do
        port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
        if run_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=300 -c shared_buffers=128MB -c synchronous_commit=on" \
            >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        [ $tries -lt 5 ] || { echo "pg.sh: the server does not start, see $dir/server.log" >&2; exit 1; }
    done
    echo "$port" >"$dir/port"
    echo "postgres://s2@127.0.0.1:$port"
    ;;
createdb)
    port=$(cat "$dir/port")
    name=${3:?database name}
    "$(bindir)/psql" -q -h 127.0.0.1 -p "$port" -U s2 -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE DATABASE \"$name\"" >/dev/null
    echo "postgres://s2@127.0.0.1:$port/$name"
    ;;
psql)
    port=$(cat "$dir/port")
    name=${3:?database name}
    shift 3
    "$(bindir)/psql" -q -h 127.0.0.1 -p "$port" -U s2 -d "$name" -v ON_ERROR_STOP=1 "$@"
    ;;
stop)
    [ -d "$dir/data" ] && run_as "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
kill)
    run_as "$(bindir)/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    ;;
restart)
    port=$(cat "$dir/port")
    run_as "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    run_as "$(bindir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=300 -c shared_buffers=128MB -c synchronous_commit=on" >/dev/null
    ;;
*)
    echo "pg.sh: unknown command '$cmd'" >&2
    exit 2
    ;;
esac
