package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/ledger"
	"plinth.dev/plinth/internal/pgtx"
)

// Apply locks what l names, calls change with a Tx over it, and commits
// what change recorded, in one transaction (a savepoint of the request's,
// when ctx carries one: see pgtx.Run):
//
//	BEGIN ─> one round trip:  SELECT accounts WHERE id = ANY(sorted ids) ORDER BY id FOR UPDATE
//	                          SELECT the hold FOR UPDATE         (if l names one)
//	                          SELECT the transfer FOR UPDATE     (if l names one)
//	                          read the transfer, legs and all    (after its lock)
//	      ─> change(tx): reads from what was locked; each write goes to the
//	         database at once, so later reads inside change see it
//	      ─> COMMIT, or ROLLBACK if anything failed
//
// Locking in one order everywhere (accounts by id, which the "C" collation
// makes Go's byte order, then the hold, then the transfer) means two
// Applies over common rows queue up rather than deadlock. Every row is
// read by a statement that runs after its lock is held, so what change
// sees is what is committed, and nobody changes it before COMMIT.
//
// If change returns an error, nothing is written and Apply returns that
// error as it is. If change panics (a programming error, such as asking
// for an account not in l), the transaction is rolled back and the panic
// goes on.
func (s *Store) Apply(ctx context.Context, l ledger.Lock, change func(ledger.Tx) error) error {
	ids := slices.Clone(l.AccountIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)

	var (
		changeErr error // change's own error, returned untouched
		panicked  bool  // change panicked with panicVal: pgtx.Run does not roll back on a panic
		panicVal  any
	)
	err := pgtx.Run(ctx, s.pool, func(db pgx.Tx) error {
		t, err := lock(ctx, db, ids, l)
		if err != nil {
			return err
		}
		defer func() { t.closed = true }()
		func() {
			defer func() {
				if p := recover(); p != nil {
					panicked, panicVal = true, p
				}
			}()
			changeErr = change(t)
		}()
		switch {
		case panicked:
			return errChangePanicked
		case changeErr != nil:
			return changeErr
		}
		return t.finish()
	})
	switch {
	case panicked:
		panic(panicVal)
	case changeErr != nil:
		return changeErr
	}
	return pgtx.Classify(ctx, "ledger/postgres: apply", err)
}

// errChangePanicked makes pgtx.Run roll back when change panicked; Apply
// then panics again with change's value.
var errChangePanicked = errors.New("ledger/postgres: change panicked")

// lock locks and reads, in one round trip, the rows l names, ids being its
// accounts sorted and deduplicated. It returns the NotFound error of the
// first account (in ids' order), else of the hold, else of the transfer,
// that does not exist.
func lock(ctx context.Context, db pgx.Tx, ids []string, l ledger.Lock) (*tx, error) {
	b := &pgx.Batch{}
	if len(ids) > 0 {
		b.Queue(`SELECT `+accountColumns+` FROM ledger.accounts a WHERE a.id = ANY($1) ORDER BY a.id FOR UPDATE`, ids)
	}
	prefetchHeld := len(ids) > 0 && !l.HeldAsOf.IsZero()
	if prefetchHeld {
		// After the account locks (a batch runs in order): the holds of a
		// locked account change only under its lock.
		b.Queue(`
SELECT account_id, sum(amount)::bigint FROM ledger.holds
 WHERE account_id = ANY($1) AND state = 'active' AND expires_at > $2
 GROUP BY account_id`, ids, l.HeldAsOf)
	}
	if l.HoldID != "" {
		b.Queue(`SELECT `+holdColumns+` FROM ledger.holds h WHERE h.id = $1 FOR UPDATE`, l.HoldID)
	}
	if l.TransferID != "" {
		// Locked, then read in a statement of its own: at READ COMMITTED a
		// statement sees what was committed when it started, and a
		// reversal that committed while this one waited for the lock is
		// another transfer's row, which the locking statement would not
		// see again.
		b.Queue(`SELECT FROM ledger.transfers WHERE id = $1 FOR UPDATE`, l.TransferID)
		b.Queue(selectTransfers+` WHERE t.id = $1`, l.TransferID)
	}
	t := &tx{
		ctx:      ctx,
		db:       db,
		lock:     l,
		accounts: make(map[string]ledger.Account, len(ids)),
		posted:   map[string]ledger.Transfer{},
	}
	if b.Len() == 0 {
		return t, nil
	}
	br := db.SendBatch(ctx, b)
	defer br.Close()

	if len(ids) > 0 {
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		locked, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ledger.Account, error) {
			return scanAccount(row)
		})
		if err != nil {
			return nil, err
		}
		for _, a := range locked {
			t.accounts[a.ID] = a
		}
		for _, id := range ids {
			if _, ok := t.accounts[id]; !ok {
				return nil, ledger.AccountNotFound(id)
			}
		}
	}
	if prefetchHeld {
		t.held = make(map[string]int64, len(ids))
		for _, id := range ids {
			t.held[id] = 0
		}
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		var (
			id  string
			sum int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&id, &sum}, func() error {
			t.held[id] = sum
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if l.HoldID != "" {
		h, err := scanHold(br.QueryRow())
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ledger.HoldNotFound(l.HoldID)
		}
		if err != nil {
			return nil, err
		}
		t.hold, t.storedCapture = h, h.CaptureTransferID
	}
	if l.TransferID != "" {
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
		tr, err := scanTransfer(br.QueryRow())
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ledger.TransferNotFound(l.TransferID)
		}
		if err != nil {
			return nil, err
		}
		t.transfer = tr
	}
	return t, br.Close()
}

// tx is the ledger.Tx of one Apply: the rows it locked, as changed since,
// over the database transaction its writes go to.
type tx struct {
	ctx    context.Context
	db     pgx.Tx
	lock   ledger.Lock
	closed bool // Apply returned: the tx must not be used

	accounts map[string]ledger.Account // the locked accounts, as changed
	hold     ledger.Hold               // the locked hold, as changed, if lock names one
	transfer ledger.Transfer           // the locked transfer, if lock names one

	// What the database derives rather than stores twice, and finish
	// checks change recorded consistently.
	// held is each locked account's reserving holds as of lock.HeldAsOf,
	// read with the locks; nil once SaveHold may have changed them.
	held map[string]int64

	storedCapture string                     // the locked hold's CaptureTransferID when locked
	posted        map[string]ledger.Transfer // the transfers change posted, by id
	reversedBy    string                     // what MarkReversed recorded
}

var _ ledger.Tx = (*tx)(nil)

// mustBeOpen panics if the tx is used after its Apply returned: a change
// that leaks its Tx is a bug in the Service.
func (t *tx) mustBeOpen() {
	if t.closed {
		panic("ledger/postgres: Tx used after its Apply returned")
	}
}

// mustBeLocked panics unless account id is in the Lock: the Store only
// serializes what the Lock names, so touching anything else is a bug in the
// Service.
func (t *tx) mustBeLocked(id string) ledger.Account {
	t.mustBeOpen()
	a, ok := t.accounts[id]
	if !ok {
		panic(fmt.Sprintf("ledger/postgres: ledger account %s is not in the Lock of this Apply", id))
	}
	return a
}

func (t *tx) fail(op string, err error) error {
	return pgtx.Classify(t.ctx, "ledger/postgres: "+op, err)
}

func (t *tx) Account(id string) ledger.Account {
	return t.mustBeLocked(id)
}

func (t *tx) HeldAt(accountID string, now time.Time) (int64, error) {
	t.mustBeLocked(accountID)
	if sum, ok := t.held[accountID]; ok && now.Equal(t.lock.HeldAsOf) {
		return sum, nil
	}
	// The holds of a locked account change only under its lock, so this
	// reads them as they are, this transaction's own writes included.
	var held int64
	err := t.db.QueryRow(t.ctx, `
SELECT coalesce(sum(amount), 0)::bigint FROM ledger.holds
 WHERE account_id = $1 AND state = 'active' AND expires_at > $2`, accountID, now).Scan(&held)
	if err != nil {
		return 0, t.fail("sum the holds of ledger account "+accountID, err)
	}
	return held, nil
}

func (t *tx) Hold() (ledger.Hold, error) {
	t.mustBeOpen()
	if t.lock.HoldID == "" {
		panic("ledger/postgres: Tx.Hold called, but the Lock names no hold")
	}
	return t.hold, nil
}

func (t *tx) Transfer() (ledger.Transfer, error) {
	t.mustBeOpen()
	if t.lock.TransferID == "" {
		panic("ledger/postgres: Tx.Transfer called, but the Lock names no transfer")
	}
	tr := t.transfer
	tr.Legs = slices.Clone(tr.Legs)
	if t.reversedBy != "" {
		tr.ReversedByID = t.reversedBy
	}
	return tr, nil
}

func (t *tx) UpdateAccount(a ledger.Account) error {
	cur := t.mustBeLocked(a.ID)
	state, err := accountStateName(a.State)
	if err != nil {
		return fmt.Errorf("ledger/postgres: update ledger account %s: %w", a.ID, err)
	}
	cur.State, cur.FreezeReason, cur.Description, cur.UpdatedAt = a.State, a.FreezeReason, a.Description, stored(a.UpdatedAt)
	if _, err := t.db.Exec(t.ctx, `
UPDATE ledger.accounts SET state = $2, freeze_reason = $3, description = $4, updated_at = $5 WHERE id = $1`,
		cur.ID, state, cur.FreezeReason, cur.Description, cur.UpdatedAt); err != nil {
		return t.fail("update ledger account "+a.ID, err)
	}
	t.accounts[a.ID] = cur
	return nil
}

// postTransferSQL writes a transfer, its legs and its entries, and moves
// its accounts' balances, in one statement whatever the number of legs: a
// statement costs PostgreSQL about as much to start as these rows cost to
// write. The sub-statements of a WITH all run, whether or not the main one
// reads them, and their foreign keys and triggers run at the end of the
// whole statement, when every row it wrote is there.
//
// So the schema's checks of double entry and of the entries each balance
// counts (migration 00002: once per table and statement, over the
// statement's rows) refuse books that do not add up at this statement,
// inside the Apply's savepoint; they need the entries and the balances
// written by one statement. That each balance is its last entry's
// (accounts_last_entry_fkey) is checked at COMMIT, as the schema defers it.
const postTransferSQL = `
WITH transfer AS (
    INSERT INTO ledger.transfers (id, currency, description, reverses_transfer_id, posted_at)
    VALUES ($1, $2, $3, $4, $5)
), legs AS (
    INSERT INTO ledger.transfer_legs (transfer_id, position, currency, from_account_id, to_account_id, amount)
    SELECT $1, (l.ord - 1)::smallint, $2, l.from_id, l.to_id, l.amount
      FROM unnest($6::text[], $7::text[], $8::bigint[]) WITH ORDINALITY AS l(from_id, to_id, amount, ord)
), entries AS (
    INSERT INTO ledger.entries (id, account_id, transfer_id, seq, amount, balance_after, posted_at)
    SELECT e.id, e.account_id, $1, e.seq, e.amount, e.balance_after, e.posted_at
      FROM unnest($9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[], $14::timestamptz[])
           AS e(id, account_id, seq, amount, balance_after, posted_at)
)
UPDATE ledger.accounts a SET posted = u.posted, entry_count = u.entry_count
  FROM unnest($15::text[], $16::bigint[], $17::bigint[]) AS u(id, posted, entry_count)
 WHERE a.id = u.id`

// PostTransfer writes the transfer, its legs and its entries and moves its
// accounts' balances in one statement (postTransferSQL).
func (t *tx) PostTransfer(tr ledger.Transfer, entries []ledger.Entry) error {
	t.mustBeOpen()
	switch {
	case tr.ReversedByID != "":
		return fmt.Errorf("ledger/postgres: transfer %s is new, and cannot have been reversed by %s", tr.ID, tr.ReversedByID)
	case tr.ReversesID != "" && tr.ReversesID != t.lock.TransferID:
		return fmt.Errorf("ledger/postgres: transfer %s reverses %s, which is not the transfer of this Apply's Lock", tr.ID, tr.ReversesID)
	case tr.CapturesHoldID != "" && tr.CapturesHoldID != t.lock.HoldID:
		return fmt.Errorf("ledger/postgres: transfer %s captures hold %s, which is not the hold of this Apply's Lock", tr.ID, tr.CapturesHoldID)
	}
	tr.PostedAt = stored(tr.PostedAt)
	tr.Legs = slices.Clone(tr.Legs)
	froms, tos, amounts := make([]string, len(tr.Legs)), make([]string, len(tr.Legs)), make([]int64, len(tr.Legs))
	for i, l := range tr.Legs {
		t.mustBeLocked(l.From)
		t.mustBeLocked(l.To)
		froms[i], tos[i], amounts[i] = l.From, l.To, l.Amount
	}

	var (
		n          = len(entries)
		entryIDs   = make([]string, n)
		accountIDs = make([]string, n)
		seqs       = make([]int64, n)
		signed     = make([]int64, n)
		balances   = make([]int64, n)
		times      = make([]time.Time, n)
		last       = map[string]ledger.Entry{} // each account's last entry
	)
	for i, e := range entries {
		t.mustBeLocked(e.AccountID)
		if e.TransferID != tr.ID {
			return fmt.Errorf("ledger/postgres: entry %s belongs to transfer %s, not %s", e.ID, e.TransferID, tr.ID)
		}
		entryIDs[i], accountIDs[i], seqs[i], signed[i], balances[i], times[i] =
			e.ID, e.AccountID, e.Seq, e.Amount, e.BalanceAfter, stored(e.PostedAt)
		if cur, ok := last[e.AccountID]; !ok || e.Seq > cur.Seq {
			last[e.AccountID] = e
		}
	}
	touched := make([]string, 0, len(last))
	for id := range last {
		touched = append(touched, id)
	}
	slices.Sort(touched)
	posted, counts := make([]int64, len(touched)), make([]int64, len(touched))
	for i, id := range touched {
		posted[i], counts[i] = last[id].BalanceAfter, last[id].Seq
	}

	if _, err := t.db.Exec(t.ctx, postTransferSQL,
		tr.ID, tr.Currency, tr.Description, nullIfEmpty(tr.ReversesID), tr.PostedAt,
		froms, tos, amounts,
		entryIDs, accountIDs, seqs, signed, balances, times,
		touched, posted, counts); err != nil {
		// The sub-statements run in no set order, so a transfer id taken
		// already may first collide with the legs that transfer has.
		if pgtx.Violated(err, constraintTransfersPkey) || pgtx.Violated(err, constraintTransferLegsPkey) {
			return &domainerr.AlreadyExistsError{Resource: "transfer", ID: tr.ID}
		}
		return t.fail("post transfer "+tr.ID, err)
	}

	for _, id := range touched {
		a := t.accounts[id]
		a.Posted, a.EntryCount = last[id].BalanceAfter, last[id].Seq
		t.accounts[id] = a
	}
	t.posted[tr.ID] = tr
	return nil
}

// MarkReversed records that the locked transfer was reversed by
// reversalID, a transfer this Apply posted. The database keeps that fact
// once, as the reversal's reverses_transfer_id, so there is nothing more
// to write; finish checks that the two agree.
func (t *tx) MarkReversed(reversalID string) error {
	cur, err := t.Transfer() // panics unless the Lock names a transfer
	if err != nil {
		return err
	}
	if cur.ReversedByID != "" {
		return fmt.Errorf("ledger/postgres: transfer %s was reversed already, by %s", cur.ID, cur.ReversedByID)
	}
	if r, ok := t.posted[reversalID]; !ok || r.ReversesID != cur.ID {
		return fmt.Errorf("ledger/postgres: %s is not a reversal of transfer %s posted in this Apply", reversalID, cur.ID)
	}
	t.reversedBy = reversalID
	return nil
}

func (t *tx) SaveHold(h ledger.Hold) error {
	t.held = nil // the sums read with the locks may no longer hold
	t.mustBeOpen()
	state, err := holdStateName(h.State)
	if err != nil {
		return fmt.Errorf("ledger/postgres: save hold %s: %w", h.ID, err)
	}
	if t.lock.HoldID != "" && h.ID == t.lock.HoldID {
		cur := t.hold
		cur.State, cur.CapturedAmount, cur.CaptureTransferID, cur.UpdatedAt = h.State, h.CapturedAmount, h.CaptureTransferID, stored(h.UpdatedAt)
		if _, err := t.db.Exec(t.ctx, `
UPDATE ledger.holds SET state = $2, captured_amount = $3, capture_transfer_id = $4, updated_at = $5 WHERE id = $1`,
			cur.ID, state, cur.CapturedAmount, nullIfEmpty(cur.CaptureTransferID), cur.UpdatedAt); err != nil {
			return t.fail("save hold "+h.ID, err)
		}
		t.hold = cur
		return nil
	}

	t.mustBeLocked(h.AccountID)
	if h.CaptureTransferID != "" {
		// A capture settles the locked hold; a new hold starts active.
		return fmt.Errorf("ledger/postgres: new hold %s cannot be captured already", h.ID)
	}
	h.ExpiresAt, h.CreatedAt, h.UpdatedAt = stored(h.ExpiresAt), stored(h.CreatedAt), stored(h.UpdatedAt)
	_, err = t.db.Exec(t.ctx, `
INSERT INTO ledger.holds (id, account_id, currency, amount, state, captured_amount, description,
                          expires_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		h.ID, h.AccountID, h.Currency, h.Amount, state, h.CapturedAmount, h.Description,
		h.ExpiresAt, h.CreatedAt, h.UpdatedAt)
	if pgtx.Violated(err, constraintHoldsPkey) {
		return &domainerr.AlreadyExistsError{Resource: "hold", ID: h.ID}
	}
	if err != nil {
		return t.fail("save hold "+h.ID, err)
	}
	return nil
}

// finish checks, once change has returned nil, that it recorded the two
// facts the database stores once from both of their sides: a reversal was
// posted and marked, and a capture's transfer was posted and its hold
// saved as captured by it. A Service that did only half would see the
// other half appear on its own once committed; refusing keeps every
// backend's books the same.
func (t *tx) finish() error {
	for _, tr := range t.posted {
		if tr.ReversesID != "" && t.reversedBy != tr.ID {
			return fmt.Errorf("ledger/postgres: transfer %s reverses %s, which was not marked reversed by it", tr.ID, tr.ReversesID)
		}
		if tr.CapturesHoldID != "" && t.hold.CaptureTransferID != tr.ID {
			return fmt.Errorf("ledger/postgres: transfer %s captures hold %s, which was not saved as captured by it", tr.ID, tr.CapturesHoldID)
		}
	}
	if c := t.hold.CaptureTransferID; t.lock.HoldID != "" && c != t.storedCapture {
		if tr, ok := t.posted[c]; !ok || tr.CapturesHoldID != t.hold.ID {
			return fmt.Errorf("ledger/postgres: hold %s was saved as captured by %s, not a transfer capturing it posted in this Apply", t.hold.ID, c)
		}
	}
	return nil
}
