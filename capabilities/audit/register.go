package audit

import (
	"net/http"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/registry"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/audit/v1/auditv1connect"
)

func init() {
	registry.RegisterDomain(registry.Domain{
		Name:           "audit",
		Service:        auditv1.File_plinth_audit_v1_audit_proto.Services().ByName("AuditService"),
		DefaultBackend: "memory",
		Mount: registry.MountFunc(func(store Store, env registry.Env, opts ...connect.HandlerOption) (string, http.Handler) {
			return auditv1connect.NewAuditServiceHandler(NewService(store, WithPageTokens(env.PageTokens)), opts...)
		}),
	})
}
