package idempotency

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/sensitive"
	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// Options configure the interceptor.
type Options struct {
	// Mutating reports whether a procedure needs a key. Required; see
	// MutatingProcedures.
	Mutating func(procedure string) bool
	// Caller returns who is calling, to scope keys. It defaults to
	// everyone being "anonymous" (until callers authenticate).
	Caller func(ctx context.Context) string
	// Now returns the time. It defaults to time.Now.
	Now func() time.Time
	// Log receives what goes wrong with the store. It defaults to discarding.
	Log *slog.Logger
	// Enlist, when set, runs once a call has its answer (res, or the
	// final error err), as that answer is recorded under the key: after the
	// effect is kept (or, for a refusal, undone), before the commit
	// (Attempt.Finish). ctx carries the transaction, on a store that has
	// one (internal/pgtx), so what Enlist writes through it commits with
	// the record (and the effect), or not at all. If Enlist fails, none
	// of them commits and the caller gets its error. Once they have
	// committed, the interceptor calls the function Enlist returned, if not
	// nil. Calls that end without a record (a replay, a refused key, an
	// outage) never reach Enlist.
	Enlist func(ctx context.Context, req connect.AnyRequest, res connect.AnyResponse, err error) (committed func(), _ error)
}

// maxAbortedRetries is how many times a call that lost a race (Aborted) is
// run again, with its key still held, before the caller gets Aborted.
const maxAbortedRetries = 3

// MutatingProcedures returns whether a procedure of services mutates, as
// its (plinth.options.v1.capability) option says.
func MutatingProcedures(services ...protoreflect.ServiceDescriptor) func(string) bool {
	mutating := map[string]bool{}
	for _, s := range services {
		for i := range s.Methods().Len() {
			m := s.Methods().Get(i)
			if opts, ok := proto.GetExtension(m.Options(), optionsv1.E_Capability).(*optionsv1.Capability); ok && opts.GetMutates() {
				mutating[fmt.Sprintf("/%s/%s", s.FullName(), m.Name())] = true
			}
		}
	}
	return func(procedure string) bool { return mutating[procedure] }
}

// NewInterceptor returns the interceptor that enforces idempotency keys on
// mutating procedures, recording answers in store. It expects the errors
// of capabilities as *connect.Error (the gateway maps domain errors inside
// it), and treats any other error as not final.
func NewInterceptor(store Store, opts Options) connect.Interceptor {
	if opts.Caller == nil {
		opts.Caller = func(context.Context) string { return "anonymous" }
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &interceptor{store: store, opts: opts}
}

type interceptor struct {
	store Store
	opts  Options
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler passes streams through: no capability streams, and a
// stream's answer is not one message to record.
func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		procedure := req.Spec().Procedure
		if !i.opts.Mutating(procedure) {
			return next(ctx, req)
		}
		key := req.Header().Get(Header)
		if err := checkKey(key); err != nil {
			return nil, err
		}
		msg, ok := req.Any().(proto.Message)
		if !ok {
			return nil, connect.NewError(connect.CodeInternal, errors.New("idempotency: request is not a protobuf message"))
		}
		claim := Claim{Caller: i.opts.Caller(ctx), Key: key, Procedure: procedure, Now: i.opts.Now()}
		claim.RequestHash, ok = requestHash(procedure, msg)
		if !ok {
			return nil, connect.NewError(connect.CodeInternal, errors.New("idempotency: cannot hash the request"))
		}
		for attempt := 0; ; attempt++ {
			res, err, retry := i.try(ctx, req, next, claim)
			if !retry || attempt >= maxAbortedRetries {
				return res, err
			}
			// Wait a little, more each time and at random, so that the
			// calls that collided do not collide again at once.
			select {
			case <-time.After(time.Duration(1+rand.IntN(5<<attempt)) * time.Millisecond):
			case <-ctx.Done():
				return nil, err
			}
		}
	}
}

// try runs one attempt of the call under its key; retry says that the call
// lost a race and was undone, so it may be run again.
func (i *interceptor) try(ctx context.Context, req connect.AnyRequest, next connect.UnaryFunc, claim Claim) (_ connect.AnyResponse, _ error, retry bool) {
	record, attempt, err := i.store.Begin(ctx, claim)
	switch {
	case errors.Is(err, ErrInProgress):
		return nil, connect.NewError(connect.CodeAborted,
			errors.New("a call with this Idempotency-Key is still running; retry when it has finished")), false
	case err != nil:
		return nil, err, false
	case record != nil:
		if record.RequestHash != claim.RequestHash {
			return nil, keyReusedError(), false
		}
		res, err := replay(req, record)
		return res, err, false
	}
	// Undo and release the key if the capability panics; Abandon is a
	// no-op once Finish ran.
	defer attempt.Abandon()

	res, callErr := next(attempt.Context(), req)
	if callErr == nil {
		// A credential in the answer (an API key's secret) is shown once:
		// the record keeps the rest of the answer, so a retry gets it
		// without the credential.
		body, err := proto.MarshalOptions{Deterministic: true}.Marshal(sensitive.ClearSecrets(res.Any().(proto.Message)))
		if err != nil {
			return nil, fmt.Errorf("idempotency: marshal the response: %w", err), false
		}
		r := Record{Procedure: claim.Procedure, RequestHash: claim.RequestHash, Response: body, CreatedAt: claim.Now}
		if method, ok := req.Spec().Schema.(protoreflect.MethodDescriptor); ok {
			r.Class = classes[sensitive.StrictestClass(method.Output())]
		}
		enlist, committed := i.enlisted(req, res, nil)
		if err := attempt.Finish(ctx, r, true, enlist); err != nil {
			return nil, err, false
		}
		committed()
		return res, nil, false
	}
	var ce *connect.Error
	if !errors.As(callErr, &ce) || !final(ce.Code()) {
		attempt.Abandon()
		return nil, callErr, ce != nil && ce.Code() == connect.CodeAborted
	}
	r := Record{Procedure: claim.Procedure, RequestHash: claim.RequestHash, Code: uint32(ce.Code()), Message: ce.Message(), CreatedAt: claim.Now}
	for _, d := range ce.Details() {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&anypb.Any{TypeUrl: "type.googleapis.com/" + d.Type(), Value: d.Bytes()})
		if err != nil {
			return nil, fmt.Errorf("idempotency: marshal an error detail: %w", err), false
		}
		r.Details = append(r.Details, b)
	}
	enlist, committed := i.enlisted(req, nil, callErr)
	if err := attempt.Finish(ctx, r, false, enlist); err != nil {
		return nil, err, false
	}
	committed()
	return nil, callErr, false
}

// enlisted returns Options.Enlist for one answer, as Attempt.Finish runs it
// (nil if there is none), and what to call once the attempt committed.
func (i *interceptor) enlisted(req connect.AnyRequest, res connect.AnyResponse, callErr error) (enlist func(context.Context) error, committed func()) {
	committed = func() {}
	if i.opts.Enlist == nil {
		return nil, committed
	}
	var onCommit func()
	enlist = func(txCtx context.Context) error {
		var err error
		onCommit, err = i.opts.Enlist(txCtx, req, res, callErr)
		return err
	}
	return enlist, func() {
		if onCommit != nil {
			onCommit()
		}
	}
}

// ReasonKeyReused is the ErrorInfo reason of a key sent again with another
// request.
const ReasonKeyReused = "IDEMPOTENCY_KEY_REUSED"

// keyReusedError refuses a key that was used for another request, with a
// reason a program can test rather than a message to parse.
func keyReusedError() *connect.Error {
	ce := connect.NewError(connect.CodeFailedPrecondition,
		errors.New("this Idempotency-Key was used for a different request; use a new key for a new request"))
	if d, err := connect.NewErrorDetail(&errdetails.ErrorInfo{Reason: ReasonKeyReused, Domain: "plinth.dev"}); err == nil {
		ce.AddDetail(d)
	}
	return ce
}

// classes names the keyring class of each sensitivity class.
var classes = map[optionsv1.Sensitivity]keyring.Class{
	optionsv1.Sensitivity_SENSITIVITY_PII: keyring.PII,
	optionsv1.Sensitivity_SENSITIVITY_PCI: keyring.PCI,
	optionsv1.Sensitivity_SENSITIVITY_PHI: keyring.PHI,
}

// final reports whether an error code is an answer worth replaying: the
// caller's request was refused, and would be refused the same way again.
// The others (an outage, a timeout, a lost race, a bug) leave no record.
func final(code connect.Code) bool {
	switch code {
	case connect.CodeInvalidArgument, connect.CodeNotFound, connect.CodeAlreadyExists,
		connect.CodeFailedPrecondition, connect.CodeOutOfRange, connect.CodePermissionDenied,
		connect.CodeUnimplemented:
		return true
	}
	return false
}

// checkKey refuses a missing or malformed key.
func checkKey(key string) error {
	if key == "" {
		return connect.NewError(connect.CodeInvalidArgument, errors.New(
			"this capability changes state, so it needs an Idempotency-Key header: a unique string (a UUID, say) of up to 255 characters, sent again unchanged when the call is retried"))
	}
	if len(key) > MaxKeyLength {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("the Idempotency-Key header is %d characters long; the most is %d", len(key), MaxKeyLength))
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return connect.NewError(connect.CodeInvalidArgument, errors.New("the Idempotency-Key header may hold only visible ASCII characters (no spaces)"))
		}
	}
	return nil
}

// requestHash identifies a request: its procedure and its message in
// deterministic binary, so the same request hashes the same whichever
// protocol or codec it came in.
func requestHash(procedure string, msg proto.Message) ([sha256.Size]byte, bool) {
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	h := sha256.New()
	h.Write([]byte(procedure))
	h.Write([]byte{0})
	h.Write(body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum, true
}

// replayedMessage carries a response rebuilt from a record. Connect sends
// whatever message a response's Any returns; the embedded proto.Message
// gives it the methods the codecs need, whatever its concrete type.
type replayedMessage struct{ proto.Message }

// replay answers with what a record holds.
func replay(req connect.AnyRequest, r *Record) (connect.AnyResponse, error) {
	if r.Code != 0 {
		ce := connect.NewError(connect.Code(r.Code), errors.New(r.Message))
		for _, b := range r.Details {
			var detail anypb.Any
			if err := proto.Unmarshal(b, &detail); err != nil {
				return nil, fmt.Errorf("idempotency: unmarshal a recorded error detail: %w", err)
			}
			if d, err := connect.NewErrorDetail(&detail); err == nil {
				ce.AddDetail(d)
			}
		}
		ce.Meta().Set(ReplayedHeader, "true")
		return nil, ce
	}
	method, ok := req.Spec().Schema.(protoreflect.MethodDescriptor)
	if !ok {
		return nil, errors.New("idempotency: no schema for " + req.Spec().Procedure)
	}
	typ, err := protoregistry.GlobalTypes.FindMessageByName(method.Output().FullName())
	if err != nil {
		return nil, fmt.Errorf("idempotency: response type of %s: %w", req.Spec().Procedure, err)
	}
	msg := typ.New().Interface()
	if err := proto.Unmarshal(r.Response, msg); err != nil {
		return nil, fmt.Errorf("idempotency: unmarshal a recorded response: %w", err)
	}
	res := connect.NewResponse(&replayedMessage{Message: msg})
	res.Header().Set(ReplayedHeader, "true")
	return res, nil
}

// RunJanitor deletes records older than retention every interval until ctx
// is done.
func RunJanitor(ctx context.Context, store Store, retention, interval time.Duration, now func() time.Time, log *slog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			n, err := store.DeleteExpired(ctx, now().Add(-retention))
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("idempotency: deleting expired records failed; will retry", "error", err.Error())
			case n > 0:
				log.Info("idempotency: deleted expired records", "count", n, "retention", retention.String())
			}
		}
	}
}
