// Package migrate applies a domain's versioned SQL migrations to PostgreSQL
// with goose (github.com/pressly/goose/v3).
//
// Each domain owns one PostgreSQL schema, named after the domain, and keeps
// the record of its applied migrations there:
//
//	customers                    the schema of the customers domain
//	├── schema_migrations        which migrations of customers are applied
//	├── customers                the domain's tables, created by
//	└── customer_pii             its migrations
//
// so that domains migrate independently of each other (a version number
// means something only within its domain) and dropping a domain's schema
// takes its history with it.
//
// Migration files are goose SQL files named like 00001_create.sql, with
// "-- +goose Up" and "-- +goose Down" sections; each runs in a transaction
// of its own unless it says "-- +goose NO TRANSACTION". They name their
// tables with the schema (customers.customers): migrations do not change
// the search_path.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

// VersionTable is the name of the table, in each domain's schema, that
// records which of the domain's migrations are applied.
const VersionTable = "schema_migrations"

// Lock waits. A runner that finds another one migrating the same domain
// polls for its lock every lockPollSeconds, up to lockPolls times, then
// gives up.
const (
	lockPollSeconds = 1
	lockPolls       = 600 // ten minutes: long enough for any migration we would run at start-up
)

// Applied is a migration that Up applied.
type Applied struct {
	Version  int64
	Name     string // the file's name, e.g. "00001_customers.sql"
	Duration time.Duration
}

// MigrationStatus says whether one migration is applied.
type MigrationStatus struct {
	Version int64
	Name    string // the file's name, e.g. "00001_customers.sql"
	// AppliedAt is when the migration was applied; zero while it is
	// pending.
	AppliedAt time.Time
}

// Pending reports whether the migration is yet to be applied.
func (s MigrationStatus) Pending() bool { return s.AppliedAt.IsZero() }

// domainPattern is what a domain's name may be: what the registry accepts
// for a domain, so a name never needs quoting except to guard against SQL
// keywords.
var domainPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Up applies the migrations of domain that are not applied yet, in version
// order, each in its own transaction, and logs each one at Info. It returns
// what it applied; when a migration fails, what it applied before that one
// (which stays applied) and an error that names the failed file.
//
// Up is safe to run from several processes at once against one database
// (several gateway replicas starting together): a PostgreSQL advisory lock,
// one per domain, lets one of them migrate while the others wait, and those
// then find nothing left to apply.
func Up(ctx context.Context, pool *pgxpool.Pool, domain string, migrations fs.FS, log *slog.Logger) ([]Applied, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkDomain(domain); err != nil {
		return nil, err
	}
	// goose creates the version table in the domain's schema before it
	// runs the first migration, so the schema must exist before goose
	// starts; and a migration cannot create it, since it would run after
	// the table that records it.
	if err := createSchema(ctx, pool, domain); err != nil {
		return nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close() // returns the connections to pool, which stays open
	p, err := newProvider(db, domain, migrations)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		applied := logApplied(ctx, log, domain, partial.Applied)
		return applied, fmt.Errorf("migrate %s: %s failed, after applying %d migration(s): %w",
			domain, path.Base(partial.Failed.Source.Path), len(applied), partial.Err)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", domain, err)
	}
	return logApplied(ctx, log, domain, results), nil
}

func logApplied(ctx context.Context, log *slog.Logger, domain string, results []*goose.MigrationResult) []Applied {
	applied := make([]Applied, 0, len(results))
	for _, r := range results {
		a := Applied{Version: r.Source.Version, Name: path.Base(r.Source.Path), Duration: r.Duration}
		applied = append(applied, a)
		log.InfoContext(ctx, "applied migration",
			slog.String("domain", domain),
			slog.Int64("version", a.Version),
			slog.String("file", a.Name),
			slog.Duration("duration", a.Duration))
	}
	return applied
}

// Status returns every migration of domain, in version order, and whether
// it is applied. It changes nothing in the database: before the first Up,
// it reports every migration pending. While another runner migrates the
// domain, Status waits for it, so as not to report a migration half-way.
func Status(ctx context.Context, pool *pgxpool.Pool, domain string, migrations fs.FS) ([]MigrationStatus, error) {
	if err := checkDomain(domain); err != nil {
		return nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := newProvider(db, domain, migrations)
	if err != nil {
		return nil, err
	}
	var tracked bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable(domain)).Scan(&tracked); err != nil {
		return nil, fmt.Errorf("migrate %s: look for the version table: %w", domain, err)
	}
	if !tracked {
		// goose's Status would create the table (and fail for want of
		// the schema): report what it would, without writing.
		var out []MigrationStatus
		for _, s := range p.ListSources() {
			out = append(out, MigrationStatus{Version: s.Version, Name: path.Base(s.Path)})
		}
		return out, nil
	}
	statuses, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: status: %w", domain, err)
	}
	out := make([]MigrationStatus, 0, len(statuses))
	for _, s := range statuses {
		st := MigrationStatus{Version: s.Source.Version, Name: path.Base(s.Source.Path)}
		if s.State == goose.StateApplied {
			st.AppliedAt = s.AppliedAt.UTC()
		}
		out = append(out, st)
	}
	return out, nil
}

func checkDomain(domain string) error {
	if !domainPattern.MatchString(domain) {
		return fmt.Errorf("migrate: domain name %q must match %s", domain, domainPattern)
	}
	return nil
}

// newProvider returns a goose provider for one domain's migrations.
func newProvider(db *sql.DB, domain string, migrations fs.FS) (*goose.Provider, error) {
	store, err := database.NewStoreFromQuerier(versionTable(domain), versionQuerier{})
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", domain, err)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lockID(domain)),
		lock.WithLockTimeout(lockPollSeconds, lockPolls))
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", domain, err)
	}
	p, err := goose.NewProvider(goose.DialectCustom, db, migrations,
		goose.WithStore(store),
		goose.WithSessionLocker(locker),
		// Go migrations registered with goose's global functions, by any
		// package linked in, would otherwise join every domain's.
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", domain, err)
	}
	return p, nil
}

// createSchema creates the domain's schema if it does not exist. Two
// runners doing so at once could both miss it and one would fail on the
// catalog's unique index, so it happens under the domain's migration lock
// (held for the transaction only).
func createSchema(ctx context.Context, pool *pgxpool.Pool, domain string) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockID(domain)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{domain}.Sanitize())
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate %s: create schema: %w", domain, err)
	}
	return nil
}

// versionTable returns the quoted, schema-qualified name of the domain's
// version table.
func versionTable(domain string) string {
	return pgx.Identifier{domain, VersionTable}.Sanitize()
}

// lockID returns the advisory lock that serialises the runners of one
// domain: a hash of its name, so that domains migrate independently.
// Advisory locks are per database, so tests on databases of their own do
// not wait for each other either.
func lockID(domain string) int64 {
	h := fnv.New64a()
	h.Write([]byte("plinth.migrate/" + domain))
	return int64(h.Sum64())
}

// versionQuerier is goose's PostgreSQL dialect for the version table, with
// two changes:
//   - the table name comes quoted (a domain named like an SQL keyword would
//     break goose's unquoted one);
//   - tstamp is a timestamptz, not a timestamp, so that AppliedAt is right
//     whatever the TimeZone of the session that applied or reads it.
//
// The columns and queries are otherwise goose's, so the goose CLI can read
// the table too (goose -table '"customers".schema_migrations').
type versionQuerier struct{}

func (versionQuerier) CreateTable(table string) string {
	return `CREATE TABLE ` + table + ` (
		id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
		version_id bigint NOT NULL,
		is_applied boolean NOT NULL,
		tstamp timestamptz NOT NULL DEFAULT now()
	)`
}

func (versionQuerier) InsertVersion(table string) string {
	return `INSERT INTO ` + table + ` (version_id, is_applied) VALUES ($1, $2)`
}

func (versionQuerier) DeleteVersion(table string) string {
	return `DELETE FROM ` + table + ` WHERE version_id = $1`
}

func (versionQuerier) GetMigrationByVersion(table string) string {
	return `SELECT tstamp, is_applied FROM ` + table + ` WHERE version_id = $1 ORDER BY tstamp DESC LIMIT 1`
}

func (versionQuerier) ListMigrations(table string) string {
	return `SELECT version_id, is_applied FROM ` + table + ` ORDER BY id DESC`
}

func (versionQuerier) GetLatestVersion(table string) string {
	return `SELECT max(version_id) FROM ` + table
}

// TableExists is optional in goose's interface; without it goose probes by
// querying the table and logs an error when it is missing.
func (versionQuerier) TableExists(table string) string {
	// table is built by versionTable from a checked domain name, so it
	// holds no quote that could end the literal.
	return `SELECT to_regclass('` + table + `') IS NOT NULL`
}
