package plinth

import (
	"context"

	"connectrpc.com/connect"
)

// WithAPIKey returns a client option that authenticates every call with
// key, as "Authorization: Bearer <key>". Keys come from the access domain's
// IssueApiKey (or `plinth bootstrap` for the first one); keep them out of
// source code and logs.
func WithAPIKey(key string) connect.ClientOption {
	return connect.WithInterceptors(apiKey(key))
}

type apiKey string

func (k apiKey) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(k))
		return next(ctx, req)
	}
}

func (k apiKey) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(k))
		return conn
	}
}

func (k apiKey) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
