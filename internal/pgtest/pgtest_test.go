package pgtest_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"plinth.dev/plinth/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func connect(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func databaseOf(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("NewDatabase returned an invalid URL: %v", err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func TestNewDatabaseIsFreshAndEmpty(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	conn := connect(t, dbURL)

	var current string
	if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&current); err != nil {
		t.Fatal(err)
	}
	if want := databaseOf(t, dbURL); current != want {
		t.Errorf("connected to database %q, want %q", current, want)
	}
	if !strings.HasPrefix(current, "pgtest_testnewdatabaseisfreshandempty_") {
		t.Errorf("database %q is not named after the test", current)
	}

	var tables int
	if err := conn.QueryRow(t.Context(),
		`SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("new database has %d tables, want none", tables)
	}
}

// Parallel tests each get a database of their own: what one writes, the
// others do not see.
func TestNewDatabaseIsolatesParallelTests(t *testing.T) {
	pgtest.NewDatabase(t) // skips here, not in every subtest, without a server
	var (
		mu    sync.Mutex
		names = map[string]bool{}
	)
	t.Run("group", func(t *testing.T) {
		for i := range 12 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				dbURL := pgtest.NewDatabase(t)
				mu.Lock()
				names[databaseOf(t, dbURL)] = true
				mu.Unlock()

				conn := connect(t, dbURL)
				// Would fail with "already exists" if two tests shared a
				// database.
				if _, err := conn.Exec(t.Context(), "CREATE TABLE marker (test int PRIMARY KEY)"); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(t.Context(), "INSERT INTO marker VALUES ($1)", i); err != nil {
					t.Fatal(err)
				}
				var n int
				if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM marker").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 1 {
					t.Errorf("marker table has %d rows, want only this test's", n)
				}
			})
		}
	})
	if len(names) != 12 {
		t.Errorf("12 tests got %d distinct databases", len(names))
	}
}

// A database is dropped when its test ends, even if the test left a
// connection open.
func TestNewDatabaseDropsTheDatabaseAfterTheTest(t *testing.T) {
	t.Parallel()
	var dropped string
	t.Run("user", func(t *testing.T) {
		dbURL := pgtest.NewDatabase(t)
		dropped = databaseOf(t, dbURL)
		conn, err := pgx.Connect(t.Context(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose: DROP DATABASE ... WITH (FORCE) must end it.
		_ = conn
	})

	conn := connect(t, pgtest.NewDatabase(t))
	var exists bool
	if err := conn.QueryRow(t.Context(),
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", dropped).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %q still exists after its test ended", dropped)
	}
}

// A server of NewServer stops as a crash would and starts again on the
// same URL, with what was committed before.
func TestNewServerStopsAndStarts(t *testing.T) {
	t.Parallel()
	s := pgtest.NewServer(t)
	ctx := t.Context()
	conn := connect(t, s.URL())
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Error("Running after Stop")
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("a connection of before the stop still works")
	}
	if c, err := pgx.Connect(ctx, s.URL()); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}

	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	again := connect(t, s.URL())
	var v int
	if err := again.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("after the restart: %d, %v; want the committed row", v, err)
	}

	// It is not the shared server: a database of NewDatabase is elsewhere.
	own, _ := url.Parse(s.URL())
	shared, _ := url.Parse(pgtest.NewDatabase(t))
	if own.Host == shared.Host {
		t.Errorf("NewServer's server is the shared one, at %s", own.Host)
	}
}
