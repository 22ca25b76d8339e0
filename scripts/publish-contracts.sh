#!/usr/bin/env bash
# Publishes the contracts as they are now: writes contracts/published.json,
# the baseline that scripts/check-contracts.sh holds every later change to.
# Run it on purpose, when a release makes new contracts stable; review its diff.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-tools.sh
mkdir -p contracts
.bin/buf build proto --exclude-source-info -o contracts/published.json
