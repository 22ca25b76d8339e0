#!/usr/bin/env bash
# Soak test: holds the real gateway under a mixed workload (sign-ups,
# transfers, holds, reads, list calls) at a bounded rate for a long time, on
# PostgreSQL with the Vault keyring, as production runs it, and then checks
# that it stayed healthy: no unexpected error, the ledger's invariants hold,
# the audit chain verifies, goroutines, heap, resident memory and open files
# flat. cmd/soak is the load and the checks; this script sets up everything
# it runs against, on a fresh machine too, and removes it on exit:
#
#   - a throwaway PostgreSQL server (scripts/lib/pg.sh; the postgresql
#     package is installed if missing and this runs as root);
#   - a Vault dev server from .cache/vault/vault (built by scripts/vault.sh if
#     missing: several minutes the first time), with a transit engine and a
#     KV v2 engine for the keyring (the gateway creates its keys there);
#   - the plinth binary with every domain (customers, ledger, access, audit)
#     and the idempotency records on PostgreSQL and the Vault keyring:
#     migrate up, bootstrap, serve (logging every call at info).
#
#   scripts/soak.sh [RATE] [DURATION] [cmd/soak flags...]
#   scripts/soak.sh 200 5m
#   scripts/soak.sh 50 60s --clients 16
#
# RATE is calls per second in total (default 200), DURATION how long the
# load lasts (default 5m); further arguments go to cmd/soak (go run
# ./cmd/soak --help lists them). Exits 1 if a check failed.
# docs/benchmarks.md records the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-200}
duration=${2:-5m}
shift $(($# < 2 ? $# : 2))

source scripts/lib/pg.sh
source scripts/lib/gateway.sh
work=$(mktemp -d /tmp/plinth-soak.XXXXXX)
vault_pid=
cleanup() {
  gateway_stop
  if [[ -n $vault_pid ]]; then
    kill "$vault_pid" 2>/dev/null || true
    wait "$vault_pid" 2>/dev/null || true
  fi
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> Vault" >&2
bash scripts/vault.sh build
vault=$(bash scripts/vault.sh path)

pg_start "$work"
pg_psql -c 'CREATE DATABASE plinth'

# A Vault dev server: in memory, unsealed, with a root token of our own. It
# gets a HOME of its own (it writes a token file there) and none of the
# caller's VAULT_ variables.
vault_port=$(free_port)
vault_token=soak-root-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
mkdir "$work/vault-home"
(
  unset $(compgen -e | grep '^VAULT_' || true)
  cd "$work/vault-home"
  HOME=$work/vault-home exec "$vault" server -dev \
    -dev-root-token-id="$vault_token" -dev-listen-address="127.0.0.1:$vault_port"
) >"$work/vault.log" 2>&1 &
vault_pid=$!
export VAULT_ADDR=http://127.0.0.1:$vault_port VAULT_TOKEN=$vault_token
unset VAULT_NAMESPACE VAULT_AGENT_ADDR
# Its first start reads a binary of about 480 MB: allow for a slow disk.
for i in $(seq 900); do
  "$vault" status >/dev/null 2>&1 && break
  if ! kill -0 "$vault_pid" 2>/dev/null || [[ $i -eq 900 ]]; then
    tail -30 "$work/vault.log" >&2
    echo "the Vault dev server did not start" >&2
    exit 1
  fi
  sleep 0.1
done
"$vault" secrets enable -path=transit transit >/dev/null
"$vault" secrets enable -path=plinth-kv -version=2 kv >/dev/null
echo "==> Vault $("$vault" version | awk '{print $2}') dev server on $VAULT_ADDR: transit at transit/, KV v2 at plinth-kv/" >&2

echo "==> building plinth and soak" >&2
go build -o "$work/plinth" ./cmd/plinth
go build -o "$work/soak" ./cmd/soak

export PLINTH_POSTGRES_URL=$(pg_url plinth)
export PLINTH_BACKENDS_CUSTOMERS=postgres PLINTH_BACKENDS_LEDGER=postgres
export PLINTH_BACKENDS_ACCESS=postgres PLINTH_BACKENDS_AUDIT=postgres
export PLINTH_POSTGRES_MAX_CONNS=20 PLINTH_LOG_LEVEL=info PLINTH_LISTEN=127.0.0.1:0
export PLINTH_KEYRING_BACKEND=vault PLINTH_KEYRING_VAULT_ADDRESS=$VAULT_ADDR
export PLINTH_KEYRING_TRANSIT_MOUNT=transit PLINTH_KEYRING_KV_MOUNT=plinth-kv
"$work/plinth" migrate up >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }
api_key=$("$work/plinth" bootstrap 2>"$work/bootstrap.log" | grep -o 'plk_[0-9a-f_]*') ||
  { cat "$work/bootstrap.log" >&2; exit 1; }
gateway_start "$work/plinth" "$work/gateway.log"

echo "==> soak against http://$gateway_addr: $rate calls/s for $duration" >&2
status=0
"$work/soak" --url "http://$gateway_addr" --api-key "$api_key" --rate "$rate" --duration "$duration" "$@" || status=$?

# What the gateway itself complained about, if anything.
errors=$(grep -c '"level":"ERROR"' "$work/gateway.log" || true)
warnings=$(grep -c '"level":"WARN"' "$work/gateway.log" || true)
echo "==> gateway log: $(wc -l <"$work/gateway.log") lines, $errors at ERROR, $warnings at WARN" >&2
if [[ $errors -gt 0 || $warnings -gt 0 ]]; then
  grep -E '"level":"(ERROR|WARN)"' "$work/gateway.log" | head -10 >&2
fi
if grep -q -i 'panic' "$work/gateway.log"; then
  echo "==> the gateway's log mentions a panic:" >&2
  grep -i -m 5 'panic' "$work/gateway.log" >&2
  status=1
fi
exit "$status"
