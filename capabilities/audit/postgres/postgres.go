// Package postgres is the PostgreSQL audit backend, over pgx. It keeps the
// same chain and returns the same errors as the memory backend (both pass
// audittest.Run), and keeps the record across restarts and across the
// gateways that share one database.
//
// The schema (migrations/, applied by `plinth migrate` through
// internal/migrate, never by the backend itself) lives in the PostgreSQL
// schema "audit":
//
//	audit.pending   records added and not yet chained: Add inserts here
//	audit.head      one row; every Chain locks it (SELECT ... FOR UPDATE),
//	                so the chainers of every gateway take turns
//	audit.records   the chain, sequence unique; a trigger refuses UPDATE,
//	                DELETE and TRUNCATE
//
// Add joins the transaction the request's context carries (pgtx), so the
// gateway can commit a call's record with its effect; a Chain runs in a
// transaction of its own, never in a request's: the head lock must be held
// for the chaining alone, not for the rest of somebody's request. Reads go
// through pgtx.QuerierFor.
package postgres

import (
	"time"

	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/audit"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/internal/pgtx"
)

// Store keeps the chain in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

var (
	_ audit.Store     = (*Store)(nil)
	_ registry.Pinger = (*Store)(nil)
)

// New returns a Store over pool, whose database must have the audit
// migrations applied. New does not touch the database, and the Store never
// closes pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

// recordColumns are the columns of record r, in the order scanRecord reads
// them.
const recordColumns = `r.id, r.sequence, r.time, r.principal_id, r.capability, r.code,
       r.resource_ids, r.revealed, r.request_id, r.prev_hash, r.hash`

// addTimeout bounds an Add whose context has no deadline of its own.
const addTimeout = 5 * time.Second

// Add inserts r into audit.pending: with the batch or in the transaction
// ctx carries (pgtx.Write), if any, else on its own.
func (s *Store) Add(ctx context.Context, r audit.Record) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, addTimeout)
		defer cancel()
	}
	if _, err := pgtx.Write(ctx, s.pool, `
INSERT INTO audit.pending (id, time, principal_id, capability, code, resource_ids, revealed, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.ID, r.Time, r.PrincipalID, r.Capability, r.Code, nonNil(r.ResourceIDs), nonNil(r.Revealed), r.RequestID); err != nil {
		return s.fail(ctx, "add an audit record", err)
	}
	return nil
}

// Chain moves the oldest waiting records into audit.records, under the lock
// of the head row, in a transaction of its own.
func (s *Store) Chain(ctx context.Context, limit int, link func(last *audit.Record, pending []audit.Record) ([]audit.Record, error)) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var chained int
	// Deliberately not pgtx.Run: see the package comment.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT FROM audit.head FOR UPDATE`)
		// The last record as stored, rather than the one the head names,
		// as the memory backend does: if someone deleted it, the chain
		// goes on from what is there.
		b.Queue(`SELECT ` + recordColumns + ` FROM audit.records r ORDER BY r.sequence DESC LIMIT 1`)
		b.Queue(`
SELECT p.id, p.time, p.principal_id, p.capability, p.code, p.resource_ids, p.revealed, p.request_id
  FROM audit.pending p ORDER BY p.time, p.id LIMIT $1`, limit)
		br := tx.SendBatch(ctx, b)
		var (
			last    *audit.Record
			pending []audit.Record
		)
		_, err := br.Exec()
		if err == nil {
			var l audit.Record
			switch l, err = scanRecord(br.QueryRow()); {
			case errors.Is(err, pgx.ErrNoRows):
				err = nil
			case err == nil:
				last = &l
			}
		}
		if err == nil {
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil {
				pending, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.Record, error) {
					var r audit.Record
					err := row.Scan(&r.ID, &r.Time, &r.PrincipalID, &r.Capability, &r.Code, &r.ResourceIDs, &r.Revealed, &r.RequestID)
					return normalize(r), err
				})
			}
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil || len(pending) == 0 {
			return err
		}
		linked, err := link(last, pending)
		if err != nil {
			return err
		}
		if err := audit.CheckLinked(last, pending, linked); err != nil {
			return err
		}
		b = &pgx.Batch{}
		ids := make([]string, len(linked))
		for i, r := range linked {
			ids[i] = r.ID
			b.Queue(`
INSERT INTO audit.records (id, sequence, time, principal_id, capability, code, resource_ids, revealed, request_id, prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
				r.ID, r.Sequence, r.Time, r.PrincipalID, r.Capability, r.Code,
				nonNil(r.ResourceIDs), nonNil(r.Revealed), r.RequestID, r.PrevHash, r.Hash)
		}
		b.Queue(`DELETE FROM audit.pending WHERE id = ANY($1)`, ids)
		b.Queue(`UPDATE audit.head SET last_sequence = $1`, linked[len(linked)-1].Sequence)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		chained = len(linked)
		return nil
	})
	if err != nil {
		var oos *audit.OutOfSequenceError
		if errors.As(err, &oos) {
			return 0, err
		}
		return 0, s.fail(ctx, "chain the audit records", err)
	}
	return chained, nil
}

// Get returns the record with the id.
func (s *Store) Get(ctx context.Context, id string) (audit.Record, error) {
	r, err := scanRecord(pgtx.QuerierFor(ctx, s.pool).QueryRow(ctx, `SELECT `+recordColumns+` FROM audit.records r WHERE r.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return audit.Record{}, audit.RecordNotFound(id)
	}
	if err != nil {
		return audit.Record{}, s.fail(ctx, "get audit record "+id, err)
	}
	return r, nil
}

// List returns a page of matching records in sequence order.
func (s *Store) List(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	rows, err := pgtx.QuerierFor(ctx, s.pool).Query(ctx, `
SELECT `+recordColumns+` FROM audit.records r
WHERE r.sequence > $1
  AND ($2::text IS NULL OR r.principal_id = $2)
  AND ($3::text IS NULL OR r.capability = $3)
ORDER BY r.sequence LIMIT $4`, q.AfterSequence, q.PrincipalID, q.Capability, q.Limit)
	if err != nil {
		return nil, s.fail(ctx, "list audit records", err)
	}
	page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.Record, error) { return scanRecord(row) })
	if err != nil {
		return nil, s.fail(ctx, "list audit records", err)
	}
	return page, nil
}

// Scan calls fn with every record in sequence order, streaming them from
// one query.
func (s *Store) Scan(ctx context.Context, fn func(audit.Record) error) error {
	rows, err := pgtx.QuerierFor(ctx, s.pool).Query(ctx, `SELECT `+recordColumns+` FROM audit.records r ORDER BY r.sequence`)
	if err != nil {
		return s.fail(ctx, "scan the audit records", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return s.fail(ctx, "scan the audit records", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail(ctx, "scan the audit records", err)
	}
	return nil
}

// Ping reports whether the database can be reached, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.fail(ctx, "ping", err)
	}
	return nil
}

// scanRecord reads one row of recordColumns.
func scanRecord(row pgx.Row) (audit.Record, error) {
	var r audit.Record
	if err := row.Scan(&r.ID, &r.Sequence, &r.Time, &r.PrincipalID, &r.Capability, &r.Code,
		&r.ResourceIDs, &r.Revealed, &r.RequestID, &r.PrevHash, &r.Hash); err != nil {
		return audit.Record{}, err
	}
	return normalize(r), nil
}

// normalize returns r as every backend returns it: its time in UTC, its
// empty lists nil.
func normalize(r audit.Record) audit.Record {
	r.Time = r.Time.UTC()
	if len(r.ResourceIDs) == 0 {
		r.ResourceIDs = nil
	}
	if len(r.Revealed) == 0 {
		r.Revealed = nil
	}
	return r
}

// nonNil returns s, or an empty list for nil, for a NOT NULL text[].
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// fail wraps an error of op: a lost connection becomes Unavailable, a lost
// race Aborted (see pgtx.Classify). Domain errors pass through.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	return pgtx.Classify(ctx, "audit/postgres: "+op, err)
}

// LastSequence returns the last sequence appended, as audit.head keeps it.
func (s *Store) LastSequence(ctx context.Context) (int64, error) {
	var last int64
	if err := pgtx.QuerierFor(ctx, s.pool).QueryRow(ctx, `SELECT last_sequence FROM audit.head`).Scan(&last); err != nil {
		return 0, pgtx.Classify(ctx, "audit/postgres: read the head", err)
	}
	return last, nil
}
