# Throwaway PostgreSQL and Redis servers for tests and benchmarks. Source it, then:
#   servers_start [extra postgres -c options...]   sets DATABASE_URL_THROWAWAY, REDIS_URL_THROWAWAY
# They are stopped and deleted when the calling shell exits.
# shellcheck shell=bash

_free_port() { "${PY:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

_ensure_packages() {
  local missing=()
  command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  PGBIN=$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl | tail -n1)")")
  export PGBIN
}

servers_stop() {
  [ -n "${SERVERS_WORK:-}" ] || return 0
  "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$SERVERS_WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  [ -f "$SERVERS_WORK/redis.pid" ] && kill "$(cat "$SERVERS_WORK/redis.pid")" 2>/dev/null || true
  rm -rf "$SERVERS_WORK"
  SERVERS_WORK=
}

servers_start() {
  _ensure_packages
  SERVERS_WORK=$(mktemp -d /tmp/omnistock-servers.XXXXXX)
  PGPORT=$(_free_port)
  REDISPORT=$(_free_port)
  RUN_AS=()
  if [ "$(id -u)" = "0" ]; then
    # initdb refuses to run as root: run the cluster as the postgres (or nobody) user.
    local os_user
    os_user=$(getent passwd postgres >/dev/null && echo postgres || echo nobody)
    chown "$os_user" "$SERVERS_WORK"
    RUN_AS=(runuser -u "$os_user" --)
  fi
  trap servers_stop EXIT
  local options="-p $PGPORT -k $SERVERS_WORK -c listen_addresses=127.0.0.1 -c max_connections=200"
  for option in "$@"; do options="$options -c $option"; done
  "${RUN_AS[@]}" "$PGBIN/initdb" -D "$SERVERS_WORK/pg" -U omnistock -A trust -E UTF8 --no-locale >/dev/null
  "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$SERVERS_WORK/pg" -l "$SERVERS_WORK/pg.log" -w start -o "$options" >/dev/null
  redis-server --port "$REDISPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$SERVERS_WORK/redis.pid" --logfile "$SERVERS_WORK/redis.log" --dir "$SERVERS_WORK"
  for _ in $(seq 50); do redis-cli -p "$REDISPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  DATABASE_URL_THROWAWAY="postgres://omnistock@127.0.0.1:$PGPORT/omnistock"
  REDIS_URL_THROWAWAY="redis://127.0.0.1:$REDISPORT/0"
  export PGPORT REDISPORT DATABASE_URL_THROWAWAY REDIS_URL_THROWAWAY
  "${RUN_AS[@]}" "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U omnistock omnistock 2>/dev/null || true
}
