#!/usr/bin/env bash
# What a MoveMoney costs the database alone: runs the statements the gateway
# sends for one transfer (scripts/bench/movemoney.pgbench, in the gateway's
# round trips) with pgbench as the client, and pgbench's built-in tpcb-like
# script, on the same throwaway PostgreSQL server, at the same concurrencies.
# The ratio is the most scripts/bench-ledger.sh could show with a gateway
# that cost nothing; docs/benchmarks.md records both. Then the CPU that one
# transaction of each costs the server, at 1 client.
#
#   scripts/bench-ledger-sql.sh [CONCURRENCIES] [DURATION]
#   scripts/bench-ledger-sql.sh 1,8,32 10s
#
# The audit chainer, which the gateway runs in the background, does not
# run here: its work (moving the audit records into the chain, in batches)
# is left out of the database's share.
set -euo pipefail
cd "$(dirname "$0")/.."
levels=${1:-1,8,32}
duration=${2:-10s}
seconds=${duration%s}

source scripts/lib/pg.sh
work=$(mktemp -d /tmp/plinth-bench-sql.XXXXXX)
cleanup() {
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

pg_start "$work" "${BENCH_PG_OPTIONS:-}"
port=$pg_port
pg_psql -c 'CREATE DATABASE plinth' -c 'CREATE DATABASE pgbench' >/dev/null

echo "==> building plinth, migrating" >&2
go build -o "$work/plinth" ./cmd/plinth
max=$(tr ',' '\n' <<<"$levels" | sort -n | tail -1)
export PLINTH_POSTGRES_URL=$(pg_url plinth)
export PLINTH_BACKENDS_LEDGER=postgres PLINTH_BACKENDS_CUSTOMERS=postgres
export PLINTH_BACKENDS_ACCESS=postgres PLINTH_BACKENDS_AUDIT=postgres
export PLINTH_KEYRING_BACKEND=local PLINTH_KEYRING_KEY_FILE="$work/keys.json"
"$work/plinth" migrate up >/dev/null 2>"$work/migrate.log" || { cat "$work/migrate.log" >&2; exit 1; }
# Two accounts per client (pgbench's client ids start at 0), as ledgerload's
# spread workload has.
pg_psql -d plinth -c "
INSERT INTO ledger.accounts (id, currency, balance_policy, state, created_at, updated_at)
SELECT 'lac_' || lpad(i::text, 26, '0'), 'USD', 'unrestricted', 'open', now(), now()
  FROM generate_series(1, 2 * $max + 2) AS i" >/dev/null
pgbench -h 127.0.0.1 -p "$port" -U postgres -i -q -s "$max" pgbench >/dev/null 2>&1

run() { # run DATABASE ARGS...: transactions per second
  pgbench -h 127.0.0.1 -p "$port" -U postgres -n -M prepared -T "$seconds" "$@" 2>"$work/pgbench.err" |
    awk '/^tps = / {print int($3)}' || true
}
printf '%s\n' "clients  tpcb_like_tps  movemoney_sql_tps  ratio" >"$work/ratio"
for n in ${levels//,/ }; do
  j=$(( n < 2 ? 1 : 2 ))
  pg_psql -c CHECKPOINT >/dev/null
  ours=$(run -c "$n" -j "$j" -f scripts/bench/movemoney.pgbench plinth)
  if [[ -z $ours ]]; then
    cat "$work/pgbench.err" >&2
    echo "the MoveMoney script failed" >&2
    exit 1
  fi
  echo "movemoney sql x$n: $ours transactions/s" >&2
  pg_psql -c CHECKPOINT >/dev/null
  tps=$(run -c "$n" -j "$j" -b tpcb-like pgbench)
  echo "pgbench x$n: $tps transactions/s" >&2
  printf '%-8s %-14s %-18s %s\n' "$n" "$tps" "$ours" "$(awk -v a="$ours" -v b="$tps" 'BEGIN {printf "%.2f", a / b}')" >>"$work/ratio"
done
# CPU, which moves less than throughput on a shared machine: one client
# runs a fixed number of transactions, and the server's CPU is read from
# its postmaster's children's times (each backend's, added when it exits).
pm=$(head -1 "$work/data/postmaster.pid")
server_cpu_ticks() { awk '{print $16 + $17}' "/proc/$pm/stat"; }
cpu_per_transaction() { # cpu_per_transaction DATABASE ARGS...: PostgreSQL CPU ms per transaction, 1 client
  local n=${BENCH_CPU_TRANSACTIONS:-3000} before after
  before=$(server_cpu_ticks)
  pgbench -h 127.0.0.1 -p "$port" -U postgres -n -M prepared -c 1 -t "$n" "$@" >/dev/null 2>"$work/pgbench.err"
  sleep 1 # the postmaster adds a backend's times when it has reaped it
  after=$(server_cpu_ticks)
  awk -v t=$((after - before)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.3f", t * 1000 / hz / n}'
}
tpcb_cpu=$(cpu_per_transaction -b tpcb-like pgbench)
ours_cpu=$(cpu_per_transaction -f scripts/bench/movemoney.pgbench plinth)

# The books still add up: every account's balance is the sum of its
# entries, and they sum to zero.
pg_psql -d plinth -At -c "
SELECT CASE WHEN sum(posted) = 0 AND bool_and(posted = (SELECT coalesce(sum(amount), 0) FROM ledger.entries e WHERE e.account_id = a.id))
            THEN 'invariants hold over ' || count(*) || ' accounts'
            ELSE 'INVARIANTS BROKEN' END
  FROM ledger.accounts a" >&2
echo
cat "$work/ratio"
echo
echo "PostgreSQL CPU per transaction, 1 client: tpcb-like $tpcb_cpu ms, MoveMoney's statements $ours_cpu ms"
