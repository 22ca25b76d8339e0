package gateway

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"plinth.dev/plinth/capabilities/domainerr"
)

// codeOfKind is THE mapping of domain error kinds to Connect codes. No other
// code in Plinth picks a Connect code for a domain error.
var codeOfKind = map[domainerr.Kind]connect.Code{
	domainerr.KindNotFound:           connect.CodeNotFound,
	domainerr.KindAlreadyExists:      connect.CodeAlreadyExists,
	domainerr.KindFailedPrecondition: connect.CodeFailedPrecondition,
	domainerr.KindInvalidArgument:    connect.CodeInvalidArgument,
	domainerr.KindUnavailable:        connect.CodeUnavailable,
	domainerr.KindAborted:            connect.CodeAborted,
}

// errorDomain is the ErrorInfo domain of Plinth's error details.
const errorDomain = "plinth.dev"

// toConnectError turns what a capability returned into the error its caller
// gets:
//
//   - a *connect.Error made by the gateway itself (validation, limits) as it is;
//   - a context error as Canceled or DeadlineExceeded;
//   - a domain error as the code of its kind, its message (written for
//     callers), and an ErrorInfo detail if it has a reason;
//   - anything else as Internal with no detail but the request id, which
//     the log line of the same id explains.
//
// The cause of an Unavailable or Internal error is logged, never sent.
func toConnectError(ctx context.Context, log *slog.Logger, err error) *connect.Error {
	requestID := RequestID(ctx)
	// Only the gateway's own errors pass as they are: a *connect.Error
	// wrapped deeper came from somewhere else (a downstream client, say),
	// and its message and details are not ours to send.
	if ce, ok := err.(*connect.Error); ok {
		return ce
	}
	switch {
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("the call was canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("the call ran out of time"))
	}
	var de domainerr.Error
	if errors.As(err, &de) {
		code, ok := codeOfKind[de.Kind()]
		if !ok {
			log.ErrorContext(ctx, "domain error of an unmapped kind", "kind", de.Kind(), "error", err.Error())
			return internalError(requestID)
		}
		if code == connect.CodeUnavailable {
			cause := err
			if u := errors.Unwrap(de); u != nil {
				cause = u
			}
			log.WarnContext(ctx, "dependency unavailable", "error", cause.Error())
		}
		out := connect.NewError(code, errors.New(de.Error()))
		var detailed domainerr.Detailed
		if errors.As(err, &detailed) && detailed.Reason() != "" {
			if d, derr := connect.NewErrorDetail(&errdetails.ErrorInfo{
				Reason:   detailed.Reason(),
				Domain:   errorDomain,
				Metadata: detailed.Metadata(),
			}); derr == nil {
				out.AddDetail(d)
			}
		}
		return out
	}
	log.ErrorContext(ctx, "internal error", "error", err.Error())
	return internalError(requestID)
}

func internalError(requestID string) *connect.Error {
	return connect.NewError(connect.CodeInternal,
		errors.New("internal error; the operator can find it in the logs under request id "+requestID))
}

// NewErrorInterceptor returns the interceptor that turns what capabilities
// return into the errors callers get (see toConnectError), logging causes
// to log. The gateway puts it innermost; conformance suites that serve a
// domain without the whole gateway use it to see the same errors.
func NewErrorInterceptor(log *slog.Logger) connect.Interceptor {
	return &errorMapper{log: log}
}

type errorMapper struct{ log *slog.Logger }

func (m *errorMapper) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		if err != nil {
			return nil, toConnectError(ctx, m.log, err)
		}
		return res, nil
	}
}

func (m *errorMapper) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (m *errorMapper) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := next(ctx, conn); err != nil {
			return toConnectError(ctx, m.log, err)
		}
		return nil
	}
}
