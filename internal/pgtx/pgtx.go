// Package pgtx lets a request's PostgreSQL writes share one transaction.
//
// The gateway's idempotency layer opens a transaction for a mutating call
// and puts it in the call's context; a postgres backend that writes with Run
// then joins it (as a savepoint) instead of committing on its own, so the
// effect of the call and the record of its idempotency key commit together
// or not at all. Without a transaction in the context, Run begins and
// commits its own, so backends work the same outside the gateway (tests,
// tools).
//
//	ctx ──> idempotency: BEGIN, SAVEPOINT ─┬─> backend: Run ─> writes in that savepoint (the first
//	                                       │   Run), or in one of its own made with its first write
//	                                       └─> record the key and the audit record, COMMIT
package pgtx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/domainerr"
)

type txKey struct{}

// WithTx returns a context that carries tx: Run and Querier use it instead
// of the pool. The caller owns tx (commits or rolls it back).
func WithTx(ctx context.Context, tx pgx.Tx) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// FromContext returns the transaction ctx carries, if any.
func FromContext(ctx context.Context) (pgx.Tx, bool) {
	tx, ok := ctx.Value(txKey{}).(pgx.Tx)
	return tx, ok
}

type batchKey struct{}

// WithBatch returns a context in which Write queues its statement on b
// instead of sending it: the owner of the transaction sends b, with its
// own statements, in one round trip, and an error of any of them fails
// the batch (the owner then rolls back). The idempotency layer uses it to
// write the audit record of a call with the call's answer.
func WithBatch(ctx context.Context, b *pgx.Batch) context.Context {
	return context.WithValue(ctx, batchKey{}, b)
}

// Write executes a statement that returns no rows: queued on the batch ctx
// carries (WithBatch), if any, else in the transaction ctx carries, else
// on pool. queued reports which; a queued statement's outcome is the
// batch's.
func Write(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) (queued bool, err error) {
	if b, ok := ctx.Value(batchKey{}).(*pgx.Batch); ok {
		b.Queue(sql, args...)
		return true, nil
	}
	_, err = QuerierFor(ctx, pool).Exec(ctx, sql, args...)
	return false, err
}

// Querier is what both a pool and a transaction can do.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// QuerierFor returns the transaction ctx carries, so that reads see the
// request's own writes, or else pool.
func QuerierFor(ctx context.Context, pool *pgxpool.Pool) Querier {
	if tx, ok := FromContext(ctx); ok {
		return tx
	}
	return pool
}

// Run calls fn in a transaction and commits it if fn returns nil, or rolls
// it back and returns fn's error. If ctx carries a transaction, Run works
// in a savepoint of it: fn's writes are undone on error, and on success
// they commit when the owner of the outer transaction commits.
//
// A joined savepoint is made in the same round trip as fn's first write,
// not in one of its own (savepoint.go); the first Run inside a PooledTx
// whose owner has just made a savepoint uses that one (joinSavepoint). On
// success it is left as it is rather than released: the owner's COMMIT (or
// its release of an enclosing savepoint) ends it just the same, and the
// round trip a RELEASE would take is a tenth of a transfer's time. A
// request makes a handful of such savepoints, far below the 64 at which
// PostgreSQL's subtransaction cache overflows.
func Run(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) (err error) {
	var tx pgx.Tx
	outer, joined := FromContext(ctx)
	if joined {
		tx = joinSavepoint(outer) // made with fn's first write, or the owner's (savepoint.go)
	} else if tx, err = pool.Begin(ctx); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		// Roll back on an error, and on a panic in fn (then panic on), so
		// that neither leaves the transaction, and its pooled connection,
		// open. The rollback's own error adds nothing: the transaction is
		// gone either way, and err says why.
		if p := recover(); p != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if joined {
		return nil
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// SQLSTATEs of a transaction that lost a race and may be retried whole.
const (
	serializationFailure = "40001"
	deadlockDetected     = "40P01"
)

// IsRetryable reports whether err is a serialization failure or a deadlock:
// the transaction lost a race and may be run again from the start.
func IsRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == serializationFailure || pgErr.Code == deadlockDetected)
}

// Classify wraps an error of op (an operation named for the log, never with
// a sensitive value in it) for a backend to return:
//
//   - a lost or refused connection becomes a *domainerr.UnavailableError:
//     the caller may retry later;
//   - a serialization failure or deadlock becomes a *domainerr.AbortedError:
//     the caller may retry now;
//   - when the caller's own context has ended, the error wraps that
//     context's error too, whatever the database said (a statement canceled
//     on the server, a closed connection), so the gateway answers Canceled
//     or DeadlineExceeded rather than Internal;
//   - anything else stays what it is (wrapped with op), which the gateway
//     answers as Internal.
//
// Domain errors pass through untouched.
func Classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := domainerr.KindOf(err); ok {
		return err
	}
	wrapped := fmt.Errorf("%s: %w", op, err)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w: %w", op, ctx.Err(), err)
	case IsRetryable(err):
		return &domainerr.AbortedError{Err: wrapped}
	case ConnectionLost(err):
		return &domainerr.UnavailableError{Dependency: "database", Err: wrapped}
	}
	return wrapped
}

// ConnectionLost reports whether err says that the database went away or
// refused the connection, rather than refused the statement.
func ConnectionLost(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "53300", // too_many_connections
			"57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03": // cannot_connect_now
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection_exception
	}
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed)
}

// Violated reports whether err is the violation of the constraint named
// constraint (unique, check, foreign key...). It reads the SQLSTATE class
// and the constraint's name, never the message, which depends on the
// server's language.
func Violated(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "23") && pgErr.ConstraintName == constraint
}
