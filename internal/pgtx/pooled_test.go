package pgtx_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/internal/pgtest"
	"plinth.dev/plinth/internal/pgtx"
)

// begin begins a PooledTx with an insert of k in its first round trip.
func begin(t *testing.T, pool *pgxpool.Pool, k string) *pgtx.PooledTx {
	t.Helper()
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`INSERT INTO t VALUES ($1)`, k)
	tx, br := pgtx.BeginWith(t.Context(), pool, b)
	if err := br.Close(); err != nil {
		_ = tx.Rollback(t.Context())
		t.Fatalf("BeginWith: %v", err)
	}
	return tx
}

func wantReleased(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Errorf("%d connections still held after the transaction ended", n)
	}
}

func TestPooledTxCommitsWithItsLastStatements(t *testing.T) {
	t.Parallel()
	pool, exists := setup(t)
	ctx := t.Context()

	tx := begin(t, pool, "first")
	if exists("first") {
		t.Error("the first round trip's write is visible before the commit")
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES ('middle')`); err != nil {
		t.Fatal(err)
	}
	last := &pgx.Batch{}
	last.Queue(`INSERT INTO t VALUES ('last')`)
	if err := tx.CommitWith(ctx, last); err != nil {
		t.Fatalf("CommitWith = %v", err)
	}
	for _, k := range []string{"first", "middle", "last"} {
		if !exists(k) {
			t.Errorf("%q was not committed", k)
		}
	}
	wantReleased(t, pool)

	// Ended: it refuses to be used, rather than run on a connection that is
	// back in the pool.
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES ('late')`); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Exec after the commit = %v, want ErrTxClosed", err)
	}
	if err := tx.QueryRow(ctx, `SELECT 1`).Scan(new(int)); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("QueryRow after the commit = %v, want ErrTxClosed", err)
	}
	if err := tx.SendBatch(ctx, &pgx.Batch{}).Close(); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("SendBatch after the commit = %v, want ErrTxClosed", err)
	}
	if err := tx.Rollback(ctx); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Rollback after the commit = %v, want ErrTxClosed", err)
	}
	if exists("late") {
		t.Error("a write after the commit was made")
	}
}

func TestPooledTxCommitsNothingWhenAStatementFails(t *testing.T) {
	t.Parallel()
	pool, exists := setup(t)
	ctx := t.Context()

	tx := begin(t, pool, "a")
	last := &pgx.Batch{}
	last.Queue(`INSERT INTO t VALUES ('b')`)
	last.Queue(`INSERT INTO t VALUES ('a')`) // taken: the COMMIT after it must not run
	pgtest.WantViolation(t, tx.CommitWith(ctx, last), "23505", "t_pkey")
	if exists("a") || exists("b") {
		t.Error("a transaction whose last statements failed committed some of them")
	}
	wantReleased(t, pool)
	if err := tx.Rollback(ctx); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Rollback after a failed CommitWith = %v, want ErrTxClosed", err)
	}
}

func TestPooledTxReportsARefusedCommit(t *testing.T) {
	t.Parallel()
	pool, exists := setup(t)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `
CREATE TABLE child (k text REFERENCES t (k) DEFERRABLE INITIALLY DEFERRED)`); err != nil {
		t.Fatal(err)
	}

	tx := begin(t, pool, "parent")
	last := &pgx.Batch{}
	last.Queue(`INSERT INTO child VALUES ('orphan')`) // refused at COMMIT only
	pgtest.WantViolation(t, tx.CommitWith(ctx, last), "23503", "child_k_fkey")
	if exists("parent") {
		t.Error("a transaction whose COMMIT was refused left its writes")
	}
	wantReleased(t, pool)
}

func TestPooledTxRollsBack(t *testing.T) {
	t.Parallel()
	pool, exists := setup(t)
	ctx := t.Context()

	tx := begin(t, pool, "undone")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("Rollback = %v", err)
	}
	if exists("undone") {
		t.Error("a rolled back write was kept")
	}
	wantReleased(t, pool)

	// A first round trip that fails leaves nothing held once rolled back.
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`INSERT INTO no_such_table VALUES (1)`)
	tx, br := pgtx.BeginWith(ctx, pool, b)
	if err := br.Close(); err == nil {
		t.Fatal("a batch over a missing table succeeded")
	}
	_ = tx.Rollback(ctx)
	wantReleased(t, pool)
	if _, err := tx.Exec(ctx, `SELECT 1`); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Exec after the rollback = %v, want ErrTxClosed", err)
	}
}

func TestAfterEnd(t *testing.T) {
	t.Parallel()
	pool, _ := setup(t)
	ctx := t.Context()

	ran := 0
	pgtx.AfterEnd(ctx, func() { ran++ })
	if ran != 1 {
		t.Fatalf("without a transaction, AfterEnd ran fn %d times, want once at once", ran)
	}

	for _, commit := range []bool{true, false} {
		ran = 0
		tx := begin(t, pool, "after-end")
		txCtx := pgtx.WithTx(ctx, tx)
		pgtx.AfterEnd(txCtx, func() { ran++ })
		pgtx.AfterEnd(txCtx, func() { ran++ })
		if ran != 0 {
			t.Fatalf("AfterEnd ran fn before the transaction ended")
		}
		if commit {
			if err := tx.CommitWith(ctx, &pgx.Batch{}); err != nil {
				t.Fatal(err)
			}
		} else if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if ran != 2 {
			t.Errorf("committed %v: fns ran %d times after the end, want 2", commit, ran)
		}
		if commit {
			if _, err := pool.Exec(ctx, `DELETE FROM t WHERE k = 'after-end'`); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The first Run to join a PooledTx at its owner's savepoint writes in that
// savepoint; a failure rolls back to it, which undoes the Run's writes and
// nothing before the savepoint. A second Run makes its own, so that its
// failure keeps the first one's writes.
func TestRunWritesInTheOwnersSavepoint(t *testing.T) {
	t.Parallel()
	pool, exists := setup(t)
	ctx := t.Context()

	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`INSERT INTO t VALUES ('claim')`)
	b.Queue(`SAVEPOINT effect`)
	tx, br := pgtx.BeginWith(ctx, pool, b)
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	tx.AtSavepoint("effect")
	txCtx := pgtx.WithTx(ctx, tx)
	inTx := func(k string) bool {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM t WHERE k = $1`, k).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	boom := errors.New("boom")
	err := pgtx.Run(txCtx, pool, func(db pgx.Tx) error {
		if err := insert("refused")(db); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || inTx("refused") || !inTx("claim") {
		t.Fatalf("a failed Run in the owner's savepoint: Run = %v, its write kept %v, the claim kept %v; want its error, its write undone, the claim kept",
			err, inTx("refused"), inTx("claim"))
	}

	// Back at the savepoint, as the idempotency layer is after a refusal.
	if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT effect`); err != nil {
		t.Fatal(err)
	}
	tx.AtSavepoint("effect")
	if err := pgtx.Run(txCtx, pool, insert("first")); err != nil {
		t.Fatal(err)
	}
	err = pgtx.Run(txCtx, pool, func(db pgx.Tx) error {
		if err := insert("second")(db); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || inTx("second") || !inTx("first") {
		t.Fatalf("a failed second Run: its write kept %v, the first Run's kept %v; want undone and kept", inTx("second"), inTx("first"))
	}
	if err := tx.CommitWith(ctx, &pgx.Batch{}); err != nil {
		t.Fatal(err)
	}
	if !exists("claim") || !exists("first") || exists("refused") || exists("second") {
		t.Error("after the commit, the wrong rows are there")
	}
}
