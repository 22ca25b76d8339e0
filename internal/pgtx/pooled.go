package pgtx

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PooledTx is a transaction on a connection held from a pool, begun in the
// round trip of its owner's first statements (BeginWith) and committed in
// the round trip of its last ones (CommitWith), where pgx's own
// transactions spend a round trip on COMMIT alone. It gives the connection
// back to the pool when it ends, and from then on refuses to be used
// (pgx.ErrTxClosed), as a pgx transaction does.
//
// It is what the gateway's idempotency layer puts in a mutating call's
// context: one round trip fewer on every such call.
type PooledTx struct {
	tx    pgx.Tx        // pgx's, on conn
	conn  *pgxpool.Conn // nil once the transaction ended
	ended []func()      // AfterEnd's, run once it ended
	// atSavepoint is the savepoint the owner made last, as long as nothing
	// has been sent through the PooledTx since (AtSavepoint); else "".
	atSavepoint string
}

// AtSavepoint tells t that its owner has just made the savepoint name (in
// BeginWith's batch, say), or rolled back to it, and sent nothing after
// that. The first Run to join t then writes in that savepoint rather than
// making its own (see joinSavepoint). Anything sent through t first ends
// that.
func (t *PooledTx) AtSavepoint(name string) { t.atSavepoint = name }

// AfterEnd runs fn once the transaction ctx carries has ended, committed or
// not, if it is a PooledTx, and else at once. A cache that a write
// invalidates uses it: emptied when the write is made, it may be filled
// again with the row as still committed before the write commits, and
// emptying it once more when the transaction ends, before the call answers,
// means no caller who saw the answer can be served the old row.
func AfterEnd(ctx context.Context, fn func()) {
	if t, ok := ctx.Value(txKey{}).(*PooledTx); ok && t.conn != nil {
		t.ended = append(t.ended, fn)
		return
	}
	fn()
}

var _ pgx.Tx = (*PooledTx)(nil)

// BeginWith sends b, which must begin a transaction (b.BeginTx must have
// been called), on a connection of pool, and returns the transaction and
// b's results. The results must be read and closed before the transaction
// is used. If they report an error, the caller rolls the transaction back
// as usual: that ends what b began, or, when b failed before its BEGIN
// ran, only gives the connection back.
func BeginWith(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch) (*PooledTx, pgx.BatchResults) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return &PooledTx{}, pgx.FailedBatchResults(b, err)
	}
	br := conn.SendBatch(ctx, b)
	tx := br.Tx()
	if tx == nil {
		conn.Release()
		panic("pgtx: BeginWith's batch does not begin a transaction")
	}
	return &PooledTx{tx: tx, conn: conn}, br
}

// CommitWith sends b and then COMMIT in one round trip. If a statement of
// b fails, the rest of b and the COMMIT do not run, and the transaction is
// rolled back; either way the transaction has ended when CommitWith
// returns, and its error (b's, or the COMMIT's: a deferred constraint
// refused, or the connection was lost) says why it did not commit. After
// a lost connection, whether it committed is unknown, as with any COMMIT.
func (t *PooledTx) CommitWith(ctx context.Context, b *pgx.Batch) error {
	if t.conn == nil {
		return pgx.ErrTxClosed
	}
	b.Queue("COMMIT")
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		t.end(ctx)
		return err
	}
	t.end(ctx)
	return nil
}

// end rolls back what is still open of the transaction (nothing after a
// COMMIT, whether it succeeded or not) and gives the connection back.
func (t *PooledTx) end(ctx context.Context) error {
	var err error
	if t.conn.Conn().PgConn().TxStatus() != 'I' {
		// pgx closes the connection if the rollback fails, and the pool
		// then drops it rather than reuse it.
		err = t.tx.Rollback(context.WithoutCancel(ctx))
	}
	t.conn.Release()
	t.conn = nil
	for _, fn := range t.ended {
		fn()
	}
	t.ended = nil
	return err
}

// Commit commits the transaction, in a round trip of its own.
func (t *PooledTx) Commit(ctx context.Context) error {
	return t.CommitWith(ctx, &pgx.Batch{})
}

// Rollback rolls the transaction back; it returns pgx.ErrTxClosed once the
// transaction has ended, so that it can be deferred.
func (t *PooledTx) Rollback(ctx context.Context) error {
	if t.conn == nil {
		return pgx.ErrTxClosed
	}
	return t.end(ctx)
}

func (t *PooledTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if t.conn == nil {
		return nil, pgx.ErrTxClosed
	}
	t.atSavepoint = ""
	return t.tx.Begin(ctx)
}

func (t *PooledTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	if t.conn == nil {
		return 0, pgx.ErrTxClosed
	}
	t.atSavepoint = ""
	return t.tx.CopyFrom(ctx, table, columns, rows)
}

func (t *PooledTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.conn == nil {
		return pgx.FailedBatchResults(b, pgx.ErrTxClosed)
	}
	t.atSavepoint = ""
	return t.tx.SendBatch(ctx, b)
}

// LargeObjects is not supported: nothing in Plinth stores them, and pgx's
// LargeObjects cannot be made to refuse use after the transaction ended.
func (t *PooledTx) LargeObjects() pgx.LargeObjects {
	panic("pgtx: LargeObjects is not supported on a PooledTx")
}

func (t *PooledTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if t.conn == nil {
		return nil, pgx.ErrTxClosed
	}
	return t.tx.Prepare(ctx, name, sql)
}

func (t *PooledTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.conn == nil {
		return pgconn.CommandTag{}, pgx.ErrTxClosed
	}
	t.atSavepoint = ""
	return t.tx.Exec(ctx, sql, args...)
}

func (t *PooledTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.conn == nil {
		return nil, pgx.ErrTxClosed
	}
	t.atSavepoint = ""
	return t.tx.Query(ctx, sql, args...)
}

func (t *PooledTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.conn == nil {
		return errRow{err: pgx.ErrTxClosed}
	}
	t.atSavepoint = ""
	return t.tx.QueryRow(ctx, sql, args...)
}

// Conn returns the underlying connection, or nil once the transaction has
// ended and the connection is back in the pool.
func (t *PooledTx) Conn() *pgx.Conn {
	if t.conn == nil {
		return nil
	}
	return t.tx.Conn()
}
