package pgtx

import (
	"context"
	"strconv"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// savepoint is the transaction Run gives fn when it joins the transaction
// in the context: a savepoint of it that is made only when fn first writes
// through it, and then in the same round trip as that write (a batch, or an
// Exec), rather than in one of its own, as pgx's nested transactions do. A
// transfer's Apply starts with a batch, so its savepoint costs nothing
// more. A savepoint fn never used is not made, and undoing it is a no-op.
type savepoint struct {
	outer pgx.Tx
	name  string
	made  bool
}

// savepoints numbers the savepoints made by every Run, so that each has a
// name of its own: one left in place (Run's success) must not be the one a
// later ROLLBACK TO of the same name finds.
var savepoints atomic.Uint64

func newSavepoint(outer pgx.Tx) *savepoint {
	return &savepoint{outer: outer, name: "pgtx_" + strconv.FormatUint(savepoints.Add(1), 10)}
}

// joinSavepoint returns the savepoint Run gives fn inside outer: a new one,
// unless outer is a PooledTx at a savepoint its owner made and nothing has
// been sent since (PooledTx.AtSavepoint). Then fn's writes go in that one:
// undoing them is rolling back to it, which undoes nothing else, and
// neither the SAVEPOINT statement nor the subtransaction a new savepoint
// would make (one of each per mutating call) is needed.
func joinSavepoint(outer pgx.Tx) *savepoint {
	if p, ok := outer.(*PooledTx); ok && p.conn != nil && p.atSavepoint != "" {
		name := p.atSavepoint
		p.atSavepoint = "" // what fn sends is written in it from now on
		return &savepoint{outer: outer, name: name, made: true}
	}
	return newSavepoint(outer)
}

var _ pgx.Tx = (*savepoint)(nil)

// make makes the savepoint now if it is not made yet.
func (s *savepoint) make(ctx context.Context) error {
	if s.made {
		return nil
	}
	if _, err := s.outer.Exec(ctx, "SAVEPOINT "+s.name); err != nil {
		return err
	}
	s.made = true
	return nil
}

// SendBatch sends b, with the SAVEPOINT first if it is not made yet, whose
// result the returned BatchResults reads and keeps to itself.
func (s *savepoint) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if s.made {
		return s.outer.SendBatch(ctx, b)
	}
	withSavepoint := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 1+len(b.QueuedQueries))}
	withSavepoint.Queue("SAVEPOINT " + s.name)
	withSavepoint.QueuedQueries = append(withSavepoint.QueuedQueries, b.QueuedQueries...)
	// Made, or the transaction is aborted and nothing more runs in it.
	s.made = true
	return &afterSavepoint{BatchResults: s.outer.SendBatch(ctx, withSavepoint)}
}

func (s *savepoint) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if s.made {
		return s.outer.Exec(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br := s.SendBatch(ctx, b)
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (s *savepoint) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := s.make(ctx); err != nil {
		return nil, err
	}
	return s.outer.Query(ctx, sql, args...)
}

func (s *savepoint) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := s.make(ctx); err != nil {
		return errRow{err}
	}
	return s.outer.QueryRow(ctx, sql, args...)
}

func (s *savepoint) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := s.make(ctx); err != nil {
		return 0, err
	}
	return s.outer.CopyFrom(ctx, table, columns, src)
}

func (s *savepoint) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return s.outer.Prepare(ctx, name, sql) // a prepared statement is not undone by a rollback
}

// LargeObjects are not used by any backend; what they write is not undone
// by this savepoint unless something else made it first.
func (s *savepoint) LargeObjects() pgx.LargeObjects { return s.outer.LargeObjects() }

func (s *savepoint) Conn() *pgx.Conn { return s.outer.Conn() }

// Begin returns a savepoint inside this one, made with it when first used.
func (s *savepoint) Begin(context.Context) (pgx.Tx, error) { return newSavepoint(s), nil }

// Commit leaves the savepoint in place: the owner's COMMIT ends it (Run).
func (s *savepoint) Commit(context.Context) error { return nil }

// Rollback undoes what was written since the savepoint, if it was made.
func (s *savepoint) Rollback(ctx context.Context) error {
	if !s.made {
		return nil
	}
	_, err := s.outer.Exec(ctx, "ROLLBACK TO SAVEPOINT "+s.name)
	return err
}

// afterSavepoint reads a batch whose first statement is a SAVEPOINT that
// its caller did not queue: it reads that result first, and fails the
// caller's first read with its error, if any.
type afterSavepoint struct {
	pgx.BatchResults
	read bool
	err  error
}

func (r *afterSavepoint) skip() error {
	if !r.read {
		r.read = true
		_, r.err = r.BatchResults.Exec()
	}
	return r.err
}

func (r *afterSavepoint) Exec() (pgconn.CommandTag, error) {
	if err := r.skip(); err != nil {
		return pgconn.CommandTag{}, err
	}
	return r.BatchResults.Exec()
}

func (r *afterSavepoint) Query() (pgx.Rows, error) {
	if err := r.skip(); err != nil {
		return nil, err
	}
	return r.BatchResults.Query()
}

func (r *afterSavepoint) QueryRow() pgx.Row {
	if err := r.skip(); err != nil {
		return errRow{err}
	}
	return r.BatchResults.QueryRow()
}

func (r *afterSavepoint) Close() error {
	err := r.skip()
	if cerr := r.BatchResults.Close(); err == nil {
		err = cerr
	}
	return err
}

// errRow is a Row whose Scan fails with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
