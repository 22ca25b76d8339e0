package customers

import (
	"net/http"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/registry"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
)

func init() {
	registry.RegisterDomain(registry.Domain{
		Name:           "customers",
		Service:        customersv1.File_plinth_customers_v1_customers_proto.Services().ByName("CustomerService"),
		DefaultBackend: "memory",
		Mount: registry.MountFunc(func(store Store, env registry.Env, opts ...connect.HandlerOption) (string, http.Handler) {
			return customersv1connect.NewCustomerServiceHandler(NewService(store, WithPageTokens(env.PageTokens)), opts...)
		}),
		Resources: registry.ResourcesFunc(Resources),
	})
}
