package composite_test

import (
	"testing"

	customerspostgres "plinth.dev/plinth/capabilities/customers/postgres"
	ledgerpostgres "plinth.dev/plinth/capabilities/ledger/postgres"
	"plinth.dev/plinth/capabilities/resources/composite"
	"plinth.dev/plinth/capabilities/resources/resourcestest"
	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/pgtest"
	"plinth.dev/plinth/internal/seal"
)

// TestConformancePostgres holds the resource sources of the customers and
// ledger domains over their PostgreSQL backends to the suite: one database
// with both schemas, as a gateway has them.
func TestConformancePostgres(t *testing.T) {
	resourcestest.Run(t, func(t *testing.T) resourcestest.Backend {
		pool := pgtest.NewPool(t, 8,
			pgtest.Schema{Name: "customers", Migrations: customerspostgres.Migrations()},
			pgtest.Schema{Name: "ledger", Migrations: ledgerpostgres.Migrations()})
		kr, err := keyring.NewLocal("")
		if err != nil {
			t.Fatal(err)
		}
		cs, ls := customerspostgres.New(pool, seal.New(kr)), ledgerpostgres.New(pool)
		return resourcestest.Backend{Customers: cs, Ledger: ls, Store: composite.New(resourcestest.Sources(cs, ls))}
	})
}
