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

# The browser tests drive Debian's Chromium: install it where it is missing (no download of a
# browser by Playwright).
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

echo "== pass 1/2: SQLite"
"$PY" -m pytest -m "not postgres and not redis" "$@"

echo "== pass 2/2: PostgreSQL + Redis (throwaway servers)"
# Durability is irrelevant for a throwaway test cluster: trade it for speed.
servers_start fsync=off synchronous_commit=off full_page_writes=off
DATABASE_URL="$DATABASE_URL_THROWAWAY" TEST_REDIS_URL="$REDIS_URL_THROWAWAY" "$PY" -m pytest -m "not embedded and not browser" "$@"
