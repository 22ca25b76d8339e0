package postgres

import (
	"context"
	"embed"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/audit"
	"plinth.dev/plinth/capabilities/registry"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the versioned SQL migrations of the audit schema, in
// goose's format, for internal/migrate (`plinth migrate` and tests).
func Migrations() fs.FS { return registry.MigrationsIn(migrationFiles, "migrations") }

func init() {
	registry.RegisterPostgresBackend("audit", Migrations(), func(_ context.Context, pool *pgxpool.Pool, _ registry.Env) (any, error) {
		return audit.Store(New(pool)), nil
	})
}
