package resources

import (
	"net/http"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/registry"
	resourcesv1 "plinth.dev/plinth/sdk/go/gen/plinth/resources/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/resources/v1/resourcesv1connect"
)

func init() {
	registry.RegisterDomain(registry.Domain{
		Name:    "resources",
		Service: resourcesv1.File_plinth_resources_v1_resources_proto.Services().ByName("ResourceService"),
		// The domain keeps nothing: its one backend reads the other
		// domains (resources/composite).
		DefaultBackend: "composite",
		Mount: registry.MountFunc(func(store Store, env registry.Env, opts ...connect.HandlerOption) (string, http.Handler) {
			return resourcesv1connect.NewResourceServiceHandler(NewService(store, WithPageTokens(env.PageTokens)), opts...)
		}),
	})
}
