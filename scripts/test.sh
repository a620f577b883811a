#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it:
#   1. on SQLite (the embedded default), every test but those needing real servers;
#   2. on a throwaway PostgreSQL cluster (initdb/pg_ctl) with a throwaway Redis, every test again,
#      including the concurrency tests, which fail (never skip) without those servers — but
#      those marked `embedded`, which serve their own SQLite instance whatever the suite's
#      database is, and ran in pass 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
# shellcheck source=scripts/servers.sh
source scripts/servers.sh

echo "== pass 1/2: SQLite"
"$PY" -m pytest -m "not postgres and not redis" "$@"

echo "== pass 2/2: PostgreSQL + Redis (throwaway servers)"
# Durability is irrelevant for a throwaway test cluster: trade it for speed.
servers_start fsync=off synchronous_commit=off full_page_writes=off
DATABASE_URL="$DATABASE_URL_THROWAWAY" TEST_REDIS_URL="$REDIS_URL_THROWAWAY" "$PY" -m pytest -m "not embedded" "$@"
