package gateway

// The interceptors around every capability call, outermost first:
//
//	tracing (otelconnect)              only when configured
//	 observe                           access log and metrics, one line per call
//	  shed                             over limits.max_in_flight → Unavailable
//	   audit                           one record per call in the hash chain
//	   recover                         a panic becomes Internal
//	    authenticate, authorize        API key → principal; scope → PermissionDenied
//	     rate limit                    principal over its rate → ResourceExhausted
//	      mask                         sensitive answers the caller may not reveal
//	       validate                    protovalidate → InvalidArgument
//	        idempotency                mutating calls: key required; replay or run
//	         map errors                domain errors → Connect codes (errors.go)
//	          capability               the domain Service's method
//
// Observe is outside recover so that a panic is logged and counted like any
// other Internal error. Shedding is outside the audit and authentication,
// so that refusing a call the gateway has no room for costs next to nothing
// (no key lookup, no audit write); it is still logged and counted. Nothing
// runs for a caller before it is authenticated and authorized. The rate
// limit needs the principal, and comes before validation and idempotency,
// so that a refused call claims no key and reaches no backend
// (ratelimit.go). Masking is outside idempotency, so a replayed answer is
// masked like the first. Validation comes before idempotency so that a
// malformed request never claims a key. Errors are mapped innermost so that
// idempotency records exactly the answer the caller gets. Request ids, body
// limits and timeouts are plain HTTP middleware (withCall, call.go), so they hold
// for every path, not only capabilities.

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
)

// observer writes one access-log line per call and records metrics. Errors
// reach it already mapped (the error mapper is innermost); it maps what the
// layers between it and the mapper return themselves, such as the access
// store being unreachable while authenticating.
type observer struct {
	log     *slog.Logger
	metrics *metrics
}

func (o *observer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		ctx, c := ensureCall(ctx)
		procedure := req.Spec().Procedure
		if o.log.Enabled(ctx, slog.LevelDebug) {
			if msg, ok := req.Any().(proto.Message); ok {
				o.log.DebugContext(ctx, "request", "capability", procedure, "message", redactedJSON(msg))
			}
		}
		res, err := next(ctx, req)
		if err != nil {
			err = toConnectError(ctx, o.log, err)
		}
		o.record(ctx, procedure, req.Peer().Protocol, start, err, c)
		return res, err
	}
}

func (o *observer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (o *observer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		if err != nil {
			err = toConnectError(ctx, o.log, err)
		}
		o.record(ctx, conn.Spec().Procedure, conn.Peer().Protocol, start, err, nil)
		return err
	}
}

func (o *observer) record(ctx context.Context, procedure, protocol string, start time.Time, err error, c *call) {
	markObserved(ctx)
	elapsed := time.Since(start)
	code := "ok"
	level := slog.LevelInfo
	if err != nil {
		c := connect.CodeOf(err)
		code = c.String()
		if c == connect.CodeInternal || c == connect.CodeUnknown {
			level = slog.LevelError
		}
	}
	o.metrics.observe(procedure, code, elapsed)
	// Never the request or response: they may hold sensitive values. The
	// error message is safe: domain messages never repeat sensitive values,
	// and an Internal error's message holds only the request id.
	var room [6]slog.Attr // every attribute below, on the stack
	attrs := append(room[:0],
		slog.String("capability", procedure),
		slog.String("protocol", protocol),
		slog.String("code", code),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
	)
	if err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) {
			attrs = append(attrs, slog.String("error", ce.Message()))
		}
	}
	if c != nil {
		// Which classes were shown in full: never the values.
		if r := c.revealedList(); r != "" {
			attrs = append(attrs, slog.String("revealed", r))
		}
	}
	o.log.LogAttrs(ctx, level, "call", attrs...)
}

// recoverPanic turns a panic in a capability into Internal, logging the
// stack under the request id and sending the caller nothing of it.
func recoverPanic(log *slog.Logger) func(context.Context, connect.Spec, http.Header, any) error {
	return func(ctx context.Context, spec connect.Spec, _ http.Header, p any) error {
		log.ErrorContext(ctx, "capability panicked", "capability", spec.Procedure, "panic", panicText(p), "stack", string(debug.Stack()))
		return internalError(RequestID(ctx))
	}
}

// panicText describes a panic value by type only when it is not an error or
// a string; a panic's value could hold anything, including request data, so
// this is the one place that decides what of it is logged.
func panicText(p any) string {
	switch v := p.(type) {
	case error:
		return v.Error()
	case string:
		return v
	default:
		return "panic of a non-error value"
	}
}

// validator checks every request against its contract's protovalidate rules
// before it reaches a capability.
type validator struct {
	v   protovalidate.Validator
	log *slog.Logger
}

func (v *validator) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := v.check(ctx, req.Any()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (v *validator) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (v *validator) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return next(ctx, &validatingConn{StreamingHandlerConn: conn, ctx: ctx, v: v})
	}
}

type validatingConn struct {
	connect.StreamingHandlerConn
	ctx context.Context
	v   *validator
}

func (c *validatingConn) Receive(m any) error {
	if err := c.StreamingHandlerConn.Receive(m); err != nil {
		return err
	}
	return c.v.check(c.ctx, m)
}

// check returns nil for a valid message, InvalidArgument with every
// violation as a buf.validate.Violations detail for an invalid one.
func (v *validator) check(ctx context.Context, m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	err := v.v.Validate(msg)
	if err == nil {
		return nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		// The contract's rules could not be compiled or evaluated: a defect
		// in the contract, not the caller's fault.
		v.log.ErrorContext(ctx, "validation rules failed", "error", err.Error())
		return internalError(RequestID(ctx))
	}
	lines := make([]string, len(verr.Violations))
	for i, violation := range verr.Violations {
		lines[i] = violation.String()
	}
	ce := connect.NewError(connect.CodeInvalidArgument,
		errors.New("invalid request: "+strings.Join(lines, "; ")))
	if d, derr := connect.NewErrorDetail(verr.ToProto()); derr == nil {
		ce.AddDetail(d)
	}
	return ce
}
