package pgtest

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/internal/migrate"
)

// Schema is a schema to migrate in a test database: its name and its
// versioned migrations.
type Schema struct {
	Name       string
	Migrations fs.FS
}

// NewPool returns a pool of at most maxConns connections over a new
// database of its own (NewDatabase) with schemas migrated, closed when the
// test ends. Conformance suites run their subtests in parallel, a database
// each, so keep maxConns small: the throwaway server allows 200 connections.
func NewPool(t testing.TB, maxConns int32, schemas ...Schema) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for _, s := range schemas {
		if _, err := migrate.Up(context.Background(), pool, s.Name, s.Migrations, nil); err != nil {
			t.Fatal(err)
		}
	}
	return pool
}

// WantViolation fails the test unless err is PostgreSQL refusing a
// statement with SQLSTATE code, for the constraint named constraint: what
// a test of a schema's own invariants asserts.
func WantViolation(t testing.TB, err error, code, constraint string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("got %v, want the database to refuse it (SQLSTATE %s, %s)", err, code, constraint)
	}
	if pgErr.Code != code || pgErr.ConstraintName != constraint {
		t.Fatalf("got SQLSTATE %s on %q, want %s on %q (%v)", pgErr.Code, pgErr.ConstraintName, code, constraint, err)
	}
}

// MigrationSections returns the Up and the Down SQL of the goose migration
// file name in migrations, for a test that undoes a migration and applies
// it again (internal/migrate only goes up). Each can be run with one Exec.
func MigrationSections(t testing.TB, migrations fs.FS, name string) (up, down string) {
	t.Helper()
	text, err := fs.ReadFile(migrations, name)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(text), "-- +goose Up\n")
	up, down, ok2 := strings.Cut(rest, "-- +goose Down\n")
	if !ok || !ok2 {
		t.Fatalf("migration %s has no Up or no Down section", name)
	}
	return up, down
}
