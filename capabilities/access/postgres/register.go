package postgres

import (
	"context"
	"embed"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/registry"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the versioned SQL migrations of the access schema, in
// goose's format, for internal/migrate (`plinth migrate` and tests).
func Migrations() fs.FS { return registry.MigrationsIn(migrationFiles, "migrations") }

func init() {
	// The gateway closes what Open returns if it is an io.Closer, as the
	// *Store inside this access.Store is: that stops its cache's listener.
	registry.RegisterPostgresBackend("access", Migrations(), func(_ context.Context, pool *pgxpool.Pool, env registry.Env) (any, error) {
		return access.Store(New(pool, WithLogger(env.Logger))), nil
	})
}
