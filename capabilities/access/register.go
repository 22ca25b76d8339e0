package access

import (
	"net/http"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/registry"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/access/v1/accessv1connect"
)

func init() {
	registry.RegisterDomain(registry.Domain{
		Name:           "access",
		Service:        accessv1.File_plinth_access_v1_access_proto.Services().ByName("AccessService"),
		DefaultBackend: "memory",
		Mount: registry.MountFunc(func(store Store, env registry.Env, opts ...connect.HandlerOption) (string, http.Handler) {
			return accessv1connect.NewAccessServiceHandler(NewService(store, WithPageTokens(env.PageTokens)), opts...)
		}),
	})
}
