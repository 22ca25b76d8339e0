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

pgbin=$(dirname "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | head -1)")
work=$(mktemp -d /tmp/plinth-bench.XXXXXX)
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
  chown postgres: "$work"
  as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
gateway_pid=
cleanup() {
  [[ -n $gateway_pid ]] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (settings: ${BENCH_PG_OPTIONS:-defaults, durable})" >&2
"${as_pg[@]}" "$pgbin/initdb" -D "$work/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w \
  -o "-h 127.0.0.1 -p $port -k $work -c max_connections=200 ${BENCH_PG_OPTIONS:-}" start >/dev/null
psql=(psql -h 127.0.0.1 -p "$port" -U postgres -qAt)
"${psql[@]}" -c 'CREATE DATABASE plinth' -c 'CREATE DATABASE pgbench'

echo "==> building plinth and ledgerload" >&2
go build -o "$work/plinth" ./cmd/plinth
go build -o "$work/ledgerload" ./cmd/ledgerload

max=$(tr ',' '\n' <<<"$levels" | sort -n | tail -1)
export PLINTH_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/plinth"
export PLINTH_BACKENDS_LEDGER=postgres PLINTH_BACKENDS_CUSTOMERS=postgres
export PLINTH_POSTGRES_MAX_CONNS=$((max + 8)) PLINTH_LOG_LEVEL=info
export PLINTH_LISTEN=127.0.0.1:0 PLINTH_BACKENDS_ACCESS=postgres PLINTH_BACKENDS_AUDIT=postgres
export PLINTH_KEYRING_BACKEND=local PLINTH_KEYRING_KEY_FILE="$work/keys.json"
"$work/plinth" migrate up >/dev/null
api_key=$("$work/plinth" bootstrap | grep -o 'plk_[0-9a-f_]*')
"$work/plinth" serve 2>"$work/gateway.log" &
gateway_pid=$!
for _ in $(seq 100); do
  addr=$(grep -o '"addr":"[^"]*"' "$work/gateway.log" | head -1 | cut -d'"' -f4 || true)
  [[ -n $addr ]] && break
  sleep 0.1
done
[[ -n $addr ]] || { cat "$work/gateway.log" >&2; echo "gateway did not start" >&2; exit 1; }
# The gateway logs at info, one line per call, as it would in production.
echo "==> ledgerload against http://$addr for $duration per run" >&2
"$work/ledgerload" --url "http://$addr" --api-key "$api_key" --concurrency "$levels" --duration "$duration" | tee "$work/ledgerload.out"

echo "==> pgbench tpcb-like (scale $max) for $duration per run" >&2
pgbench -h 127.0.0.1 -p "$port" -U postgres -i -q -s "$max" pgbench >/dev/null 2>&1
printf '%s\n' "clients  pgbench_tps  ledger_spread_tps  ratio" >"$work/ratio"
for n in ${levels//,/ }; do
  tps=$(pgbench -h 127.0.0.1 -p "$port" -U postgres -b tpcb-like -n -c "$n" -j "$(( n < 2 ? 1 : 2 ))" -T "$seconds" pgbench 2>/dev/null |
    awk '/^tps = / {print int($3)}')
  ours=$(awk -v n="$n" '$1 == "spread" && $2 == n {print $3}' "$work/ledgerload.out")
  printf '%-8s %-12s %-18s %s\n' "$n" "$tps" "$ours" "$(awk -v a="$ours" -v b="$tps" 'BEGIN {printf "%.2f", a / b}')" >>"$work/ratio"
done
echo
cat "$work/ratio"
