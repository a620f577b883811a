#!/usr/bin/env bash
# The stock ledger and order placement BEFORE and AFTER a change, in one run on one throwaway
# PostgreSQL (and Redis), each figure beside the pgbench ceiling of the same rows
# (bench/bench_ledger.py). Writes bench/results/ledger.md: one before/after table.
#
#   bash bench/compare.sh [--quick]     before = BASELINE, after = the work tree
#   BASELINE=e2f338f make bench         the same, through bench/run.sh
#   BASELINE=e2f338f AFTER=e2f338f SECTION=ledger_baseline_check bash bench/compare.sh
#                                       both sides one revision: how far figures swing
# AFTER=<rev>: the after side is that revision instead of the work tree. SECTION=<name>: write
# bench/results/<name>.md (and its data in bench/results/<name>_data/). TITLE=<text>: the
# section's heading (default: the redesign's before/after, or "<rev> against itself").
#
# A side that is a revision is checked out in a temporary git worktree (removed at exit). Each
# side gets a new database, migrated by its own manage.py, and runs the CURRENT
# bench/bench_ledger.py, _common.py and bench_orders.py (copied into the worktree), so both
# sides run the same workload. About 9 minutes in full (15 s per run), 3 with --quick (3 s).
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=$(pwd)
PY="$MAIN/${VENV:-.venv}/bin/python"
BASELINE=${BASELINE:-e2f338f}  # the last commit before the one-writer redesign (issue #14)
AFTER=${AFTER:-}
SECTION=${SECTION:-ledger}
SETTINGS="BASELINE=$BASELINE${AFTER:+ AFTER=$AFTER}"
[ "$SECTION" = ledger ] || SETTINGS="$SETTINGS SECTION=$SECTION"
COMMAND="${COMPARE_COMMAND:-$SETTINGS bash bench/compare.sh${*:+ $*}}"
DATA="$MAIN/bench/results/${SECTION}_data"

# shellcheck source=scripts/servers.sh
source scripts/servers.sh
servers_start shared_buffers=512MB
# Production-like, as bench/run.sh: PostgreSQL, Redis as cache and broker, DEBUG off.
export DATABASE_URL="$DATABASE_URL_THROWAWAY" REDIS_URL="$REDIS_URL_THROWAWAY"
export DB_CONN_MAX_AGE=600
export DEBUG=0 SECRET_KEY="bench-only-not-secret" ALLOWED_HOSTS="127.0.0.1,localhost,testserver"

WORKTREES=()
cleanup() {
  for tree in ${WORKTREES[@]+"${WORKTREES[@]}"}; do
    git -C "$MAIN" worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"
  done
  git -C "$MAIN" worktree prune
  servers_stop
}
trap cleanup EXIT  # replaces servers_start's trap, and stops the servers too

# The tree of a side, in TREE: a new worktree of the revision, or the work tree itself when the
# revision is empty.
checkout() {
  local rev=$1
  TREE=$MAIN
  [ -n "$rev" ] || return 0
  TREE=$(mktemp -d /tmp/omnistock-compare.XXXXXX)
  WORKTREES+=("$TREE")
  git -C "$MAIN" worktree add --detach --quiet "$TREE" "$rev"
  # The current benchmark, the same on both sides.
  cp "$MAIN"/bench/{bench_ledger.py,_common.py,bench_orders.py} "$TREE/bench/"
}

rm -rf "$DATA"
mkdir -p "$DATA"
run_side() {
  local label=$1 tree=$2
  shift 2
  echo "== $label: $tree ($(git -C "$tree" rev-parse --short HEAD))"
  # (Called as `run_side … || status=$?`, where bash ignores set -e: hence the returns.)
  "${RUN_AS[@]}" "$PGBIN/dropdb" -h 127.0.0.1 -p "$PGPORT" -U omnistock --if-exists omnistock || return
  "${RUN_AS[@]}" "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U omnistock omnistock || return
  redis-cli -p "$REDISPORT" flushall >/dev/null || return
  (cd "$tree" && "$PY" manage.py migrate --noinput >/dev/null) || return
  (cd "$tree/bench" && "$PY" bench_ledger.py --label "$label" --out "$DATA/$label.json" "$@")
}

checkout "$BASELINE"
before_tree=$TREE
checkout "$AFTER"
after_tree=$TREE

status=0
run_side before "$before_tree" "$@" || status=$?  # invariants violated: still report
run_side after "$after_tree" "$@" || status=$?
"$PY" bench/bench_ledger.py --report "$DATA/before.json" "$DATA/after.json" \
  --section "$SECTION" --command "$COMMAND" ${TITLE:+--title "$TITLE"}
exit $status
