package gateway

import (
	"context"
	"log/slog"
	"slices"
	"strings"
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

// auditor appends one record to the audit chain for every capability call,
// whatever its outcome: the principal (once authenticated), the
// capability, the code, the ids of the resources it named or returned, and
// the classes of sensitive data it revealed.
//
// The record is appended after the answer is decided and in a transaction
// of its own, so a failed call is audited too. If the append fails, the
// answer still goes out (its effect is done; an error would make the caller
// retry what succeeded) and the failure is logged and counted: the gap
// shows in VerifyAuditChain's record count, not in the chain, which stays
// valid.
type auditor struct {
	audit   *audit.Service
	metrics *metrics
	log     *slog.Logger
}

func (a *auditor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		var resMsg proto.Message
		if err == nil {
			resMsg, _ = res.Any().(proto.Message)
		}
		reqMsg, _ := req.Any().(proto.Message)
		a.append(ctx, req.Spec().Procedure, err, resourceIDs(reqMsg, resMsg))
		return res, err
	}
}

func (a *auditor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *auditor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		a.append(ctx, conn.Spec().Procedure, err, nil)
		return err
	}
}

func (a *auditor) append(ctx context.Context, procedure string, err error, resources []string) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	e := audit.Entry{Capability: procedure, Code: code, ResourceIDs: resources, RequestID: RequestID(ctx)}
	if n, ok := ctx.Value(callNotesKey{}).(*callNotes); ok {
		e.PrincipalID, e.Revealed = n.snapshot()
	}
	// The caller may have gone: the record is still owed.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, aerr := a.audit.Append(actx, e); aerr != nil {
		a.metrics.auditFailures.Inc()
		a.log.ErrorContext(ctx, "audit: the record of a call could not be appended", "capability", procedure, "code", code, "error", aerr.Error())
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
