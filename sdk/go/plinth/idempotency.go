package plinth

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// IdempotencyKeyHeader is the request header that carries an idempotency
// key.
const IdempotencyKeyHeader = "Idempotency-Key"

// WithIdempotencyKeys returns a client option that gives every call of a
// mutating capability (as its contract says) a fresh random
// Idempotency-Key, unless the request has one already. To retry a call
// safely, send the same request again, key included: the gateway answers a
// retry with the first call's answer instead of doing the work twice.
func WithIdempotencyKeys() connect.ClientOption {
	return connect.WithInterceptors(idempotencyKeys{})
}

// NewIdempotencyKey returns a random key: 32 hex digits.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

type idempotencyKeys struct{}

func (idempotencyKeys) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if mutates(req.Spec()) && req.Header().Get(IdempotencyKeyHeader) == "" {
			req.Header().Set(IdempotencyKeyHeader, NewIdempotencyKey())
		}
		return next(ctx, req)
	}
}

func (idempotencyKeys) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (idempotencyKeys) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// mutates reports whether a procedure's contract says it mutates.
func mutates(spec connect.Spec) bool {
	method, ok := spec.Schema.(protoreflect.MethodDescriptor)
	if !ok {
		return false
	}
	opts, _ := proto.GetExtension(method.Options(), optionsv1.E_Capability).(*optionsv1.Capability)
	return opts.GetMutates()
}
