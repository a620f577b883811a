#!/usr/bin/env bash
# Run one command beside throwaway PostgreSQL + Redis servers (as pass 2 of `make test` does):
#   bash scripts/with_servers.sh .venv/bin/python -m pytest tests/common/test_schedule_runs.py
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
# shellcheck source=scripts/servers.sh
source scripts/servers.sh
servers_start fsync=off synchronous_commit=off full_page_writes=off
DATABASE_URL="$DATABASE_URL_THROWAWAY" TEST_REDIS_URL="$REDIS_URL_THROWAWAY" "$@"
