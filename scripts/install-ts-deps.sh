#!/usr/bin/env bash
# Installs the TypeScript SDK's npm packages, exactly as sdk/ts/package-lock.json
# pins them, into sdk/ts/node_modules with `npm ci` (from the npm registry;
# npm's cache is used when it has them). scripts/generate.sh needs the pinned
# protoc-gen-es from there. Packages already installed from the same lock file
# are kept, unless --force.
set -euo pipefail
cd "$(dirname "$0")/../sdk/ts"

command -v npm >/dev/null || { echo "install-ts-deps: npm is missing: install Node.js 20 or later" >&2; exit 1; }
stamp=node_modules/.plinth-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ${1:-} != --force && -x node_modules/.bin/protoc-gen-es && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
echo "installing sdk/ts npm packages (npm ci)" >&2
npm ci --prefer-offline --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
