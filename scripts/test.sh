#!/usr/bin/env bash
# Runs every test Plinth has, on a fresh machine too: it installs what the
# tests need (PostgreSQL server binaries, Chromium, the pinned
# code-generation tools and npm packages, a Vault server built from source
# once and cached), checks the contracts and the generated code, formatting
# and vet, then runs the Go tests with the race detector (PostgreSQL, Vault,
# the browser and e2e included), every fuzz target for a bounded time
# (FUZZTIME, 5s each by default), and the TypeScript SDK's tests against the
# real gateway. Tests that need PostgreSQL, Vault or the browser fail here
# rather than skip.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "PostgreSQL server binaries"
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "PostgreSQL server binaries (initdb, pg_ctl) are missing: install the postgresql package" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
echo "initdb: $(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | head -1)" >&2

step "Chromium (the catalog page's browser test) and curl"
if ! command -v chromium >/dev/null || ! command -v curl >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "chromium and curl are missing: install the chromium and curl packages" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium curl >/dev/null
fi
echo "chromium: $(command -v chromium)" >&2

step "tools"
bash scripts/install-tools.sh

step "Vault (built once from tools/vault and cached in .cache/vault)"
bash scripts/vault.sh build

step "contracts: lint, breaking changes, generated code"
bash scripts/check-contracts.sh

step "gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n $unformatted ]]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
(cd sdk/go && go build ./... && go vet ./...)

step "the Go SDK depends on neither pgx nor Vault"
if (cd sdk/go && go list -deps ./...) | grep -E 'jackc/pgx|hashicorp/vault'; then
  echo "sdk/go must not depend on pgx or Vault" >&2
  exit 1
fi

step "go test (race detector; PostgreSQL and e2e included)"
export PLINTH_TEST_REQUIRE_POSTGRES=1 PLINTH_TEST_REQUIRE_VAULT=1 PLINTH_TEST_REQUIRE_BROWSER=1
go test -race -count=1 ./...
(cd sdk/go && go test -race -count=1 ./...)

step "fuzz: every fuzz target for ${FUZZTIME:=5s} (their seed corpora ran above with go test)"
FUZZTIME=$FUZZTIME bash scripts/fuzz.sh

step "the TypeScript SDK (sdk/ts) against the real gateway"
bash scripts/test-ts.sh

