#!/usr/bin/env bash
# Installs the pinned tools (code generation, grpcurl for the e2e tests) into .bin/ (once per version: a
# tool already there at the right version is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tool-versions.sh
mkdir -p .bin
export GOBIN="$PWD/.bin"

install() { # name module@version
  local name=$1 pkg=$2 stamp=".bin/.$1.version"
  if [[ -x .bin/$name && -f $stamp && $(cat "$stamp") == "$pkg" ]]; then return; fi
  echo "installing $pkg" >&2
  go install "$pkg"
  echo "$pkg" >"$stamp"
}
install buf github.com/bufbuild/buf/cmd/buf@"$BUF_VERSION"
install protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@"$PROTOC_GEN_GO_VERSION"
install protoc-gen-connect-go connectrpc.com/connect/cmd/protoc-gen-connect-go@"$PROTOC_GEN_CONNECT_GO_VERSION"
install grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl@"$GRPCURL_VERSION"
