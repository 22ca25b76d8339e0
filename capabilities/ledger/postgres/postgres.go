// Package postgres is the PostgreSQL ledger backend, over pgx. It keeps the
// same invariants and returns the same errors as the memory backend (both
// pass ledgertest.Run), keeps the ledger across restarts, and serves any
// number of gateways over one database.
//
// The schema (migrations/, applied by `plinth migrate` through
// internal/migrate, never by the backend itself) lives in the PostgreSQL
// schema "ledger"; its constraints refuse books that do not add up whoever
// writes them (see the migrations' headers):
//
//	ledger.accounts       one row per account, with its posted balance and
//	   │                  entry count kept in step with its entries
//	   ├── ledger.entries        append-only, numbered per account
//	   └── ledger.holds          money reserved for a later capture
//	ledger.transfers      append-only, with their ordered
//	   └── ledger.transfer_legs
//
// Every write goes through pgtx.Run, so that inside the gateway it joins
// the transaction of the request's idempotency record (as a savepoint) and
// the effect and the record commit together; reads go through
// pgtx.QuerierFor, so a request sees its own writes.
//
// Concurrency: Apply runs at READ COMMITTED and locks, before it reads
// anything it decides on, every row it will change, always in the same
// order (accounts by id, then the hold, then the transfer): concurrent
// Applies over common rows queue up instead of deadlocking, and what the
// Service checked still holds when it is written. A lost race that
// PostgreSQL reports anyway (a deadlock with a writer that does not follow
// that order) is returned as a domainerr.KindAborted error, which the
// caller may retry.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/ledger"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/internal/pgtx"
)

// Store keeps a ledger in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

var (
	_ ledger.Store    = (*Store)(nil)
	_ registry.Pinger = (*Store)(nil)
)

// New returns a Store over pool, whose database must have the ledger
// migrations applied. New does not touch the database, and the Store never
// closes pool: whoever made the pool (the gateway, shared by every domain)
// closes it.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

// Names of constraints whose violations mean something to callers.
const (
	constraintAccountsPkey  = "accounts_pkey"
	constraintTransfersPkey = "transfers_pkey"
	// Legs are keyed by (transfer_id, position): a collision is the
	// transfer's.
	constraintTransferLegsPkey = "transfer_legs_pkey"
	constraintHoldsPkey        = "holds_pkey"
)

// The columns of an account, in the order scanAccount reads them.
const accountColumns = `a.id, a.currency, coalesce(a.customer_id, ''), a.balance_policy, a.overdraft_limit,
       a.state, a.freeze_reason, a.description, a.posted, a.entry_count, a.created_at, a.updated_at`

// heldColumn is the sum of the holds of account a that reserve money at
// the instant $2 (see ledger.Hold.ReservesAt: active, and not expired).
const heldColumn = `(SELECT coalesce(sum(h.amount), 0)::bigint FROM ledger.holds h
         WHERE h.account_id = a.id AND h.state = 'active' AND h.expires_at > $2)`

// The columns of a hold, in the order scanHold reads them.
const holdColumns = `h.id, h.account_id, h.currency, h.amount, h.state, h.captured_amount,
       coalesce(h.capture_transfer_id, ''), h.description, h.expires_at, h.created_at, h.updated_at`

// selectTransfers reads transfers t with their legs in position order and
// the two facts about them that other rows hold: the transfer that
// reversed it, and the hold it captured.
const selectTransfers = `
SELECT t.id, t.currency, t.description, coalesce(t.reverses_transfer_id, ''), t.posted_at,
       coalesce((SELECT r.id FROM ledger.transfers r WHERE r.reverses_transfer_id = t.id), ''),
       coalesce((SELECT h.id FROM ledger.holds h WHERE h.capture_transfer_id = t.id), ''),
       l.froms, l.tos, l.amounts
  FROM ledger.transfers t
 CROSS JOIN LATERAL (
       SELECT array_agg(from_account_id ORDER BY position) AS froms,
              array_agg(to_account_id ORDER BY position) AS tos,
              array_agg(amount ORDER BY position) AS amounts
         FROM ledger.transfer_legs WHERE transfer_id = t.id) l`

// The columns of an entry, in the order scanEntry reads them.
const entryColumns = `e.id, e.account_id, e.transfer_id, e.seq, e.amount, e.balance_after, e.posted_at`

// CreateAccount stores a new account.
func (s *Store) CreateAccount(ctx context.Context, a ledger.Account) error {
	policy, err := policyName(a.Policy)
	if err != nil {
		return fmt.Errorf("ledger/postgres: create ledger account %s: %w", a.ID, err)
	}
	state, err := accountStateName(a.State)
	if err != nil {
		return fmt.Errorf("ledger/postgres: create ledger account %s: %w", a.ID, err)
	}
	err = pgtx.Run(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
INSERT INTO ledger.accounts (id, currency, customer_id, balance_policy, overdraft_limit, state,
                             freeze_reason, description, posted, entry_count, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			a.ID, a.Currency, nullIfEmpty(a.CustomerID), policy, a.OverdraftLimit, state,
			a.FreezeReason, a.Description, a.Posted, a.EntryCount, stored(a.CreatedAt), stored(a.UpdatedAt))
		return err
	})
	if pgtx.Violated(err, constraintAccountsPkey) {
		return &domainerr.AlreadyExistsError{Resource: "ledger account", ID: a.ID}
	}
	return pgtx.Classify(ctx, "ledger/postgres: create ledger account "+a.ID, err)
}

// GetAccount returns an account and the sum of its holds that reserve
// money at now, as of one instant of the database.
func (s *Store) GetAccount(ctx context.Context, id string, now time.Time) (ledger.Account, int64, error) {
	row := pgtx.QuerierFor(ctx, s.pool).QueryRow(ctx,
		`SELECT `+accountColumns+`, `+heldColumn+` FROM ledger.accounts a WHERE a.id = $1`, id, now)
	var held int64
	a, err := scanAccount(row, &held)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Account{}, 0, ledger.AccountNotFound(id)
	}
	if err != nil {
		return ledger.Account{}, 0, pgtx.Classify(ctx, "ledger/postgres: get ledger account "+id, err)
	}
	return a, held, nil
}

// ListAccounts returns a page of accounts ordered by id. It pages by
// keyset (ids greater than the last one seen), so accounts opened meanwhile
// neither shift pages nor appear twice.
func (s *Store) ListAccounts(ctx context.Context, q ledger.AccountQuery, now time.Time) ([]ledger.AccountWithHeld, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	query, args := `SELECT `+accountColumns+`, `+heldColumn+`
  FROM ledger.accounts a
 WHERE a.id > $1
 ORDER BY a.id LIMIT $3`, []any{q.AfterID, now, q.Limit}
	if q.CustomerID != "" {
		query, args = `SELECT `+accountColumns+`, `+heldColumn+`
  FROM ledger.accounts a
 WHERE a.customer_id = $4 AND a.id > $1
 ORDER BY a.id LIMIT $3`, append(args, q.CustomerID)
	}
	rows, err := pgtx.QuerierFor(ctx, s.pool).Query(ctx, query, args...)
	if err != nil {
		return nil, pgtx.Classify(ctx, "ledger/postgres: list ledger accounts", err)
	}
	page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ledger.AccountWithHeld, error) {
		var a ledger.AccountWithHeld
		var err error
		a.Account, err = scanAccount(row, &a.Held)
		return a, err
	})
	if err != nil {
		return nil, pgtx.Classify(ctx, "ledger/postgres: list ledger accounts", err)
	}
	return nilIfEmpty(page), nil
}

// GetTransfer returns a transfer with its legs in their order.
func (s *Store) GetTransfer(ctx context.Context, id string) (ledger.Transfer, error) {
	t, err := getTransfer(ctx, pgtx.QuerierFor(ctx, s.pool), id)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Transfer{}, ledger.TransferNotFound(id)
	}
	if err != nil {
		return ledger.Transfer{}, pgtx.Classify(ctx, "ledger/postgres: get transfer "+id, err)
	}
	return t, nil
}

func getTransfer(ctx context.Context, q pgtx.Querier, id string) (ledger.Transfer, error) {
	return scanTransfer(q.QueryRow(ctx, selectTransfers+` WHERE t.id = $1`, id))
}

// ListTransfers returns a page of transfers ordered by id, only those with
// a leg to or from q.AccountID unless it is empty.
func (s *Store) ListTransfers(ctx context.Context, q ledger.TransferQuery) ([]ledger.Transfer, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	query, args := selectTransfers+` WHERE t.id > $1 ORDER BY t.id LIMIT $2`, []any{q.AfterID, q.Limit}
	if q.AccountID != "" {
		// The first Limit transfers the account gave from and the first
		// Limit it received in, each read in id order from an index and
		// stopped early: the page is among them, however long the
		// account's history.
		query, args = selectTransfers+`
 WHERE t.id IN (
       SELECT DISTINCT m.transfer_id FROM (
              (SELECT DISTINCT transfer_id FROM ledger.transfer_legs
                WHERE from_account_id = $2 AND transfer_id > $1 ORDER BY transfer_id LIMIT $3)
              UNION ALL
              (SELECT DISTINCT transfer_id FROM ledger.transfer_legs
                WHERE to_account_id = $2 AND transfer_id > $1 ORDER BY transfer_id LIMIT $3)) m
        ORDER BY m.transfer_id LIMIT $3)
 ORDER BY t.id`, []any{q.AfterID, q.AccountID, q.Limit}
	}
	rows, err := pgtx.QuerierFor(ctx, s.pool).Query(ctx, query, args...)
	if err != nil {
		return nil, pgtx.Classify(ctx, "ledger/postgres: list transfers", err)
	}
	page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ledger.Transfer, error) {
		return scanTransfer(row)
	})
	if err != nil {
		return nil, pgtx.Classify(ctx, "ledger/postgres: list transfers", err)
	}
	return nilIfEmpty(page), nil
}

// GetHold returns a hold as stored.
func (s *Store) GetHold(ctx context.Context, id string) (ledger.Hold, error) {
	h, err := scanHold(pgtx.QuerierFor(ctx, s.pool).QueryRow(ctx, `SELECT `+holdColumns+` FROM ledger.holds h WHERE h.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Hold{}, ledger.HoldNotFound(id)
	}
	if err != nil {
		return ledger.Hold{}, pgtx.Classify(ctx, "ledger/postgres: get hold "+id, err)
	}
	return h, nil
}

// ListEntries returns a page of an account's entries ordered by Seq. One
// statement reads the account and the page, so an account with no entry
// (past AfterSeq) is told apart from one that does not exist.
func (s *Store) ListEntries(ctx context.Context, q ledger.EntryQuery) ([]ledger.Entry, error) {
	rows, err := pgtx.QuerierFor(ctx, s.pool).Query(ctx, `
SELECT e.id IS NOT NULL, coalesce(e.id, ''), coalesce(e.account_id, ''), coalesce(e.transfer_id, ''),
       coalesce(e.seq, 0), coalesce(e.amount, 0), coalesce(e.balance_after, 0), coalesce(e.posted_at, 'epoch')
  FROM ledger.accounts a
  LEFT JOIN LATERAL (
       SELECT `+entryColumns+` FROM ledger.entries e
        WHERE e.account_id = a.id AND e.seq > $2 ORDER BY e.seq LIMIT $3) e ON true
 WHERE a.id = $1
 ORDER BY e.seq`, q.AccountID, q.AfterSeq, max(q.Limit, 0))
	if err != nil {
		return nil, pgtx.Classify(ctx, "ledger/postgres: list the entries of ledger account "+q.AccountID, err)
	}
	var (
		page  []ledger.Entry
		found bool
	)
	for rows.Next() {
		found = true
		var (
			e      ledger.Entry
			isReal bool
		)
		if err := rows.Scan(&isReal, &e.ID, &e.AccountID, &e.TransferID, &e.Seq, &e.Amount, &e.BalanceAfter, &e.PostedAt); err != nil {
			rows.Close()
			return nil, pgtx.Classify(ctx, "ledger/postgres: list the entries of ledger account "+q.AccountID, err)
		}
		if isReal {
			e.PostedAt = e.PostedAt.UTC()
			page = append(page, e)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, pgtx.Classify(ctx, "ledger/postgres: list the entries of ledger account "+q.AccountID, err)
	}
	if !found {
		return nil, ledger.AccountNotFound(q.AccountID)
	}
	return page, nil
}

// BalanceAt returns the sum of an account's entries posted at or before
// at, read from the index of its entries by time.
func (s *Store) BalanceAt(ctx context.Context, accountID string, at time.Time) (int64, error) {
	var sum int64
	err := pgtx.QuerierFor(ctx, s.pool).QueryRow(ctx, `
SELECT (SELECT coalesce(sum(e.amount), 0)::bigint FROM ledger.entries e
         WHERE e.account_id = a.id AND e.posted_at <= $2)
  FROM ledger.accounts a WHERE a.id = $1`, accountID, at).Scan(&sum)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ledger.AccountNotFound(accountID)
	}
	if err != nil {
		return 0, pgtx.Classify(ctx, "ledger/postgres: balance of ledger account "+accountID, err)
	}
	return sum, nil
}

// Ping reports whether the database can be reached, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	return pgtx.Classify(ctx, "ledger/postgres: ping", s.pool.Ping(ctx))
}

// --- Rows -------------------------------------------------------------------

// scanAccount reads the accountColumns of row, followed by the columns
// extra points to.
func scanAccount(row pgx.Row, extra ...any) (ledger.Account, error) {
	var (
		a             ledger.Account
		policy, state string
	)
	dest := append([]any{&a.ID, &a.Currency, &a.CustomerID, &policy, &a.OverdraftLimit,
		&state, &a.FreezeReason, &a.Description, &a.Posted, &a.EntryCount, &a.CreatedAt, &a.UpdatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return ledger.Account{}, err
	}
	var err error
	if a.Policy, err = parsePolicy(policy); err != nil {
		return ledger.Account{}, fmt.Errorf("ledger account %s: %w", a.ID, err)
	}
	if a.State, err = parseAccountState(state); err != nil {
		return ledger.Account{}, fmt.Errorf("ledger account %s: %w", a.ID, err)
	}
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, nil
}

// scanHold reads the holdColumns of row.
func scanHold(row pgx.Row) (ledger.Hold, error) {
	var (
		h     ledger.Hold
		state string
	)
	if err := row.Scan(&h.ID, &h.AccountID, &h.Currency, &h.Amount, &state, &h.CapturedAmount,
		&h.CaptureTransferID, &h.Description, &h.ExpiresAt, &h.CreatedAt, &h.UpdatedAt); err != nil {
		return ledger.Hold{}, err
	}
	var err error
	if h.State, err = parseHoldState(state); err != nil {
		return ledger.Hold{}, fmt.Errorf("hold %s: %w", h.ID, err)
	}
	h.ExpiresAt, h.CreatedAt, h.UpdatedAt = h.ExpiresAt.UTC(), h.CreatedAt.UTC(), h.UpdatedAt.UTC()
	return h, nil
}

// scanTransfer reads one row of selectTransfers.
func scanTransfer(row pgx.Row) (ledger.Transfer, error) {
	var (
		t       ledger.Transfer
		froms   []string
		tos     []string
		amounts []int64
	)
	if err := row.Scan(&t.ID, &t.Currency, &t.Description, &t.ReversesID, &t.PostedAt,
		&t.ReversedByID, &t.CapturesHoldID, &froms, &tos, &amounts); err != nil {
		return ledger.Transfer{}, err
	}
	if len(froms) == 0 || len(tos) != len(froms) || len(amounts) != len(froms) {
		// The schema's transfers_have_legs rules it out.
		return ledger.Transfer{}, fmt.Errorf("transfer %s has no legs", t.ID)
	}
	t.Legs = make([]ledger.Leg, len(froms))
	for i := range froms {
		t.Legs[i] = ledger.Leg{From: froms[i], To: tos[i], Amount: amounts[i]}
	}
	t.PostedAt = t.PostedAt.UTC()
	return t, nil
}

// --- Values -----------------------------------------------------------------

// stored returns t as the database keeps it: in microseconds (truncated,
// as the Service does, rather than rounded, as PostgreSQL would) and UTC,
// so that what a Tx returns after a write is what later reads return.
func stored(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// nullIfEmpty stores "" as NULL: a missing customer, reversed transfer or
// capture.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// nilIfEmpty returns nil for an empty page, as the memory backend does.
func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// The names the schema stores enums by: ledger's String names, which are
// the contract's enum names in lower case. Unspecified (and expired, for
// holds) are never stored.

func policyName(p ledger.BalancePolicy) (string, error) {
	switch p {
	case ledger.PolicyNonNegative, ledger.PolicyUnrestricted:
		return p.String(), nil
	}
	return "", fmt.Errorf("balance policy %s cannot be stored", p)
}

func parsePolicy(s string) (ledger.BalancePolicy, error) {
	for _, p := range []ledger.BalancePolicy{ledger.PolicyNonNegative, ledger.PolicyUnrestricted} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown balance policy %q", s)
}

func accountStateName(s ledger.AccountState) (string, error) {
	switch s {
	case ledger.AccountOpen, ledger.AccountFrozen, ledger.AccountClosed:
		return s.String(), nil
	}
	return "", fmt.Errorf("account state %s cannot be stored", s)
}

func parseAccountState(s string) (ledger.AccountState, error) {
	for _, st := range []ledger.AccountState{ledger.AccountOpen, ledger.AccountFrozen, ledger.AccountClosed} {
		if s == st.String() {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown account state %q", s)
}

func holdStateName(s ledger.HoldState) (string, error) {
	switch s {
	case ledger.HoldActive, ledger.HoldCaptured, ledger.HoldReleased:
		return s.String(), nil
	}
	return "", fmt.Errorf("hold state %s cannot be stored", s)
}

func parseHoldState(s string) (ledger.HoldState, error) {
	for _, st := range []ledger.HoldState{ledger.HoldActive, ledger.HoldCaptured, ledger.HoldReleased} {
		if s == st.String() {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown hold state %q", s)
}
