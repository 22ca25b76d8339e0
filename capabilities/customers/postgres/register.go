package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/customers"
	"plinth.dev/plinth/capabilities/registry"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the versioned SQL migrations of the customers schema, in
// goose's format, for internal/migrate (`plinth migrate` and tests).
func Migrations() fs.FS { return registry.MigrationsIn(migrationFiles, "migrations") }

func init() {
	registry.RegisterPostgresBackend("customers", Migrations(), func(ctx context.Context, pool *pgxpool.Pool, env registry.Env) (any, error) {
		if env.Sealer == nil {
			return nil, errors.New("customers/postgres: the gateway offers no sealer for PII")
		}
		sealer, err := env.Sealer(ctx)
		if err != nil {
			return nil, fmt.Errorf("customers/postgres: %w", err)
		}
		return customers.Store(New(pool, sealer)), nil
	})
}
