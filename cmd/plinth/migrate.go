package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/gateway"
	"plinth.dev/plinth/gateway/idempotency"
	"plinth.dev/plinth/internal/migrate"
)

type migrateCmd struct {
	Up     migrateUpCmd     `cmd:"" default:"1" help:"Apply pending migrations (the default)."`
	Status migrateStatusCmd `cmd:"" help:"List every migration and when it was applied."`
}

type migrateUpCmd struct{ configFlag }

type migrateStatusCmd struct{ configFlag }

// migrationTarget is a schema with its migrations: a domain whose
// configured backend has some, or the gateway's idempotency records.
type migrationTarget struct {
	schema     string
	migrations fs.FS
}

// targets returns the schemas to migrate for cfg and a pool to the
// configured database.
func targets(ctx context.Context, cfg gateway.Config) (_ []migrationTarget, _ *pgxpool.Pool, closePool func(), _ error) {
	var (
		out      []migrationTarget
		backends []registry.Backend
	)
	for _, d := range registry.Domains() {
		name := cfg.Backends[d.Name]
		if name == "" {
			name = d.DefaultBackend
		}
		b, err := registry.LookupBackend(d.Name, name)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("config: backends.%s: %w", d.Name, err)
		}
		backends = append(backends, b)
		if b.Migrations != nil {
			out = append(out, migrationTarget{schema: d.Name, migrations: b.Migrations})
		}
	}
	if gateway.IdempotencyStoreKind(cfg, backends) == "postgres" {
		out = append(out, migrationTarget{schema: idempotency.Schema, migrations: idempotency.Migrations})
	}
	if len(out) == 0 {
		return nil, nil, nil, nil
	}
	if cfg.Postgres.URL == "" {
		return nil, nil, nil, fmt.Errorf("migrate: domains are configured for postgres but postgres.url is empty: set it in the config file or PLINTH_POSTGRES_URL")
	}
	// As the gateway connects: with credentials from Vault if so
	// configured, acting as the owner role, so that what migrations create
	// belongs to it.
	pool, closePool, err := gateway.OpenPostgres(ctx, cfg, newLogger(cfg.Log, os.Stderr))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("migrate: %w", err)
	}
	return out, pool, closePool, nil
}

func (c *migrateUpCmd) Run() error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ts, pool, closePool, err := targets(ctx, cfg)
	if err != nil {
		return err
	}
	if len(ts) == 0 {
		fmt.Println("Nothing is configured to live in PostgreSQL; nothing to do.")
		return nil
	}
	defer closePool()
	log := newLogger(cfg.Log, os.Stderr)
	for _, t := range ts {
		applied, err := migrate.Up(ctx, pool, t.schema, t.migrations, log)
		if err != nil {
			return err
		}
		fmt.Printf("%s: %d migration(s) applied\n", t.schema, len(applied))
	}
	return nil
}

func (c *migrateStatusCmd) Run() error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ts, pool, closePool, err := targets(ctx, cfg)
	if err != nil {
		return err
	}
	if len(ts) == 0 {
		fmt.Println("Nothing is configured to live in PostgreSQL.")
		return nil
	}
	defer closePool()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SCHEMA\tVERSION\tMIGRATION\tAPPLIED")
	for _, t := range ts {
		statuses, err := migrate.Status(ctx, pool, t.schema, t.migrations)
		if err != nil {
			return err
		}
		for _, s := range statuses {
			applied := "pending"
			if !s.Pending() {
				applied = s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", t.schema, s.Version, s.Name, applied)
		}
	}
	return w.Flush()
}
