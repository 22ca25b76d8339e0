package gateway

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"plinth.dev/plinth/capabilities/audit"
	"plinth.dev/plinth/internal/sensitive"
	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// auditDomain is the registry name of the audit domain, whose Service the
// gateway keeps to record every call.
const auditDomain = "audit"

// maxAuditedResources bounds the resource ids one record keeps.
const maxAuditedResources = 32

// auditor appends one record to the audit for every capability call,
// whatever its outcome: the principal (once authenticated), the
// capability, the code, the ids of the resources it named or returned, and
// the classes of sensitive data it revealed.
//
// A call that changes state and ends with an answer worth keeping (a
// success or a final refusal: what idempotency records) has its record
// written in the transaction of its effect, through the idempotency
// interceptor's Enlist, when the audit shares the effect's database: the
// effect never commits without its record, and the call commits once.
// Every other call's record is appended after its answer is decided, on
// its own. If that append fails, the answer still goes out (its effect, if
// any, is done; an error would make the caller retry what succeeded) and
// the failure is logged and counted.
type auditor struct {
	audit   *audit.Service
	masker  *masker
	metrics *metrics
	log     *slog.Logger
}

// auditedCall marks, in a call's context, that the call's record committed
// with its effect.
type auditedCall struct{ recorded atomic.Bool }

type auditedCallKey struct{}

func (a *auditor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		call := &auditedCall{}
		res, err := next(context.WithValue(ctx, auditedCallKey{}, call), req)
		if err != nil {
			// Errors of the layers outside the error mapper are mapped
			// here, so that the record has the code the caller gets.
			err = toConnectError(ctx, a.log, err)
		}
		if !call.recorded.Load() {
			principal, revealed := notes(ctx)
			a.append(ctx, a.entry(ctx, req, res, err, principal, revealed))
		}
		return res, err
	}
}

func (a *auditor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *auditor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		if err != nil {
			err = toConnectError(ctx, a.log, err)
		}
		principal, revealed := notes(ctx)
		a.append(ctx, audit.Entry{Capability: conn.Spec().Procedure, Code: codeName(err), PrincipalID: principal, Revealed: revealed, RequestID: RequestID(ctx)})
		return err
	}
}

// enlist is the idempotency interceptor's Enlist: it adds the call's record
// in the transaction of the call's effect (ctx carries it), and marks the
// call recorded once that committed. The masker has not run yet (it sits
// outside idempotency), so what the answer reveals is worked out as the
// masker will.
func (a *auditor) enlist(ctx context.Context, req connect.AnyRequest, res connect.AnyResponse, err error) (func(), error) {
	call, ok := ctx.Value(auditedCallKey{}).(*auditedCall)
	if !ok {
		return nil, nil
	}
	principal, _ := notes(ctx)
	var revealed []string
	if res != nil {
		if msg, ok := res.Any().(proto.Message); ok {
			revealed = a.masker.reveals(ctx, msg)
		}
	}
	if _, aerr := a.audit.Append(ctx, a.entry(ctx, req, res, err, principal, revealed)); aerr != nil {
		return nil, aerr
	}
	return func() { call.recorded.Store(true) }, nil
}

// entry is the record of a unary call.
func (a *auditor) entry(ctx context.Context, req connect.AnyRequest, res connect.AnyResponse, err error, principal string, revealed []string) audit.Entry {
	var resMsg proto.Message
	if err == nil && res != nil {
		resMsg, _ = res.Any().(proto.Message)
	}
	reqMsg, _ := req.Any().(proto.Message)
	return audit.Entry{
		PrincipalID: principal,
		Capability:  req.Spec().Procedure,
		Code:        codeName(err),
		ResourceIDs: resourceIDs(reqMsg, resMsg),
		Revealed:    revealed,
		RequestID:   RequestID(ctx),
	}
}

// notes returns who called and what the answer revealed, as the inner
// layers noted them.
func notes(ctx context.Context) (principal string, revealed []string) {
	if n, ok := ctx.Value(callNotesKey{}).(*callNotes); ok {
		return n.snapshot()
	}
	return "", nil
}

// codeName is how the audit names an outcome: "ok", or the Connect code.
func codeName(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}

// append appends e on its own, outside any transaction.
func (a *auditor) append(ctx context.Context, e audit.Entry) {
	// The caller may have gone: the record is still owed.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, aerr := a.audit.Append(actx, e); aerr != nil {
		a.metrics.auditFailures.Inc()
		a.log.ErrorContext(ctx, "audit: the record of a call could not be appended", "capability", e.Capability, "code", e.Code, "error", aerr.Error())
	}
}

// resourceIDs collects the ids a call named or returned: every string
// field called "id" or ending in "_id", at any depth, in the request and
// the response. Ids are not sensitive; a sensitive field is never read.
func resourceIDs(msgs ...proto.Message) []string {
	var ids []string
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			name := string(fd.Name())
			switch {
			case len(ids) >= maxAuditedResources:
				return false
			case sensitive.ClassOf(fd) != optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED:
				// A tax_id is an "_id" too: what the contract classifies is
				// never read, let alone recorded.
				return true
			case fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap() &&
				(name == "id" || strings.HasSuffix(name, "_id")):
				if s := v.String(); s != "" && !slices.Contains(ids, s) {
					ids = append(ids, s)
				}
			case fd.IsList() && fd.Message() != nil:
				for i := range v.List().Len() {
					walk(v.List().Get(i).Message())
				}
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				walk(v.Message())
			}
			return true
		})
	}
	for _, m := range msgs {
		if m != nil {
			walk(m.ProtoReflect())
		}
	}
	return ids
}
