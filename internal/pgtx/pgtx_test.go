package pgtx_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/pgtest"
	"plinth.dev/plinth/internal/pgtx"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func setup(t *testing.T) (*pgxpool.Pool, func(string) bool) {
	t.Helper()
	pool := pgtest.NewPool(t, 4)
	if _, err := pool.Exec(t.Context(), `CREATE TABLE t (k text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	exists := func(k string) bool {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM t WHERE k = $1`, k).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	return pool, exists
}

func insert(k string) func(pgx.Tx) error {
	return func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO t VALUES ($1)`, k)
		return err
	}
}

func TestRunOnItsOwn(t *testing.T) {
	t.Parallel()
	pool, exists := setup(t)
	ctx := t.Context()
	if err := pgtx.Run(ctx, pool, insert("kept")); err != nil || !exists("kept") {
		t.Fatalf("Run = %v; a committed write should be there", err)
	}
	boom := errors.New("boom")
	err := pgtx.Run(ctx, pool, func(tx pgx.Tx) error {
		if err := insert("undone")(tx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || exists("undone") {
		t.Fatalf("Run = %v; fn's error should come back and its write be undone", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Run swallowed fn's panic")
			}
		}()
		_ = pgtx.Run(ctx, pool, func(tx pgx.Tx) error {
			_ = insert("panicked")(tx)
			panic("boom")
		})
	}()
	if exists("panicked") {
		t.Error("a panicking fn's write was kept")
	}
	if stat := pool.Stat(); stat.AcquiredConns() != 0 {
		t.Errorf("%d connections still held: a transaction leaked", stat.AcquiredConns())
	}
}

func TestRunJoinsTheTransactionInTheContext(t *testing.T) {
	t.Parallel()
	pool, exists := setup(t)
	outer, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx := pgtx.WithTx(t.Context(), outer)
	if err := pgtx.Run(ctx, pool, insert("joined")); err != nil {
		t.Fatal(err)
	}
	if exists("joined") {
		t.Fatal("a joined write is visible before the owner commits")
	}
	// A failing Run undoes its own writes only.
	if err := pgtx.Run(ctx, pool, func(tx pgx.Tx) error {
		_ = insert("failed")(tx)
		return errors.New("refused")
	}); err == nil {
		t.Fatal("Run hid fn's error")
	}
	// The outer transaction is still usable, and its commit keeps the
	// first write, not the undone one.
	if err := outer.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !exists("joined") || exists("failed") {
		t.Errorf("after the owner's commit: joined=%v failed=%v, want true, false", exists("joined"), exists("failed"))
	}
}

// Joined Runs make their savepoints with their first writes, batches and
// single statements alike, nested or one after another: each undoes its
// own writes only, and a write the database refuses leaves the owner's
// transaction usable.
func TestJoinedSavepoints(t *testing.T) {
	t.Parallel()
	pool, exists := setup(t)
	const ins = `INSERT INTO t VALUES ($1)`
	outer, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Rollback(context.Background())
	ctx := pgtx.WithTx(t.Context(), outer)

	err = pgtx.Run(ctx, pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(ins, "batched")
		b.Queue(`SELECT count(*) FROM t WHERE k = 'batched'`)
		br := tx.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			return err
		}
		var n int
		if err := br.QueryRow().Scan(&n); err != nil || n != 1 {
			t.Errorf("the batch's query read %d rows, %v; want its own insert", n, err)
		}
		if err := br.Close(); err != nil {
			return err
		}
		inner := pgtx.Run(pgtx.WithTx(ctx, tx), pool, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, ins, "inner"); err != nil {
				return err
			}
			return errors.New("refused")
		})
		if inner == nil {
			t.Error("the inner Run hid its error")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Refused by the database (the key is taken): undone, and the
	// transaction goes on.
	if err := pgtx.Run(ctx, pool, insert("batched")); err == nil {
		t.Fatal("a duplicate key was accepted")
	}
	if err := pgtx.Run(ctx, pool, insert("after")); err != nil {
		t.Fatalf("a Run after a refused one: %v", err)
	}
	// A Run that wrote nothing has nothing to undo.
	if err := pgtx.Run(ctx, pool, func(pgx.Tx) error { return errors.New("refused early") }); err == nil {
		t.Fatal("Run hid fn's error")
	}
	if err := outer.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !exists("batched") || !exists("after") || exists("inner") {
		t.Errorf("after the commit: batched=%v after=%v inner=%v, want true, true, false", exists("batched"), exists("after"), exists("inner"))
	}
}

// Write sends its statement on its own, in the transaction of the
// context, or with the batch of the context, which the owner sends.
func TestWrite(t *testing.T) {
	t.Parallel()
	pool, exists := setup(t)
	const ins = `INSERT INTO t VALUES ($1)`
	if queued, err := pgtx.Write(t.Context(), pool, ins, "alone"); err != nil || queued || !exists("alone") {
		t.Fatalf("Write on its own = %v, %v; want it written", queued, err)
	}

	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	ctx := pgtx.WithTx(t.Context(), tx)
	if queued, err := pgtx.Write(ctx, pool, ins, "in-tx"); err != nil || queued || exists("in-tx") {
		t.Fatalf("Write in a transaction = %v, %v (visible outside: %v); want it written in the transaction only", queued, err, exists("in-tx"))
	}

	b := &pgx.Batch{}
	if queued, err := pgtx.Write(pgtx.WithBatch(ctx, b), pool, ins, "batched"); err != nil || !queued || b.Len() != 1 {
		t.Fatalf("Write with a batch = %v, %v, batch of %d; want it queued", queued, err, b.Len())
	}
	// Queued, not sent: the same key again fails only when the batch goes.
	b.Queue(ins, "batched")
	if err := tx.SendBatch(t.Context(), b).Close(); err == nil {
		t.Fatal("the batch with the queued write and its duplicate succeeded; the queued write was not in it")
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var unavailable *domainerr.UnavailableError
	if err := pgtx.Classify(ctx, "op", &pgconn.PgError{Code: "57P01"}); !errors.As(err, &unavailable) {
		t.Errorf("admin shutdown = %v, want Unavailable", err)
	}
	if k, _ := domainerr.KindOf(pgtx.Classify(ctx, "op", &pgconn.PgError{Code: "40001"})); k != domainerr.KindAborted {
		t.Errorf("serialization failure = kind %v, want Aborted", k)
	}
	if _, ok := domainerr.KindOf(pgtx.Classify(ctx, "op", &pgconn.PgError{Code: "23505"})); ok {
		t.Error("a unique violation became a domain error; the backend decides what it means")
	}
	notFound := &domainerr.NotFoundError{Resource: "thing", ID: "1"}
	if err := pgtx.Classify(ctx, "op", notFound); err != notFound {
		t.Errorf("a domain error was rewrapped: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := pgtx.Classify(canceled, "op", &pgconn.PgError{Code: "57P01"}); errors.As(err, &unavailable) {
		t.Error("the caller giving up was called Unavailable")
	}
	// A statement canceled on the server because the caller gave up is
	// the caller's end, not a failure of the database.
	queryCanceled := &pgconn.PgError{Code: "57014"}
	if err := pgtx.Classify(canceled, "op", queryCanceled); !errors.Is(err, context.Canceled) || !errors.Is(err, queryCanceled) {
		t.Errorf("a canceled statement of a canceled call = %v, want it to wrap context.Canceled and the database's error", err)
	}
}
