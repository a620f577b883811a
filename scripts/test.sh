#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it:
#   1. on SQLite (the embedded default), every test but those needing real servers;
#   2. on a throwaway PostgreSQL cluster (initdb/pg_ctl) with a throwaway Redis, EVERY test,
#      including the concurrency tests, which fail (never skip) without those servers.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
PYTEST_ARGS=("$@")

ensure_postgres() {
  if ! command -v pg_ctl >/dev/null 2>&1 && [ ! -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
    echo "== installing PostgreSQL (apt)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  PGBIN=$(dirname "$(command -v pg_ctl 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl | tail -n1)")
}
ensure_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "== installing redis-server (apt)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
}

echo "== pass 1/2: SQLite"
"$PY" -m pytest -m "not postgres and not redis" "${PYTEST_ARGS[@]}"

echo "== pass 2/2: PostgreSQL + Redis (throwaway servers)"
ensure_postgres
ensure_redis
WORK=$(mktemp -d /tmp/omnistock-test.XXXXXX)
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PGPORT=${TEST_PG_PORT:-$(free_port)}
REDISPORT=${TEST_REDIS_PORT:-$(free_port)}
RUN_AS=()
if [ "$(id -u)" = "0" ]; then
  # initdb refuses to run as root: run the cluster as the postgres (or nobody) user.
  PGUSER_OS=$(getent passwd postgres >/dev/null && echo postgres || echo nobody)
  chown "$PGUSER_OS" "$WORK"
  RUN_AS=(runuser -u "$PGUSER_OS" --)
fi
cleanup() {
  "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  [ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"${RUN_AS[@]}" "$PGBIN/initdb" -D "$WORK/pg" -U omnistock -A trust -E UTF8 --no-locale >/dev/null
"${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w start \
  -o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null
redis-server --port "$REDISPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log" --dir "$WORK"
for _ in $(seq 50); do redis-cli -p "$REDISPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

DATABASE_URL="postgres://omnistock@127.0.0.1:$PGPORT/omnistock" \
TEST_REDIS_URL="redis://127.0.0.1:$REDISPORT/0" \
  "$PY" -m pytest "${PYTEST_ARGS[@]}"
