#!/usr/bin/env bash
# `make bench`: every bench/bench_*.py against a throwaway PostgreSQL (and Redis), then
# docs/benchmarks.md is rebuilt from their sections with the machine's description.
# Pass --quick for short smoke runs. One script: BENCH=stock make bench.
# BASELINE=<rev> make bench: the stock ledger and order placement before (<rev>) and after (the
# work tree; AFTER=<rev> for a revision) instead, with bench/compare.sh (bench/results/ledger.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${BASELINE:-}" ]; then
  COMPARE_COMMAND="BASELINE=$BASELINE${AFTER:+ AFTER=$AFTER}${SECTION:+ SECTION=$SECTION} bash bench/run.sh${*:+ $*}" \
    exec bash bench/compare.sh "$@"
fi
PY="${VENV:-.venv}/bin/python"
# shellcheck source=scripts/servers.sh
source scripts/servers.sh
servers_start shared_buffers=512MB
# Production-like: PostgreSQL, and Redis as cache and broker.
export DATABASE_URL="$DATABASE_URL_THROWAWAY" REDIS_URL="$REDIS_URL_THROWAWAY"
export DB_CONN_MAX_AGE=600
# Production settings: with DEBUG on, Django records every query in memory (and the stock
# benchmark's workers ran that way until 2026-11-23, at ~0.3 ms more CPU per reservation).
export DEBUG=0 SECRET_KEY="bench-only-not-secret" ALLOWED_HOSTS="127.0.0.1,localhost,testserver"
mkdir -p bench/results
failed=()
for script in bench/bench_${BENCH:-*}.py; do
  name=$(basename "$script" .py)
  echo "== $name"
  # A fresh database per script, so one's data does not skew another's.
  "${RUN_AS[@]}" "$PGBIN/dropdb" -h 127.0.0.1 -p "$PGPORT" -U omnistock --if-exists omnistock
  "${RUN_AS[@]}" "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U omnistock omnistock
  "$PY" manage.py migrate --noinput >/dev/null
  if ! (cd bench && "../$PY" "$(basename "$script")" "$@"); then
    failed+=("$name")  # keep going: one broken benchmark must not hide the others' figures
  fi
done
"$PY" bench/assemble.py
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
