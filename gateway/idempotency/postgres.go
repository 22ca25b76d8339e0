package idempotency

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/internal/pgtx"
	"plinth.dev/plinth/internal/seal"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the versioned migrations of the "idempotency" schema,
// applied by `plinth migrate` when the gateway keeps its records in
// PostgreSQL.
var Migrations = registry.MigrationsIn(migrationFiles, "migrations")

// Schema is the PostgreSQL schema of the records.
const Schema = "idempotency"

// postgresStore keeps records in PostgreSQL, in the transaction of the
// call's effect:
//
//	BEGIN
//	  pg_try_advisory_xact_lock(caller, key) ┐  one round trip; the lock is
//	  SELECT the record                      │  held until COMMIT: a duplicate
//	  SAVEPOINT                              ┘  gets ErrInProgress; a record
//	                                            found is replayed
//	    ... the capability runs; backends join the transaction (pgtx) ...
//	  ROLLBACK TO, to undo a refused effect  ┐  one round trip
//	  INSERT the record                      │
//	  what Finish's also writes (the audit)  │
//	COMMIT                                   ┘  effect and records together
type postgresStore struct {
	pool   *pgxpool.Pool
	sealer *seal.Sealer
}

// NewPostgresStore returns a Store over the records in pool's database
// (schema "idempotency", made by Migrations). A response that can hold
// sensitive data is sealed with sealer before it is stored, bound to its
// caller and key.
func NewPostgresStore(pool *pgxpool.Pool, sealer *seal.Sealer) Store {
	return &postgresStore{pool: pool, sealer: sealer}
}

// responsePlace is where a record's sealed response is: it opens there only.
func responsePlace(caller, key string) seal.Place {
	return seal.Place{Table: "idempotency.records", Column: "response", Row: caller + "\x00" + key}
}

// lockID is the advisory lock of a scoped key. A collision of two keys'
// hashes only makes one wait for the other (ErrInProgress); it cannot mix
// their records, which are keyed by the key itself.
func lockID(caller, key string) int64 {
	h := fnv.New64a()
	h.Write([]byte("idempotency\x00" + caller + "\x00" + key))
	return int64(h.Sum64())
}

func (s *postgresStore) Begin(ctx context.Context, c Claim) (_ *Record, _ Attempt, err error) {
	// One round trip: BEGIN, the lock, the record, the savepoint. The
	// record read without the lock is not used.
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`SELECT pg_try_advisory_xact_lock($1)`, lockID(c.Caller, c.Key))
	b.Queue(`
SELECT procedure, request_hash, code, response, coalesce(response_class, ''), message, details, created_at
  FROM idempotency.records WHERE caller = $1 AND key = $2`, c.Caller, c.Key)
	b.Queue(`SAVEPOINT ` + effectSavepoint)
	tx, br := pgtx.BeginWith(ctx, s.pool, b) // holds the connection until it commits or rolls back
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	var (
		locked, found bool
		r             Record
		hash          []byte
	)
	if _, err = br.Exec(); err != nil { // BEGIN
		_ = br.Close()
		return nil, nil, pgtx.Classify(ctx, "idempotency: begin", err)
	}
	err = br.QueryRow().Scan(&locked)
	if err == nil {
		err = br.QueryRow().Scan(&r.Procedure, &hash, &r.Code, &r.Response, &r.Class, &r.Message, &r.Details, &r.CreatedAt)
		found = err == nil
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
	}
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, pgtx.Classify(ctx, "idempotency: claim key", err)
	}
	switch {
	case !locked:
		err = ErrInProgress // rolls back, as any error does
		return nil, nil, err
	case found:
		copy(r.RequestHash[:], hash)
		if r.Class != "" {
			if r.Response, err = s.sealer.Open(ctx, r.Class, responsePlace(c.Caller, c.Key), r.Response); err != nil {
				return nil, nil, fmt.Errorf("idempotency: open the recorded response: %w", err)
			}
		}
		if rerr := tx.Rollback(ctx); rerr != nil {
			return nil, nil, pgtx.Classify(ctx, "idempotency: end read", rerr)
		}
		return &r, nil, nil
	}
	// The effect's savepoint is the last thing sent: the backend that
	// writes first writes in it, with no savepoint of its own.
	tx.AtSavepoint(effectSavepoint)
	return nil, &postgresAttempt{tx: tx, claim: c, ctx: pgtx.WithTx(ctx, tx), sealer: s.sealer}, nil
}

// effectSavepoint separates a call's effect from the claim of its key, so
// that a refused call's writes can be undone while its refusal is recorded.
const effectSavepoint = "idempotency_effect"

func (s *postgresStore) DeleteExpired(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency.records WHERE created_at < $1`, cutoff)
	if err != nil {
		return 0, pgtx.Classify(ctx, "idempotency: delete expired", err)
	}
	return tag.RowsAffected(), nil
}

type postgresAttempt struct {
	tx     *pgtx.PooledTx
	claim  Claim
	ctx    context.Context
	sealer *seal.Sealer
	done   bool
}

func (a *postgresAttempt) Context() context.Context { return a.ctx }

func (a *postgresAttempt) Finish(ctx context.Context, r Record, keepEffect bool, also func(context.Context) error) (err error) {
	a.done = true
	defer func() {
		if err != nil {
			_ = a.tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	var (
		response any
		class    any // NULL unless sealed
	)
	if r.Code == 0 {
		response = r.Response
		if r.Response == nil {
			response = []byte{} // an empty message is a success too
		}
		if r.Class != "" {
			if a.sealer == nil {
				return errors.New("idempotency: a response with sensitive data needs a sealer to be stored")
			}
			sealed, err := a.sealer.Seal(ctx, r.Class, responsePlace(a.claim.Caller, a.claim.Key), r.Response)
			if err != nil {
				return fmt.Errorf("idempotency: seal the response: %w", err)
			}
			response, class = sealed, string(r.Class)
		}
	}
	details := r.Details
	if details == nil {
		details = [][]byte{}
	}
	// One round trip: undo a refused call's effect (ROLLBACK TO its
	// savepoint), then record the answer and whatever also writes
	// (pgtx.WithBatch: the audit record), after the undo, so that they are
	// kept for a refusal too; then COMMIT makes all of it durable together,
	// or none of it if any statement failed.
	//
	// A kept effect's savepoint is left as it is rather than released: the
	// records written inside it commit with it, and RELEASE would be one
	// more statement on every call to change nothing that COMMIT does not.
	b := &pgx.Batch{}
	if !keepEffect {
		b.Queue(`ROLLBACK TO SAVEPOINT ` + effectSavepoint)
	}
	b.Queue(`
INSERT INTO idempotency.records (caller, key, procedure, request_hash, code, response, response_class, message, details, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		a.claim.Caller, a.claim.Key, r.Procedure, r.RequestHash[:], r.Code, response, class, r.Message, details, r.CreatedAt)
	if also != nil {
		if err := also(pgtx.WithBatch(a.ctx, b)); err != nil {
			return err
		}
	}
	if err := a.tx.CommitWith(ctx, b); err != nil {
		// If the connection was lost, the commit's outcome is unknown: the
		// effect and the record are either both there or both gone, so a
		// retry is safe either way.
		return pgtx.Classify(ctx, "idempotency: record the answer and commit", err)
	}
	return nil
}

func (a *postgresAttempt) Abandon() {
	if a.done {
		return
	}
	a.done = true
	_ = a.tx.Rollback(context.WithoutCancel(a.ctx))
}
