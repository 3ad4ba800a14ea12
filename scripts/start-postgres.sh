#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on 127.0.0.1 for the records tests and
# prints the line to export its URL. Idempotent: a second run finds the
# running server and prints the same line. `start-postgres.sh stop` stops it
# by the PID in its pid file.
#
#   eval "$(scripts/start-postgres.sh)"   # sets CONMUTADOR_TEST_PG_URL
#
# Installs Debian's postgresql package when no server binaries are found
# (needs root, as on the CI machine). The cluster lives in
# $CONMUTADOR_PG_DIR (default /tmp/conmutador-pg), trusts local connections
# and listens on loopback only; never use it for anything but tests.
set -euo pipefail

DIR=${CONMUTADOR_PG_DIR:-/tmp/conmutador-pg}
DATA="$DIR/data"
PIDFILE="$DATA/postmaster.pid"
ENVFILE="$DIR/env"
DB=conmutador_test

log() { echo "start-postgres: $*" >&2; }

pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; fi
}

# Runs a command as the postgres user when we are root (initdb refuses root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    else
        "$@"
    fi
}

running_pid() {
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid=$(head -n 1 "$PIDFILE")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

if [ "${1:-start}" = stop ]; then
    if pid=$(running_pid); then
        kill -INT "$pid"   # fast shutdown
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        log "stopped pid $pid"
    else
        log "not running"
    fi
    exit 0
fi

BIN=$(pg_bindir)
if [ -z "$BIN" ]; then
    log "installing postgresql (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BIN=$(pg_bindir)
    [ -n "$BIN" ] || { log "postgresql did not install"; exit 1; }
fi

if pid=$(running_pid) && [ -f "$ENVFILE" ]; then
    port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\)\/.*/\1/p' "$ENVFILE")
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        log "already running (pid $pid)"
        cat "$ENVFILE"
        echo "# pid file: $PIDFILE (stop: kill -INT \$(head -n 1 $PIDFILE), or $0 stop)"
        exit 0
    fi
fi

# A stale or half-made cluster: start over.
if pid=$(running_pid); then kill -INT "$pid" || true; sleep 1; fi
rm -rf "$DIR"
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR"

# First free port from 54329 upwards (bash /dev/tcp: a refused connect means free).
port=54329
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
    [ "$port" -lt 54500 ] || { log "no free port"; exit 1; }
done

as_pg "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $DIR -c fsync=off -c max_connections=50" start >&2 \
    || { cat "$DIR/server.log" >&2; exit 1; }
"$BIN/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE $DB" >&2

echo "export CONMUTADOR_TEST_PG_URL=postgres://postgres@127.0.0.1:$port/$DB" >"$ENVFILE"
log "started pid $(head -n 1 "$PIDFILE") on 127.0.0.1:$port"
cat "$ENVFILE"
echo "# pid file: $PIDFILE (stop: kill -INT \$(head -n 1 $PIDFILE), or $0 stop)"
