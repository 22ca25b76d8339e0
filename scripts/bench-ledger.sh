#!/usr/bin/env bash
# Benchmarks MoveMoney through the gateway on PostgreSQL against pgbench's
# built-in tpcb-like script, on the same throwaway PostgreSQL server, at the
# same concurrencies. Prints both, the ratio, and whether the ledger's
# invariants held. docs/benchmarks.md records the figures.
#
#   scripts/bench-ledger.sh [CONCURRENCIES] [DURATION]
#   scripts/bench-ledger.sh 1,8,32 10s
#
# BENCH_PG_OPTIONS adds server settings, for experiments only (the
# figures in docs/benchmarks.md use none), e.g. "-c synchronous_commit=off".
set -euo pipefail
cd "$(dirname "$0")/.."
levels=${1:-1,8,32}
duration=${2:-10s}
seconds=${duration%s}

source scripts/lib/pg.sh
source scripts/lib/gateway.sh
work=$(mktemp -d /tmp/plinth-bench.XXXXXX)
cleanup() {
  gateway_stop
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

pg_start "$work" "${BENCH_PG_OPTIONS:-}"
port=$pg_port
pg_psql -c 'CREATE DATABASE plinth' -c 'CREATE DATABASE pgbench'

echo "==> building plinth and ledgerload" >&2
go build -o "$work/plinth" ./cmd/plinth
go build -o "$work/ledgerload" ./cmd/ledgerload

max=$(tr ',' '\n' <<<"$levels" | sort -n | tail -1)
export PLINTH_POSTGRES_URL=$(pg_url plinth)
export PLINTH_BACKENDS_LEDGER=postgres PLINTH_BACKENDS_CUSTOMERS=postgres
export PLINTH_POSTGRES_MAX_CONNS=$((max + 8)) PLINTH_LOG_LEVEL=info
export PLINTH_LISTEN=127.0.0.1:0 PLINTH_BACKENDS_ACCESS=postgres PLINTH_BACKENDS_AUDIT=postgres
export PLINTH_KEYRING_BACKEND=local PLINTH_KEYRING_KEY_FILE="$work/keys.json"
"$work/plinth" migrate up >/dev/null
api_key=$("$work/plinth" bootstrap | grep -o 'plk_[0-9a-f_]*')
gateway_start "$work/plinth" "$work/gateway.log"
addr=$gateway_addr
# The gateway logs at info, one line per call, as it would in production.
pgbench -h 127.0.0.1 -p "$port" -U postgres -i -q -s "$max" pgbench >/dev/null 2>&1
# pgbench's rate moves by a third and more between runs on a shared machine,
# so each concurrency runs the two back to back, each after a CHECKPOINT
# (so that neither pays for the other's dirty pages), and the ratio is of
# neighbours. The hot workload runs after, on its own.
echo "==> at each of $levels clients: ledgerload (spread), then pgbench tpcb-like (scale $max), $duration each" >&2
printf '%s\n' "clients  pgbench_tps  ledger_spread_tps  ratio" >"$work/ratio"
for n in ${levels//,/ }; do
  pg_psql -c CHECKPOINT
  "$work/ledgerload" --url "http://$addr" --api-key "$api_key" --concurrency "$n" --duration "$duration" --workloads spread | tee -a "$work/ledgerload.out"
  pg_psql -c CHECKPOINT
  tps=$(pgbench -h 127.0.0.1 -p "$port" -U postgres -b tpcb-like -n -c "$n" -j "$(( n < 2 ? 1 : 2 ))" -T "$seconds" pgbench 2>/dev/null |
    awk '/^tps = / {print int($3)}')
  echo "pgbench x$n: $tps transactions/s" >&2
  ours=$(awk -v n="$n" '$1 == "spread" && $2 == n {print $3}' "$work/ledgerload.out" | tail -1)
  printf '%-8s %-12s %-18s %s\n' "$n" "$tps" "$ours" "$(awk -v a="$ours" -v b="$tps" 'BEGIN {printf "%.2f", a / b}')" >>"$work/ratio"
done
pg_psql -c CHECKPOINT
"$work/ledgerload" --url "http://$addr" --api-key "$api_key" --concurrency "$levels" --duration "$duration" --workloads hot
echo
cat "$work/ratio"
