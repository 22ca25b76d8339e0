package gateway

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"

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

func (a *auditor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, c := ensureCall(ctx)
		res, err := next(ctx, req)
		if err != nil {
			// Errors of the layers outside the error mapper are mapped
			// here, so that the record has the code the caller gets.
			err = toConnectError(ctx, a.log, err)
		}
		if !c.recorded.Load() {
			principal, revealed := c.notes()
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
		ctx, c := ensureCall(ctx)
		err := next(ctx, conn)
		if err != nil {
			err = toConnectError(ctx, a.log, err)
		}
		principal, revealed := c.notes()
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
	c := callFrom(ctx)
	if c == nil {
		return nil, nil
	}
	principal, _ := c.notes()
	var revealed []string
	if res != nil {
		if msg, ok := res.Any().(proto.Message); ok {
			revealed = a.masker.reveals(ctx, msg)
		}
	}
	if _, aerr := a.audit.Append(ctx, a.entry(ctx, req, res, err, principal, revealed)); aerr != nil {
		return nil, aerr
	}
	return func() { c.recorded.Store(true) }, nil
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

// codeName is how the audit names an outcome: "ok", or the Connect code.
func codeName(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}

// append appends e on its own, outside any transaction.
func (a *auditor) append(ctx context.Context, e audit.Entry) {
	// The caller may have gone: the record is still owed. A store that
	// waits on a database bounds that wait itself (audit.Store.Add), so a
	// store in memory costs no timer here.
	if _, aerr := a.audit.Append(context.WithoutCancel(ctx), e); aerr != nil {
		a.metrics.auditFailures.Inc()
		a.log.ErrorContext(ctx, "audit: the record of a call could not be appended", "capability", e.Capability, "code", e.Code, "error", aerr.Error())
	}
}

// resourceIDs collects the ids a call named or returned: every string
// field called "id" or ending in "_id", at any depth, in the request and
// the response, in the order of the fields' declarations. Ids are not
// sensitive; a sensitive field is never read.
func resourceIDs(msgs ...proto.Message) []string {
	var ids []string
	for _, m := range msgs {
		if m != nil {
			ids = collectIDs(ids, m.ProtoReflect())
		}
	}
	return ids
}

func collectIDs(ids []string, m protoreflect.Message) []string {
	plan := idFieldsOf(m.Descriptor())
	for _, fd := range plan.ids {
		if len(ids) >= maxAuditedResources {
			return ids
		}
		if s := m.Get(fd).String(); s != "" && !slices.Contains(ids, s) {
			ids = append(ids, s)
		}
	}
	for _, fd := range plan.messages {
		if len(ids) >= maxAuditedResources {
			return ids
		}
		if !m.Has(fd) {
			continue
		}
		if fd.IsList() {
			list := m.Get(fd).List()
			for i := range list.Len() {
				ids = collectIDs(ids, list.Get(i).Message())
			}
		} else {
			ids = collectIDs(ids, m.Get(fd).Message())
		}
	}
	return ids
}

// idFields are the fields of one message type that resourceIDs reads: its
// own id fields, and the message fields (singular or lists) whose type can
// hold one at some depth. Worked out once per type, so that a call reads
// only the fields that can lead to an id (not, say, its timestamps), and
// allocates no callback per message as protoreflect's Range would.
type idFields struct {
	ids      []protoreflect.FieldDescriptor
	messages []protoreflect.FieldDescriptor
}

var idFieldsByMsg sync.Map // protoreflect.FullName -> *idFields

func idFieldsOf(md protoreflect.MessageDescriptor) *idFields {
	if f, ok := idFieldsByMsg.Load(md.FullName()); ok {
		return f.(*idFields)
	}
	f := &idFields{}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case sensitive.ClassOf(fd) != optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED:
			// A tax_id is an "_id" too: what the contract classifies is
			// never read, let alone recorded.
		case isIDField(fd):
			f.ids = append(f.ids, fd)
		case !fd.IsMap() && fd.Message() != nil && mayHoldID(fd.Message(), map[protoreflect.FullName]bool{}):
			f.messages = append(f.messages, fd)
		}
	}
	idFieldsByMsg.Store(md.FullName(), f)
	return f
}

func isIDField(fd protoreflect.FieldDescriptor) bool {
	name := string(fd.Name())
	return fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap() &&
		(name == "id" || strings.HasSuffix(name, "_id"))
}

// mayHoldID reports whether a message of type md can hold an id field that
// resourceIDs reads, at any depth.
func mayHoldID(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return false // a recursive type: its other fields decide
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if sensitive.ClassOf(fd) != optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED {
			continue
		}
		if isIDField(fd) || (!fd.IsMap() && fd.Message() != nil && mayHoldID(fd.Message(), seen)) {
			return true
		}
	}
	return false
}
