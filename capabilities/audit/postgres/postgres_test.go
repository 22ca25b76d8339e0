package postgres_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/audit"
	"plinth.dev/plinth/capabilities/audit/audittest"
	"plinth.dev/plinth/capabilities/audit/postgres"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/internal/migrate"
	"plinth.dev/plinth/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// newPool returns a pool over a new database with the audit schema
// migrated.
func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	// The suite runs its subtests in parallel, a database each: keep the
	// server's connections enough for all of them.
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrate.Up(t.Context(), pool, "audit", postgres.Migrations(), nil); err != nil {
		t.Fatal(err)
	}
	return pool
}

func TestConformance(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store { return postgres.New(newPool(t)) })
}

// tamper runs sql as someone who owns the table could: with the
// append-only trigger switched off.
func tamper(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx := t.Context()
	for _, stmt := range []string{`ALTER TABLE audit.records DISABLE TRIGGER records_append_only`, sql, `ALTER TABLE audit.records ENABLE TRIGGER records_append_only`} {
		var a []any
		if stmt == sql {
			a = args
		}
		tag, err := pool.Exec(ctx, stmt, a...)
		if err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		if stmt == sql && tag.RowsAffected() != 1 {
			t.Fatalf("%s changed %d rows, want 1", sql, tag.RowsAffected())
		}
	}
}

// Editing one audit row in the database shows at that row.
func TestVerifyFindsAnEditedRow(t *testing.T) {
	t.Parallel()
	for name, sql := range map[string]string{
		"code":      `UPDATE audit.records SET code = 'permission_denied' WHERE sequence = $1`,
		"principal": `UPDATE audit.records SET principal_id = 'prn_00000000000000000000000009' WHERE sequence = $1`,
		"revealed":  `UPDATE audit.records SET revealed = '{}' WHERE sequence = $1`,
		"time":      `UPDATE audit.records SET time = time - interval '1 microsecond' WHERE sequence = $1`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool := newPool(t)
			store := postgres.New(pool)
			audittest.Fill(t, store, 10)
			tamper(t, pool, sql, 7)
			audittest.WantBroken(t, store, 7, "record 7's hash does not match its contents")
		})
	}
}

func TestVerifyFindsARehashedRow(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	store := postgres.New(pool)
	audittest.Fill(t, store, 10)
	r, err := store.List(t.Context(), audit.Query{AfterSequence: 3, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	forged := r[0]
	forged.Code = "ok"
	forged.PrincipalID = ""
	forged.Hash = audit.ComputeHash(forged)
	tamper(t, pool, `UPDATE audit.records SET code = $2, principal_id = $3, hash = $4 WHERE sequence = $1`,
		forged.Sequence, forged.Code, forged.PrincipalID, forged.Hash)
	audittest.WantBroken(t, store, 5, "record 5 does not follow 4's hash")
}

func TestVerifyFindsADeletedRow(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	store := postgres.New(pool)
	audittest.Fill(t, store, 10)
	tamper(t, pool, `DELETE FROM audit.records WHERE sequence = $1`, 6)
	audittest.WantBroken(t, store, 6, "record 6 is missing")
	tamper(t, pool, `DELETE FROM audit.records WHERE sequence = $1`, 7)
	audittest.WantBroken(t, store, 6, "records 6..7 are missing")
	// Appending goes on after tampering, and does not hide it.
	audittest.Fill(t, store, 1)
	audittest.WantBroken(t, store, 6, "records 6..7 are missing")
}

// The table refuses changes unless its owner turns the trigger off.
func TestRecordsAreAppendOnly(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	audittest.Fill(t, postgres.New(pool), 2)
	for _, sql := range []string{
		`UPDATE audit.records SET code = 'ok' WHERE sequence = 1`,
		`DELETE FROM audit.records WHERE sequence = 2`,
		`TRUNCATE audit.records`,
	} {
		_, err := pool.Exec(t.Context(), sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s = %v, want it refused with SQLSTATE 42501", sql, err)
		}
	}
	audittest.WantOK(t, postgres.New(pool), 2)
}

func TestSchemaRefusesBadHashes(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	insert := `INSERT INTO audit.records (id, sequence, time, principal_id, capability, code, resource_ids, revealed, request_id, prev_hash, hash)
VALUES ('aud_00000000000000000000000001', 1, now(), '', '/x.v1.S/M', 'ok', '{}', '{}', '', $1, $2)`
	good := make([]byte, 32)
	for name, tc := range map[string]struct {
		prev, hash []byte
		constraint string
	}{
		"short prev_hash": {good[:31], good, "records_prev_hash_length"},
		"long hash":       {good, append(good, 0), "records_hash_length"},
	} {
		_, err := pool.Exec(t.Context(), insert, tc.prev, tc.hash)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.ConstraintName != tc.constraint {
			t.Errorf("%s: %v, want a violation of %s", name, err, tc.constraint)
		}
	}
}

// Appends from several stores over one database (several gateways) still
// make one gapless chain.
func TestAppendsFromSeveralGateways(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			p, err := pgxpool.New(t.Context(), pool.Config().ConnString())
			if err != nil {
				t.Error(err)
				return
			}
			defer p.Close()
			svc := audit.NewService(postgres.New(p))
			for i := range 10 {
				if _, err := svc.Append(t.Context(), audittest.Entry(g*10+i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	audittest.WantOK(t, postgres.New(pool), 40)
	var last int64
	if err := pool.QueryRow(t.Context(), `SELECT last_sequence FROM audit.head`).Scan(&last); err != nil || last != 40 {
		t.Errorf("head: last_sequence %d (%v), want 40", last, err)
	}
}

func TestRegistered(t *testing.T) {
	b, err := registry.LookupBackend("audit", "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if b.Migrations == nil {
		t.Fatal("the postgres backend registers no migrations")
	}
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store, err := b.Open(t.Context(), registry.Env{Postgres: func(context.Context) (*pgxpool.Pool, error) { return pool, nil }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, ok := store.(audit.Store); !ok {
		t.Fatalf("Open returned a %T, not an audit.Store", store)
	}
}

// A chain whose newest rows were deleted is whole as far as it goes; the
// head, kept apart, says how far it should go.
func TestVerifyFindsTheNewestRowsDeleted(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	s := postgres.New(pool)
	audittest.Fill(t, s, 10)
	tamper(t, pool, `DELETE FROM audit.records WHERE sequence = $1`, 10)
	audittest.WantBroken(t, s, 10, "record 10 is missing")
	tamper(t, pool, `DELETE FROM audit.records WHERE sequence = $1`, 9)
	audittest.WantBroken(t, s, 9, "records 9..10 are missing")
}
