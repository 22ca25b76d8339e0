#!/usr/bin/env bash
# Builds the Vault server that the tests run (internal/vaulttest, e2e), once.
#
#   scripts/vault.sh build   build .cache/vault/vault, unless it is there already
#                            at the version tools/vault/go.mod pins
#   scripts/vault.sh path    print the binary's path (built or not)
#
# Vault is not in Debian's packages, and `go install github.com/hashicorp/vault@...`
# is refused because of the replace directives in Vault's go.mod, so Vault is a
# tool of a small module of its own, tools/vault (which keeps its hundreds of
# dependencies out of Plinth's go.mod). To move to another version:
#
#   (cd tools/vault && go get -tool github.com/hashicorp/vault@vX.Y.Z)
#
# and the next build notices the new version. v1.21.2 to v1.21.4 do not build
# against any released sdk; stay on v1.21.1 unless a newer release builds.
#
# A cold build takes several minutes and makes a binary of about 480 MB; a
# warm Go build cache brings it under a minute. The version the binary was
# built at is kept next to it in .cache/vault/vault.version.
set -euo pipefail
cd "$(dirname "$0")/.."

root=$PWD
dir=$root/.cache/vault
bin=$dir/vault
stamp=$dir/vault.version

usage() {
  echo "usage: scripts/vault.sh build|path" >&2
  exit 2
}

# pinned_version prints the Vault version tools/vault/go.mod requires.
pinned_version() {
  local v
  v=$(awk '$1 == "github.com/hashicorp/vault" { print $2; exit }
           $1 == "require" && $2 == "github.com/hashicorp/vault" { print $3; exit }' tools/vault/go.mod)
  if [[ -z $v ]]; then
    echo "tools/vault/go.mod requires no github.com/hashicorp/vault: run (cd tools/vault && go get -tool github.com/hashicorp/vault@v1.21.1)" >&2
    exit 1
  fi
  echo "$v"
}

build() {
  local version
  version=$(pinned_version)
  if [[ -x $bin && -f $stamp && $(cat "$stamp") == "$version" ]]; then
    echo "Vault $version: $bin (cached)" >&2
    return
  fi
  mkdir -p "$dir"

  # Two runs at once (two terminals, say) build once: the second waits for
  # the first and then finds the binary cached.
  if command -v flock >/dev/null; then
    exec 9>"$dir/.build.lock"
    if ! flock -n 9; then
      echo "another scripts/vault.sh build is running; waiting for it" >&2
      flock 9
      if [[ -x $bin && -f $stamp && $(cat "$stamp") == "$version" ]]; then
        echo "Vault $version: $bin (cached)" >&2
        return
      fi
    fi
  fi

  echo "building Vault $version once; this takes several minutes (under one with a warm Go build cache)" >&2
  local start=$SECONDS tmp=$dir/vault.tmp.$$
  trap 'rm -f "$tmp"' EXIT
  # Build into a temporary file and move it into place, so that an
  # interrupted build never leaves a half-written binary that looks cached.
  (cd tools/vault && go build -o "$tmp" github.com/hashicorp/vault)
  mv -f "$tmp" "$bin"
  echo "$version" >"$stamp"
  trap - EXIT
  echo "built Vault $version in $((SECONDS - start))s: $bin" >&2
}

case ${1:-} in
build) build ;;
path) echo "$bin" ;;
*) usage ;;
esac
