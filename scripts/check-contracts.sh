#!/usr/bin/env bash
# Guards the contracts; CI runs it. Fails when
#   - buf lint finds a problem,
#   - a change breaks a published contract (contracts/published.json, which
#     only scripts/publish-contracts.sh changes, on purpose),
#   - a change breaks a contract as it is on main (when HEAD is not main),
#   - generated code is not what scripts/generate.sh makes from the contracts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-tools.sh

echo "contracts: buf lint" >&2
.bin/buf lint

echo "contracts: buf breaking against the published baseline" >&2
.bin/buf breaking proto --against contracts/published.json

if git rev-parse --verify --quiet refs/heads/main >/dev/null &&
  [[ $(git rev-parse HEAD) != $(git rev-parse refs/heads/main) ]]; then
  echo "contracts: buf breaking against main" >&2
  .bin/buf breaking proto --against '.git#branch=main,subdir=proto'
fi

echo "contracts: generated code is up to date" >&2
bash scripts/generate.sh
generated=(sdk/go/gen sdk/ts/src/gen third_party gateway/catalog/contracts.binpb)
if ! git diff --quiet -- "${generated[@]}" || [[ -n $(git ls-files --others --exclude-standard -- "${generated[@]}") ]]; then
  git status --short -- "${generated[@]}" >&2
  echo "contracts: generated code is stale: run scripts/generate.sh and commit the result" >&2
  exit 1
fi
