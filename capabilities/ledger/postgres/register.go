package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"plinth.dev/plinth/capabilities/ledger"
	"plinth.dev/plinth/capabilities/registry"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the versioned SQL migrations of the ledger schema, in
// goose's format, for internal/migrate (`plinth migrate` and tests).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // cannot happen: "migrations" is a valid path, embedded above
	}
	return sub
}

func init() {
	registry.RegisterBackend(registry.Backend{
		Domain: "ledger",
		Name:   "postgres",
		// Open does not migrate: whoever owns the schema's lifecycle
		// (`plinth migrate`, or the gateway before it opens backends)
		// applies Migrations through internal/migrate.
		Open: func(ctx context.Context, env registry.Env) (any, error) {
			if env.Postgres == nil {
				return nil, errors.New("ledger/postgres: the gateway offers no PostgreSQL pool")
			}
			pool, err := env.Postgres(ctx)
			if err != nil {
				return nil, fmt.Errorf("ledger/postgres: %w", err)
			}
			return ledger.Store(New(pool)), nil
		},
		Migrations: Migrations(),
	})
}
