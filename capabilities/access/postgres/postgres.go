// Package postgres is the PostgreSQL access backend, over pgx. It keeps the
// same invariants and returns the same errors as the memory backend (both
// pass accesstest.Run), and keeps principals and keys across restarts and
// across the gateways that share one database.
//
// The schema (migrations/, applied by `plinth migrate` through
// internal/migrate, never by the backend itself) lives in the PostgreSQL
// schema "access":
//
//	access.principals        one row per principal, its name unique
//	   ├── access.principal_roles   one row per role granted
//	   └── access.api_keys          prefix (unique) and SHA-256 of each key,
//	                                never the secret
//
// Every write goes through pgtx.Run, so that inside the gateway it joins the
// transaction of the request's idempotency record (as a savepoint); reads go
// through pgtx.QuerierFor, so a request sees its own writes. A key is
// changed only under its row lock (SELECT ... FOR UPDATE), so concurrent
// rotations and revocations of one key queue up rather than lose each
// other's changes.
//
// LookupKey, which authenticates every call, answers from memory what it
// read less than keyCacheTTL ago, as long as nothing can have changed it
// since. Triggers (migration 00002) NOTIFY every change of a key, a
// principal or its roles, whoever makes it, hand-run SQL included; each
// Store LISTENs on a connection of its own and empties its cache on every
// notification, so a revocation stops a key on every gateway as soon as it
// commits (and at once on the gateway that made it: the Store's writes
// empty its cache themselves). The cache is used only while that
// connection listens, since a change made while nobody listened would go
// unseen: until the first LISTEN, and from the loss of the connection
// until it listens again, every lookup reads the database. The TTL bounds
// what a notification lost some other way could leave stale. Only keys
// that exist are cached, under a size bound, and never inside a request's
// transaction, whose reads may see writes not yet committed, or an older
// snapshot. keycache.go and listener.go have the details; Close stops the
// listener.
package postgres

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/internal/pgtx"
)

// Store keeps principals and keys in PostgreSQL. It is safe for concurrent
// use. Close stops the listener of its cache.
type Store struct {
	pool  *pgxpool.Pool
	log   *slog.Logger
	cache *keyCache

	// The listener (listener.go): started by the first LookupKey, stopped
	// by Close.
	listenStart   sync.Once
	listenCtx     context.Context
	stopListening context.CancelFunc
	listenMu      sync.Mutex // guards closed and listenDone
	closed        bool
	listenDone    chan struct{} // closed when the listener has returned
	listenerPID   atomic.Uint32 // of the listening connection's backend; 0 when none
	// sleep waits between attempts to listen; tests hold it up.
	sleep func(ctx context.Context, d time.Duration) bool
	// notified handles a notification: it empties the cache; tests hold
	// it up, to tell its work from what the Store's own writes do.
	notified func()
}

var (
	_ access.Store    = (*Store)(nil)
	_ registry.Pinger = (*Store)(nil)
	_ io.Closer       = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store)

// WithLogger makes the Store log when its cache goes off for want of
// notifications, and when it is back. Without it the Store logs nothing.
func WithLogger(log *slog.Logger) Option {
	return func(s *Store) {
		if log != nil {
			s.log = log
		}
	}
}

// New returns a Store over pool, whose database must have the access
// migrations applied. New does not touch the database, and the Store never
// closes pool: whoever made the pool (the gateway, shared by every domain)
// closes it, after closing the Store.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		pool:          pool,
		log:           slog.New(slog.DiscardHandler),
		cache:         newKeyCache(),
		listenCtx:     ctx,
		stopListening: cancel,
		sleep:         sleepCtx,
	}
	s.notified = s.cache.invalidate
	for _, o := range opts {
		o(s)
	}
	return s
}

// Names of constraints whose violations mean something to callers.
const (
	constraintPrincipalsPkey    = "principals_pkey"
	constraintPrincipalName     = "principals_name_key"
	constraintRolesPrincipal    = "principal_roles_principal_fkey"
	constraintKeysPkey          = "api_keys_pkey"
	constraintKeyPrefix         = "api_keys_prefix_key"
	constraintKeysPrincipalFkey = "api_keys_principal_fkey"
)

// principalColumns are the columns of principal p, its roles sorted, in
// the order scanPrincipal reads them.
const principalColumns = `p.id, p.name, p.description, p.created_at,
       ARRAY(SELECT r.role FROM access.principal_roles r WHERE r.principal_id = p.id ORDER BY r.role)`

// keyColumns are the columns of key k, in the order scanKey reads them.
const keyColumns = `k.id, k.principal_id, k.prefix, k.secret_hash, k.description,
       k.created_at, k.expires_at, k.revoked_at, k.last_used_at`

// CreatePrincipal stores a new principal with its roles.
func (s *Store) CreatePrincipal(ctx context.Context, p access.Principal) error {
	defer s.changed(ctx)
	err := pgtx.Run(ctx, s.pool, func(tx pgx.Tx) error { return insertPrincipal(ctx, tx, p) })
	return s.principalWriteError(ctx, "create principal "+p.ID, p, err)
}

func insertPrincipal(ctx context.Context, tx pgx.Tx, p access.Principal) error {
	if _, err := tx.Exec(ctx, `
INSERT INTO access.principals (id, name, description, created_at) VALUES ($1, $2, $3, $4)`,
		p.ID, p.Name, p.Description, p.CreatedAt); err != nil {
		return err
	}
	if len(p.Roles) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `
INSERT INTO access.principal_roles (principal_id, role)
SELECT $1, role FROM unnest($2::text[]) AS role
ON CONFLICT DO NOTHING`, p.ID, p.Roles)
	return err
}

// principalWriteError turns the error of writing principal p into the
// domain's.
func (s *Store) principalWriteError(ctx context.Context, op string, p access.Principal, err error) error {
	switch {
	case err == nil:
		return nil
	case pgtx.Violated(err, constraintPrincipalsPkey):
		return &domainerr.AlreadyExistsError{Resource: "principal", ID: p.ID}
	case pgtx.Violated(err, constraintPrincipalName):
		return &access.NameTakenError{Name: p.Name}
	}
	return s.fail(ctx, op, err)
}

// GetPrincipal returns the principal with the id.
func (s *Store) GetPrincipal(ctx context.Context, id string) (access.Principal, error) {
	p, err := getPrincipal(ctx, pgtx.QuerierFor(ctx, s.pool), id)
	if err != nil {
		return access.Principal{}, s.fail(ctx, "get principal "+id, err)
	}
	return p, nil
}

// getPrincipal reads a principal, or returns PrincipalNotFound(id).
func getPrincipal(ctx context.Context, q pgtx.Querier, id string) (access.Principal, error) {
	p, err := scanPrincipal(q.QueryRow(ctx, `SELECT `+principalColumns+` FROM access.principals p WHERE p.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return access.Principal{}, access.PrincipalNotFound(id)
	}
	return p, err
}

// ListPrincipals returns a page of principals ordered by id.
func (s *Store) ListPrincipals(ctx context.Context, q access.PrincipalQuery) ([]access.Principal, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	rows, err := pgtx.QuerierFor(ctx, s.pool).Query(ctx, `
SELECT `+principalColumns+` FROM access.principals p WHERE p.id > $1 ORDER BY p.id LIMIT $2`, q.AfterID, q.Limit)
	if err != nil {
		return nil, s.fail(ctx, "list principals", err)
	}
	page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (access.Principal, error) { return scanPrincipal(row) })
	if err != nil {
		return nil, s.fail(ctx, "list principals", err)
	}
	return page, nil
}

// GrantRole adds a role to a principal's roles.
func (s *Store) GrantRole(ctx context.Context, principalID, role string) (access.Principal, error) {
	defer s.changed(ctx)
	var p access.Principal
	err := pgtx.Run(ctx, s.pool, func(tx pgx.Tx) (err error) {
		if _, err := tx.Exec(ctx, `
INSERT INTO access.principal_roles (principal_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
			principalID, role); err != nil {
			return err
		}
		p, err = getPrincipal(ctx, tx, principalID)
		return err
	})
	if pgtx.Violated(err, constraintRolesPrincipal) {
		return access.Principal{}, access.PrincipalNotFound(principalID)
	}
	if err != nil {
		return access.Principal{}, s.fail(ctx, "grant a role to principal "+principalID, err)
	}
	return p, nil
}

// RevokeRole removes a role from a principal's roles.
func (s *Store) RevokeRole(ctx context.Context, principalID, role string) (access.Principal, error) {
	defer s.changed(ctx)
	var p access.Principal
	err := pgtx.Run(ctx, s.pool, func(tx pgx.Tx) (err error) {
		if _, err := tx.Exec(ctx, `
DELETE FROM access.principal_roles WHERE principal_id = $1 AND role = $2`, principalID, role); err != nil {
			return err
		}
		p, err = getPrincipal(ctx, tx, principalID)
		return err
	})
	if err != nil {
		return access.Principal{}, s.fail(ctx, "revoke a role from principal "+principalID, err)
	}
	return p, nil
}

// CreateFirstPrincipal stores p and k if the store holds no principal. It
// locks the principals table against inserts (SHARE ROW EXCLUSIVE, which
// also conflicts with itself) for the rest of the transaction, so that of
// concurrent calls only the first finds the table empty, and nobody creates
// a principal between the check and the insert. It runs once in the life of
// a deployment, so the lock costs nothing that matters.
func (s *Store) CreateFirstPrincipal(ctx context.Context, p access.Principal, k access.APIKey) (bool, error) {
	defer s.changed(ctx)
	var created bool
	err := pgtx.Run(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE access.principals IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM access.principals)`).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		if err := insertPrincipal(ctx, tx, p); err != nil {
			return err
		}
		if err := insertKey(ctx, tx, k); err != nil {
			return err
		}
		created = true
		return nil
	})
	if pgtx.Violated(err, constraintKeyPrefix) {
		return false, &access.PrefixTakenError{Prefix: k.Prefix}
	}
	if err != nil {
		return false, s.principalWriteError(ctx, "create the first principal", p, err)
	}
	return created, nil
}

// CreateKey stores a new key of an existing principal.
func (s *Store) CreateKey(ctx context.Context, k access.APIKey) error {
	defer s.changed(ctx)
	err := pgtx.Run(ctx, s.pool, func(tx pgx.Tx) error { return insertKey(ctx, tx, k) })
	return s.keyWriteError(ctx, "create API key "+k.ID, k, err)
}

func insertKey(ctx context.Context, tx pgx.Tx, k access.APIKey) error {
	_, err := tx.Exec(ctx, `
INSERT INTO access.api_keys (id, principal_id, prefix, secret_hash, description, created_at, expires_at, revoked_at, last_used_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		k.ID, k.PrincipalID, k.Prefix, k.SecretHash, k.Description, k.CreatedAt,
		nullTime(k.ExpiresAt), nullTime(k.RevokedAt), nullTime(k.LastUsedAt))
	return err
}

// keyWriteError turns the error of writing new key k into the domain's.
func (s *Store) keyWriteError(ctx context.Context, op string, k access.APIKey, err error) error {
	switch {
	case err == nil:
		return nil
	case pgtx.Violated(err, constraintKeysPkey):
		return &domainerr.AlreadyExistsError{Resource: "API key", ID: k.ID}
	case pgtx.Violated(err, constraintKeyPrefix):
		return &access.PrefixTakenError{Prefix: k.Prefix}
	case pgtx.Violated(err, constraintKeysPrincipalFkey):
		return access.PrincipalNotFound(k.PrincipalID)
	}
	return s.fail(ctx, op, err)
}

// GetKey returns the key with the id.
func (s *Store) GetKey(ctx context.Context, id string) (access.APIKey, error) {
	k, err := scanKey(pgtx.QuerierFor(ctx, s.pool).QueryRow(ctx, `SELECT `+keyColumns+` FROM access.api_keys k WHERE k.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return access.APIKey{}, access.KeyNotFound(id)
	}
	if err != nil {
		return access.APIKey{}, s.fail(ctx, "get API key "+id, err)
	}
	return k, nil
}

// LookupKey returns the key with the prefix and its principal: it runs on
// every call the gateway authenticates, so it answers from the cache when
// it can (see the package doc), else in one round trip.
//
// Inside a request's transaction it neither reads nor fills the cache: the
// request must see its own writes, and what it reads may not be committed
// (and roll back), or be from a snapshot older than a change already
// notified, which the generation check could not tell.
func (s *Store) LookupKey(ctx context.Context, prefix string) (access.APIKey, access.Principal, error) {
	s.startListener()
	if _, inTx := pgtx.FromContext(ctx); inTx {
		return s.lookupKey(ctx, prefix)
	}
	k, p, hit, t := s.cache.get(prefix)
	if hit {
		return k, p, nil
	}
	k, p, err := s.lookupKey(ctx, prefix)
	if err != nil {
		return access.APIKey{}, access.Principal{}, err // not found included: never cached
	}
	s.cache.put(prefix, t, k, p)
	return k, p, nil
}

// lookupKey reads the key with the prefix and its principal from the
// database.
func (s *Store) lookupKey(ctx context.Context, prefix string) (access.APIKey, access.Principal, error) {
	row := pgtx.QuerierFor(ctx, s.pool).QueryRow(ctx, `
SELECT `+keyColumns+`, `+principalColumns+`
  FROM access.api_keys k JOIN access.principals p ON p.id = k.principal_id
 WHERE k.prefix = $1`, prefix)
	var (
		k access.APIKey
		p access.Principal
		t keyTimes
	)
	err := row.Scan(&k.ID, &k.PrincipalID, &k.Prefix, &k.SecretHash, &k.Description,
		&k.CreatedAt, &t.expiresAt, &t.revokedAt, &t.lastUsedAt,
		&p.ID, &p.Name, &p.Description, &p.CreatedAt, &p.Roles)
	if errors.Is(err, pgx.ErrNoRows) {
		return access.APIKey{}, access.Principal{}, access.PrefixNotFound()
	}
	if err != nil {
		// Not the prefix: it is part of a credential.
		return access.APIKey{}, access.Principal{}, s.fail(ctx, "look up an API key", err)
	}
	return t.into(k), normalizePrincipal(p), nil
}

// ListKeys returns a page of a principal's keys ordered by id.
func (s *Store) ListKeys(ctx context.Context, q access.KeyQuery) ([]access.APIKey, error) {
	db := pgtx.QuerierFor(ctx, s.pool)
	var page []access.APIKey
	if q.Limit > 0 {
		rows, err := db.Query(ctx, `
SELECT `+keyColumns+` FROM access.api_keys k
 WHERE k.principal_id = $1 AND k.id > $2 ORDER BY k.id LIMIT $3`, q.PrincipalID, q.AfterID, q.Limit)
		if err != nil {
			return nil, s.fail(ctx, "list the API keys of principal "+q.PrincipalID, err)
		}
		page, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (access.APIKey, error) { return scanKey(row) })
		if err != nil {
			return nil, s.fail(ctx, "list the API keys of principal "+q.PrincipalID, err)
		}
	}
	if len(page) > 0 {
		return page, nil // the principal exists: it has keys
	}
	var exists bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM access.principals WHERE id = $1)`, q.PrincipalID).Scan(&exists); err != nil {
		return nil, s.fail(ctx, "list the API keys of principal "+q.PrincipalID, err)
	}
	if !exists {
		return nil, access.PrincipalNotFound(q.PrincipalID)
	}
	return nil, nil
}

// UpdateKey changes one key under its row lock.
func (s *Store) UpdateKey(ctx context.Context, id string, change func(*access.APIKey) error) (access.APIKey, error) {
	k, _, err := s.changeKey(ctx, id, func(k *access.APIKey) (*access.APIKey, error) {
		return nil, change(k)
	})
	return k, err
}

// RotateKey changes one key under its row lock and stores its successor,
// in one transaction.
func (s *Store) RotateKey(ctx context.Context, id string, rotate func(*access.APIKey) (access.APIKey, error)) (access.APIKey, access.APIKey, error) {
	k, successor, err := s.changeKey(ctx, id, func(k *access.APIKey) (*access.APIKey, error) {
		next, err := rotate(k)
		return &next, err
	})
	if err != nil {
		return access.APIKey{}, access.APIKey{}, err
	}
	return k, storedTimes(*successor), nil
}

// changeKey locks the key with the id, calls change on it, and writes its
// new times and the successor change returns, if any, in one transaction:
//
//	BEGIN ─> SELECT the key FOR UPDATE ─> change ─> UPDATE its times
//	      ─> INSERT the successor (a rotation) ─> COMMIT
//
// If change fails, nothing is written and its error is returned as it is.
func (s *Store) changeKey(ctx context.Context, id string, change func(*access.APIKey) (*access.APIKey, error)) (access.APIKey, *access.APIKey, error) {
	defer s.changed(ctx)
	var (
		updated   access.APIKey
		successor *access.APIKey
		changeErr error // change's own error, to return untouched
	)
	err := pgtx.Run(ctx, s.pool, func(tx pgx.Tx) error {
		k, err := scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM access.api_keys k WHERE k.id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		old := k
		if successor, changeErr = change(&k); changeErr != nil {
			return changeErr
		}
		// Only the times change; the rest of a key is fixed when it is
		// issued.
		updated = old
		updated.ExpiresAt, updated.RevokedAt, updated.LastUsedAt = k.ExpiresAt, k.RevokedAt, k.LastUsedAt
		if _, err := tx.Exec(ctx, `
UPDATE access.api_keys SET expires_at = $2, revoked_at = $3, last_used_at = $4 WHERE id = $1`,
			id, nullTime(updated.ExpiresAt), nullTime(updated.RevokedAt), nullTime(updated.LastUsedAt)); err != nil {
			return err
		}
		if successor != nil {
			return insertKey(ctx, tx, *successor)
		}
		return nil
	})
	switch {
	case changeErr != nil:
		return access.APIKey{}, nil, changeErr
	case errors.Is(err, pgx.ErrNoRows):
		return access.APIKey{}, nil, access.KeyNotFound(id)
	case err != nil && successor != nil:
		return access.APIKey{}, nil, s.keyWriteError(ctx, "rotate API key "+id, *successor, err)
	case err != nil:
		return access.APIKey{}, nil, s.fail(ctx, "update API key "+id, err)
	}
	return storedTimes(updated), successor, nil
}

// RecordKeyUse sets a key's last_used_at, unless it is recent enough. The
// condition is in the UPDATE, so that of concurrent callers the ones that
// wait for the first one's row lock find its write and skip.
//
// The triggers do not notify this change (it would empty every cache once
// a minute per key in use), so RecordKeyUse updates the cached key itself:
// else Authenticate, finding the cached LastUsedAt ever older, would call
// it on every call. When it wrote nothing (another caller was first), or
// wrote in a request's transaction that may yet roll back, it does not
// know what is stored and drops the cached key instead.
func (s *Store) RecordKeyUse(ctx context.Context, id string, at, notBefore time.Time) error {
	var wrote bool
	err := pgtx.Run(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
UPDATE access.api_keys SET last_used_at = $2
 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)`, id, at, notBefore)
		wrote = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return s.fail(ctx, "record the use of API key "+id, err)
	}
	_, inTx := pgtx.FromContext(ctx)
	s.cache.recordUse(id, stored(at), wrote && !inTx)
	return nil
}

// changed empties the cache after a write of keys, principals or roles,
// so that this gateway stops serving what it changed at once, rather than
// when its own notification comes back. It runs whether the write
// succeeded or not: a COMMIT whose answer was lost may have committed.
//
// Inside a request's transaction (pgtx.Run joins it) the write commits
// later, with the request, and a lookup in between reads the row as it
// was, still committed, and may cache it again. So changed empties the
// cache once more when that transaction ends (pgtx.AfterEnd), before the
// request answers: a caller that revoked a key and presents it again at
// once is refused on this gateway, and on the others as soon as the
// triggers' NOTIFY, sent at that commit, reaches them. A rollback notifies
// nothing, and leaves nothing to undo.
func (s *Store) changed(ctx context.Context) {
	s.cache.invalidate()
	pgtx.AfterEnd(ctx, s.cache.invalidate)
}

// Ping reports whether the database can be reached, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.fail(ctx, "ping", err)
	}
	return nil
}

// --- Rows -------------------------------------------------------------------

// scanPrincipal reads one row of principalColumns.
func scanPrincipal(row pgx.Row) (access.Principal, error) {
	var p access.Principal
	if err := row.Scan(&p.ID, &p.Name, &p.Description, &p.CreatedAt, &p.Roles); err != nil {
		return access.Principal{}, err
	}
	return normalizePrincipal(p), nil
}

// normalizePrincipal returns p as every backend returns it: times in UTC,
// no roles as nil (the query gives an empty array).
func normalizePrincipal(p access.Principal) access.Principal {
	p.CreatedAt = p.CreatedAt.UTC()
	if len(p.Roles) == 0 {
		p.Roles = nil
	}
	return p
}

// keyTimes are the nullable times of a key as scanned.
type keyTimes struct {
	expiresAt, revokedAt, lastUsedAt *time.Time
}

func (t keyTimes) into(k access.APIKey) access.APIKey {
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = deref(t.expiresAt), deref(t.revokedAt), deref(t.lastUsedAt)
	return storedTimes(k)
}

// scanKey reads one row of keyColumns.
func scanKey(row pgx.Row) (access.APIKey, error) {
	var (
		k access.APIKey
		t keyTimes
	)
	if err := row.Scan(&k.ID, &k.PrincipalID, &k.Prefix, &k.SecretHash, &k.Description,
		&k.CreatedAt, &t.expiresAt, &t.revokedAt, &t.lastUsedAt); err != nil {
		return access.APIKey{}, err
	}
	return t.into(k), nil
}

// storedTimes returns k with its times as the database keeps them: in
// microseconds and UTC.
func storedTimes(k access.APIKey) access.APIKey {
	k.CreatedAt = stored(k.CreatedAt)
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = stored(k.ExpiresAt), stored(k.RevokedAt), stored(k.LastUsedAt)
	return k
}

func stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// nullTime returns t for a timestamptz column, the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// fail wraps an error of op (an operation named by ids, never by a secret
// or prefix): a lost connection becomes Unavailable, a lost race Aborted
// (see pgtx.Classify). A NotFound error passes through.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	return pgtx.Classify(ctx, "access/postgres: "+op, err)
}
