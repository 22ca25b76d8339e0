# Pinned versions of the tools the build uses. scripts/install-tools.sh installs
# exactly these into .bin/; change a version here and nowhere else.
BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION=v1.21.1
# grpcurl: the e2e tests list and call capabilities with it through reflection.
GRPCURL_VERSION=v1.9.4
# The Go module that carries buf/validate/validate.proto. Its generated Go code
# (buf.build/gen/go/bufbuild/protovalidate) comes in through buf.build/go/protovalidate.
PROTOVALIDATE_PROTO_VERSION=v1.2.2
