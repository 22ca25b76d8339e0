#!/usr/bin/env bash
# Regenerates all generated code from the contracts, byte for byte: the same
# contracts and tool versions always give the same files. Run it after any
# change under proto/; scripts/check-contracts.sh fails CI when it was not.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tool-versions.sh
bash scripts/install-tools.sh

# buf/validate/validate.proto from the pinned Go module (not the BSR).
dir=$(go mod download -json "github.com/bufbuild/protovalidate@$PROTOVALIDATE_PROTO_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n $dir ]] || { echo "generate: could not download github.com/bufbuild/protovalidate@$PROTOVALIDATE_PROTO_VERSION" >&2; exit 1; }
mkdir -p third_party/protovalidate/buf/validate
install -m 0644 "$dir/proto/protovalidate/buf/validate/validate.proto" third_party/protovalidate/buf/validate/validate.proto

# google/api/{annotations,http}.proto, for the contracts' google.api.http
# rules (the REST paths), from a pinned Go module that ships them (not the
# BSR): grpc-gateway v1's copy of googleapis. Their Go code is
# google.golang.org/genproto/googleapis/api/annotations, which the generated
# code imports as their go_package says.
GOOGLEAPIS_PROTO_MODULE=github.com/grpc-ecosystem/grpc-gateway@v1.16.0
dir=$(go mod download -json "$GOOGLEAPIS_PROTO_MODULE" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n $dir ]] || { echo "generate: could not download $GOOGLEAPIS_PROTO_MODULE" >&2; exit 1; }
mkdir -p third_party/googleapis/google/api
for f in LICENSE google/api/annotations.proto google/api/http.proto; do
  install -m 0644 "$dir/third_party/googleapis/$f" "third_party/googleapis/$f"
done

.bin/buf generate

# The contracts with their comments, for the catalog page (gateway/catalog):
# the descriptors compiled into Go carry none.
.bin/buf build proto --exclude-imports --as-file-descriptor-set -o gateway/catalog/contracts.binpb

# The TypeScript SDK's code, with the protoc-gen-es that sdk/ts/package-lock.json pins.
bash scripts/install-ts-deps.sh
.bin/buf generate --template buf.gen.ts.yaml
