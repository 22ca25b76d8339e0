package composite_test

import (
	"context"
	"os"
	"testing"

	"plinth.dev/plinth/capabilities/customers"
	customersmemory "plinth.dev/plinth/capabilities/customers/memory"
	"plinth.dev/plinth/capabilities/ledger"
	ledgermemory "plinth.dev/plinth/capabilities/ledger/memory"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/capabilities/resources"
	"plinth.dev/plinth/capabilities/resources/composite"
	"plinth.dev/plinth/capabilities/resources/resourcestest"
	"plinth.dev/plinth/internal/pgtest"
)

// The PostgreSQL conformance test (postgres_test.go) shares this binary.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestConformance holds the composite backend, and the resource sources of
// the customers and ledger domains over their memory backends, to the
// suite.
func TestConformance(t *testing.T) {
	resourcestest.Run(t, func(*testing.T) resourcestest.Backend {
		cs, ls := customersmemory.New(), ledgermemory.New()
		return resourcestest.Backend{Customers: cs, Ledger: ls, Store: composite.New(resourcestest.Sources(cs, ls))}
	})
}

// TestRegistered: the backend opens over the sources the gateway offers,
// reads them at each call rather than once at Open, and refuses to open
// without them.
func TestRegistered(t *testing.T) {
	b, err := registry.LookupBackend("resources", "composite")
	if err != nil {
		t.Fatal(err)
	}
	if b.Migrations != nil {
		t.Error("the composite backend has migrations; it keeps nothing")
	}
	var sources []registry.ResourceSource
	store, err := b.Open(context.Background(), registry.Env{ResourceSources: func() []registry.ResourceSource { return sources }})
	if err != nil {
		t.Fatal(err)
	}
	s, ok := store.(resources.Store)
	if !ok {
		t.Fatalf("Open returned a %T, not a resources.Store", store)
	}
	// The gateway fills the sources in after every backend has opened.
	sources = []registry.ResourceSource{customers.Resources(customersmemory.New()), ledger.Resources(ledgermemory.New())}
	if got := s.Sources(); len(got) != 2 {
		t.Errorf("Sources() = %v, want the two offered after Open", got)
	}
	if _, err := b.Open(context.Background(), registry.Env{}); err == nil {
		t.Error("Open without resource sources succeeded")
	}
}
