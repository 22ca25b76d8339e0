package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/access/accesstest"
	"plinth.dev/plinth/capabilities/access/postgres"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// newPool returns a pool over a new database with the access schema
// migrated.
func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return pgtest.NewPool(t, 4, pgtest.Schema{Name: "access", Migrations: postgres.Migrations()})
}

// TestConformance holds the PostgreSQL backend to the suite every access
// backend must pass, and gives the suite every row of every table of the
// schema as text, bytea columns in hex, to look for secrets in.
func TestConformance(t *testing.T) {
	var pools sync.Map // *postgres.Store -> *pgxpool.Pool
	accesstest.Run(t,
		func(t *testing.T) access.Store {
			pool := newPool(t)
			s := postgres.New(pool)
			t.Cleanup(func() { s.Close() }) // before the pool closes: registered after it
			pools.Store(s, pool)
			return s
		},
		accesstest.WithStoredContents(func(t *testing.T, s access.Store) string {
			pool, ok := pools.Load(s)
			if !ok {
				t.Fatalf("no pool for store %p", s)
			}
			return dumpSchema(t, pool.(*pgxpool.Pool))
		}))
}

// dumpSchema returns every row of every table in the schema "access", as
// PostgreSQL prints it.
func dumpSchema(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	ctx := t.Context()
	rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'access' ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 3 {
		t.Fatalf("the access schema has tables %q, want at least principals, principal_roles and api_keys", tables)
	}
	var b strings.Builder
	for _, table := range tables {
		name := pgx.Identifier{"access", table}.Sanitize()
		rows, err := pool.Query(ctx, `SELECT t::text FROM `+name+` t`)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:\n%s\n", table, strings.Join(lines, "\n"))
	}
	return b.String()
}

func TestRegistered(t *testing.T) {
	b, err := registry.LookupBackend("access", "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if b.Migrations == nil {
		t.Fatal("the postgres backend registers no migrations")
	}
	// Open takes the gateway's pool and does not touch the database.
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store, err := b.Open(t.Context(), registry.Env{Postgres: func(context.Context) (*pgxpool.Pool, error) { return pool, nil }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, ok := store.(access.Store); !ok {
		t.Fatalf("Open returned a %T, not an access.Store", store)
	}
	// The gateway closes what Open returned if it is an io.Closer: that
	// stops the key cache's listener.
	closer, ok := store.(io.Closer)
	if !ok {
		t.Fatalf("Open returned a %T, not an io.Closer", store)
	}
	if err := closer.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := b.Open(t.Context(), registry.Env{}); err == nil {
		t.Error("Open without a pool succeeded")
	}
}

const (
	principalID = "prn_01JQ0000000000000000000001"
	keyID       = "key_01JQ0000000000000000000001"
)

// The schema itself refuses rows that break the domain's invariants, so
// that a bug in any writer (or a hand-run fix) cannot store them.
func TestSchemaRefusesWhatTheDomainForbids(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	ctx := t.Context()
	now := time.Now()
	hash := make([]byte, 32)
	if _, err := pool.Exec(ctx, `INSERT INTO access.principals (id, name, created_at) VALUES ($1, 'payroll-app', $2)`, principalID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO access.api_keys (id, principal_id, prefix, secret_hash, created_at) VALUES ($1, $2, '0123abcd', $3, $4)`,
		keyID, principalID, hash, now); err != nil {
		t.Fatal(err)
	}
	principal := `INSERT INTO access.principals (id, name, created_at) VALUES ($1, $2, $3)`
	role := `INSERT INTO access.principal_roles (principal_id, role) VALUES ($1, $2)`
	key := `INSERT INTO access.api_keys (id, principal_id, prefix, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)`
	const otherPrincipal, otherKey = "prn_01JQ0000000000000000000002", "key_01JQ0000000000000000000002"
	for _, tc := range []struct {
		name             string
		sql              string
		args             []any
		code, constraint string
	}{
		{"malformed principal id", principal, []any{"prn_1", "other-app", now}, "23514", "principals_id_format"},
		{"principal name taken", principal, []any{otherPrincipal, "payroll-app", now}, "23505", "principals_name_key"},
		{"principal name upper case", principal, []any{otherPrincipal, "Payroll", now}, "23514", "principals_name_format"},
		{"principal name too long", principal, []any{otherPrincipal, "a" + strings.Repeat("b", 64), now}, "23514", "principals_name_format"},
		{"role of no principal", role, []any{otherPrincipal, "admin"}, "23503", "principal_roles_principal_fkey"},
		{"malformed role", role, []any{principalID, "Admin"}, "23514", "principal_roles_role_format"},
		{"malformed key id", key, []any{"key_1", principalID, "11111111", hash, now}, "23514", "api_keys_id_format"},
		{"key of no principal", key, []any{otherKey, otherPrincipal, "11111111", hash, now}, "23503", "api_keys_principal_fkey"},
		{"prefix taken", key, []any{otherKey, principalID, "0123abcd", hash, now}, "23505", "api_keys_prefix_key"},
		{"prefix not hex", key, []any{otherKey, principalID, "0123abcz", hash, now}, "23514", "api_keys_prefix_format"},
		{"prefix too short", key, []any{otherKey, principalID, "0123abc", hash, now}, "23514", "api_keys_prefix_format"},
		{"hash too short", key, []any{otherKey, principalID, "11111111", hash[:31], now}, "23514", "api_keys_secret_hash_length"},
		{"hash too long", key, []any{otherKey, principalID, "11111111", append(hash, 0), now}, "23514", "api_keys_secret_hash_length"},
		{"no hash", key, []any{otherKey, principalID, "11111111", nil, now}, "23502", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pool.Exec(ctx, tc.sql, tc.args...)
			pgtest.WantViolation(t, err, tc.code, tc.constraint)
		})
	}
}

// closedPort returns a local TCP port that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// A database that cannot be reached makes every method return a
// *domainerr.UnavailableError, and Authenticate says so rather than call
// the key bad: an outage is not a wrong key.
func TestUnavailableWhenTheDatabaseIsUnreachable(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?connect_timeout=5", closedPort(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.New(pool)
	defer store.Close() // LookupKey starts its listener
	ctx := t.Context()
	p := access.Principal{ID: principalID, Name: "payroll-app", CreatedAt: time.Now()}
	k := access.APIKey{ID: keyID, PrincipalID: principalID, Prefix: "0123abcd", SecretHash: make([]byte, 32), CreatedAt: time.Now()}
	calls := map[string]func() error{
		"CreatePrincipal": func() error { return store.CreatePrincipal(ctx, p) },
		"GetPrincipal":    func() error { _, err := store.GetPrincipal(ctx, principalID); return err },
		"ListPrincipals": func() error {
			_, err := store.ListPrincipals(ctx, access.PrincipalQuery{Limit: 10})
			return err
		},
		"GrantRole":  func() error { _, err := store.GrantRole(ctx, principalID, "admin"); return err },
		"RevokeRole": func() error { _, err := store.RevokeRole(ctx, principalID, "admin"); return err },
		"CreateFirstPrincipal": func() error {
			_, err := store.CreateFirstPrincipal(ctx, p, k)
			return err
		},
		"CreateKey": func() error { return store.CreateKey(ctx, k) },
		"GetKey":    func() error { _, err := store.GetKey(ctx, keyID); return err },
		"LookupKey": func() error { _, _, err := store.LookupKey(ctx, "0123abcd"); return err },
		"ListKeys": func() error {
			_, err := store.ListKeys(ctx, access.KeyQuery{PrincipalID: principalID, Limit: 10})
			return err
		},
		"UpdateKey": func() error {
			_, err := store.UpdateKey(ctx, keyID, func(*access.APIKey) error { return nil })
			return err
		},
		"RotateKey": func() error {
			_, _, err := store.RotateKey(ctx, keyID, func(*access.APIKey) (access.APIKey, error) { return k, nil })
			return err
		},
		"RecordKeyUse": func() error { return store.RecordKeyUse(ctx, keyID, time.Now(), time.Now()) },
		"Ping":         func() error { return store.Ping(ctx) },
		"Authenticate": func() error {
			_, err := access.NewService(store).Authenticate(ctx, "plk_0123abcd_"+strings.Repeat("0", 64))
			return err
		},
	}
	for name, call := range calls {
		err := call()
		var unavailable *domainerr.UnavailableError
		if !errors.As(err, &unavailable) {
			t.Errorf("%s = %v, want *domainerr.UnavailableError", name, err)
			continue
		}
		if unavailable.Dependency != "database" || unavailable.Err == nil {
			t.Errorf("%s: Unavailable{Dependency: %q, Err: %v}, want the database and the cause", name, unavailable.Dependency, unavailable.Err)
		}
		if strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "0123abcd") {
			t.Errorf("%s: message %q shows the cause or the prefix; it reaches callers", name, err)
		}
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	if err := postgres.New(newPool(t)).Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
