#!/usr/bin/env bash
# Tests the TypeScript SDK (sdk/ts), on a fresh machine too: installs its
# pinned npm packages (npm ci), type-checks the SDK, its tests and examples
# (tsc --noEmit), compiles them to sdk/ts/dist, builds the gateway, and runs
# the tests with Node's test runner against the real gateway (plinth dev and
# plinth serve on memory backends, on free loopback ports).
# Needs Node.js 20 or later and npm, Go, and the npm registry (or npm's cache).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

command -v node >/dev/null || { echo "test-ts: node is missing: install Node.js 20 or later" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 20)); then
  echo "test-ts: Node.js 20 or later is needed, this is $(node --version)" >&2
  exit 1
fi

step "sdk/ts: npm ci"
bash scripts/install-ts-deps.sh --force

step "sdk/ts: type-check src, test, examples (tsc --noEmit)"
(cd sdk/ts && node_modules/.bin/tsc --noEmit -p tsconfig.json)

step "sdk/ts: build (tsc to dist)"
rm -rf sdk/ts/dist
(cd sdk/ts && node_modules/.bin/tsc -p tsconfig.json)

step "build the gateway"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/plinth" ./cmd/plinth

step "sdk/ts: node --test (against the real gateway)"
cd sdk/ts
PLINTH_BIN="$tmp/plinth" node --test dist/test/*.test.js
