package postgres

import (
	"embed"
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
	registry.RegisterPostgresBackend("customers", Migrations(), func(pool *pgxpool.Pool) any {
		return customers.Store(New(pool))
	})
}
