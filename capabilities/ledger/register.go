package ledger

import (
	"net/http"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/registry"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
)

func init() {
	registry.RegisterDomain(registry.Domain{
		Name:           "ledger",
		Service:        ledgerv1.File_plinth_ledger_v1_ledger_proto.Services().ByName("LedgerService"),
		DefaultBackend: "memory",
		Mount: registry.MountFunc(func(store Store, env registry.Env, opts ...connect.HandlerOption) (string, http.Handler) {
			return ledgerv1connect.NewLedgerServiceHandler(NewService(store, WithPageTokens(env.PageTokens)), opts...)
		}),
		Resources: registry.ResourcesFunc(Resources),
	})
}
