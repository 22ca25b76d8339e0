// Package memory is the in-memory ledger backend: the embedded default,
// what `plinth dev` runs on. It keeps the same invariants and returns the
// same errors as the PostgreSQL backend (both pass ledgertest.Run); what it
// does not do is survive a restart.
//
// One mutex guards the whole ledger. Apply holds it for writing while the
// Service decides, so every Apply is serializable with every other one, and
// reads hold it for reading, so they see only committed data. The change an
// Apply runs writes to an overlay (a tx), copied into the ledger only when
// the change returns nil:
//
//	Apply ── lock ── every account exists? ── change(tx) ──> nil:   commit the overlay
//	                                                   └──> error: drop it
package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/ledger"
	"plinth.dev/plinth/capabilities/registry"
)

// Store keeps a ledger in memory. Its zero value is not usable; call New.
type Store struct {
	mu          sync.RWMutex
	accounts    map[string]ledger.Account
	accountIDs  []string // every account id, sorted, for listing
	transfers   map[string]ledger.Transfer
	transferIDs []string            // every transfer id, sorted, for listing
	transfersOf map[string][]string // account id -> its transfers' ids, sorted
	entries     map[string][]ledger.Entry
	holds       map[string]ledger.Hold
	holdsOf     map[string][]string // account id -> its holds' ids
}

// The entries of an account are kept in Seq order, and Seq counts from 1
// without gaps, so entries[id][i].Seq == i+1: PostTransfer refuses anything
// else.

var _ ledger.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{
		accounts:    map[string]ledger.Account{},
		transfers:   map[string]ledger.Transfer{},
		transfersOf: map[string][]string{},
		entries:     map[string][]ledger.Entry{},
		holds:       map[string]ledger.Hold{},
		holdsOf:     map[string][]string{},
	}
}

// CreateAccount stores a new account.
func (s *Store) CreateAccount(_ context.Context, a ledger.Account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.accounts[a.ID]; exists {
		return &domainerr.AlreadyExistsError{Resource: "ledger account", ID: a.ID}
	}
	s.accounts[a.ID] = a
	s.accountIDs = insertSorted(s.accountIDs, a.ID)
	return nil
}

// GetAccount returns an account and the sum of its holds that reserve money
// at now.
func (s *Store) GetAccount(_ context.Context, id string, now time.Time) (ledger.Account, int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.accounts[id]
	if !ok {
		return ledger.Account{}, 0, ledger.AccountNotFound(id)
	}
	return a, s.heldAt(id, now), nil
}

// ListAccounts returns a page of accounts ordered by id.
func (s *Store) ListAccounts(_ context.Context, q ledger.AccountQuery, now time.Time) ([]ledger.AccountWithHeld, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var page []ledger.AccountWithHeld
	for _, id := range s.accountIDs[after(s.accountIDs, q.AfterID):] {
		if len(page) >= q.Limit {
			break
		}
		a := s.accounts[id]
		if q.CustomerID != "" && a.CustomerID != q.CustomerID {
			continue
		}
		page = append(page, ledger.AccountWithHeld{Account: a, Held: s.heldAt(id, now)})
	}
	return page, nil
}

// GetTransfer returns a transfer with its legs in their order.
func (s *Store) GetTransfer(_ context.Context, id string) (ledger.Transfer, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.transfers[id]
	if !ok {
		return ledger.Transfer{}, ledger.TransferNotFound(id)
	}
	return cloneTransfer(t), nil
}

// ListTransfers returns a page of transfers ordered by id.
func (s *Store) ListTransfers(_ context.Context, q ledger.TransferQuery) ([]ledger.Transfer, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := s.transferIDs
	if q.AccountID != "" {
		ids = s.transfersOf[q.AccountID]
	}
	var page []ledger.Transfer
	for _, id := range ids[after(ids, q.AfterID):] {
		if len(page) >= q.Limit {
			break
		}
		page = append(page, cloneTransfer(s.transfers[id]))
	}
	return page, nil
}

// GetHold returns a hold as stored.
func (s *Store) GetHold(_ context.Context, id string) (ledger.Hold, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.holds[id]
	if !ok {
		return ledger.Hold{}, ledger.HoldNotFound(id)
	}
	return h, nil
}

// ListEntries returns a page of an account's entries ordered by Seq.
func (s *Store) ListEntries(_ context.Context, q ledger.EntryQuery) ([]ledger.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.accounts[q.AccountID]; !ok {
		return nil, ledger.AccountNotFound(q.AccountID)
	}
	entries := s.entries[q.AccountID]
	start := int(min(max(q.AfterSeq, 0), int64(len(entries))))
	end := start + min(max(q.Limit, 0), len(entries)-start)
	if start == end {
		return nil, nil
	}
	return slices.Clone(entries[start:end]), nil
}

// BalanceAt returns the sum of an account's entries posted at or before at.
func (s *Store) BalanceAt(_ context.Context, accountID string, at time.Time) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.accounts[accountID]; !ok {
		return 0, ledger.AccountNotFound(accountID)
	}
	// Not the BalanceAfter of the last entry before at: clocks of different
	// gateways need not agree, so PostedAt need not grow with Seq.
	var sum int64
	for _, e := range s.entries[accountID] {
		if !e.PostedAt.After(at) {
			sum += e.Amount
		}
	}
	return sum, nil
}

// Apply runs change over the accounts, hold and transfer l names, with the
// whole ledger locked, and commits what change recorded if it returns nil.
// change must not call the Store: its mutex is held.
func (s *Store) Apply(ctx context.Context, l ledger.Lock, change func(ledger.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	accountIDs := slices.Clone(l.AccountIDs)
	slices.Sort(accountIDs)
	accountIDs = slices.Compact(accountIDs)
	locked := make(map[string]bool, len(accountIDs))
	for _, id := range accountIDs {
		if _, ok := s.accounts[id]; !ok {
			return ledger.AccountNotFound(id)
		}
		locked[id] = true
	}
	t := &tx{
		s:        s,
		lock:     l,
		locked:   locked,
		accounts: map[string]ledger.Account{},
		holds:    map[string]ledger.Hold{},
	}
	defer func() { t.closed = true }()
	if err := change(t); err != nil {
		return err
	}
	t.commit()
	return nil
}

// heldAt returns the sum of the committed holds of an account that reserve
// money at now. The caller holds s.mu.
func (s *Store) heldAt(accountID string, now time.Time) int64 {
	var sum int64
	for _, id := range s.holdsOf[accountID] {
		if h := s.holds[id]; h.ReservesAt(now) {
			sum += h.Amount
		}
	}
	return sum
}

// tx is the overlay one Apply's change reads and records through. Nothing
// it records reaches the Store before commit.
type tx struct {
	s      *Store
	lock   ledger.Lock
	locked map[string]bool // the accounts of lock, all of which exist
	closed bool            // Apply returned: the tx must not be used

	accounts   map[string]ledger.Account // locked accounts as changed
	transfers  []ledger.Transfer         // new transfers, in posting order
	entries    []ledger.Entry            // their entries, in posting order
	holds      map[string]ledger.Hold    // new holds, and the locked hold as changed
	newHolds   []string                  // the ids of new holds, in creation order
	reversedBy string                    // set by MarkReversed
}

var _ ledger.Tx = (*tx)(nil)

// mustBeOpen panics if the tx is used after its Apply returned: a change
// that leaks its Tx is a bug in the Service.
func (t *tx) mustBeOpen() {
	if t.closed {
		panic("ledger/memory: Tx used after its Apply returned")
	}
}

// mustBeLocked panics unless account id is in the Lock: the Store only
// serializes what the Lock names, so touching anything else is a bug in the
// Service.
func (t *tx) mustBeLocked(id string) {
	t.mustBeOpen()
	if !t.locked[id] {
		panic(fmt.Sprintf("ledger/memory: ledger account %s is not in the Lock of this Apply", id))
	}
}

func (t *tx) Account(id string) ledger.Account {
	t.mustBeLocked(id)
	if a, ok := t.accounts[id]; ok {
		return a
	}
	return t.s.accounts[id]
}

func (t *tx) HeldAt(accountID string, now time.Time) (int64, error) {
	t.mustBeLocked(accountID)
	var sum int64
	for _, id := range t.s.holdsOf[accountID] {
		if h := t.hold(id); h.ReservesAt(now) {
			sum += h.Amount
		}
	}
	for _, id := range t.newHolds {
		if h := t.holds[id]; h.AccountID == accountID && h.ReservesAt(now) {
			sum += h.Amount
		}
	}
	return sum, nil
}

// hold returns a committed hold as this tx has it.
func (t *tx) hold(id string) ledger.Hold {
	if h, ok := t.holds[id]; ok {
		return h
	}
	return t.s.holds[id]
}

func (t *tx) Hold() (ledger.Hold, error) {
	t.mustBeOpen()
	id := t.lock.HoldID
	if id == "" {
		panic("ledger/memory: Tx.Hold called, but the Lock names no hold")
	}
	if h, ok := t.holds[id]; ok {
		return h, nil
	}
	if h, ok := t.s.holds[id]; ok {
		return h, nil
	}
	return ledger.Hold{}, ledger.HoldNotFound(id)
}

func (t *tx) Transfer() (ledger.Transfer, error) {
	t.mustBeOpen()
	id := t.lock.TransferID
	if id == "" {
		panic("ledger/memory: Tx.Transfer called, but the Lock names no transfer")
	}
	tr, ok := t.s.transfers[id]
	if !ok {
		return ledger.Transfer{}, ledger.TransferNotFound(id)
	}
	tr = cloneTransfer(tr)
	if t.reversedBy != "" {
		tr.ReversedByID = t.reversedBy
	}
	return tr, nil
}

func (t *tx) UpdateAccount(a ledger.Account) error {
	cur := t.Account(a.ID) // panics unless locked
	cur.State = a.State
	cur.FreezeReason = a.FreezeReason
	cur.Description = a.Description
	cur.UpdatedAt = a.UpdatedAt
	t.accounts[a.ID] = cur
	return nil
}

// PostTransfer records a new transfer and its entries. It keeps the entries
// as the Service made them, but refuses, as the PostgreSQL schema's
// constraints do, entries that do not follow their accounts (Seq, running
// balance) or do not post exactly the transfer's legs.
func (t *tx) PostTransfer(tr ledger.Transfer, entries []ledger.Entry) error {
	t.mustBeOpen()
	if _, exists := t.s.transfers[tr.ID]; exists || slices.ContainsFunc(t.transfers, func(o ledger.Transfer) bool { return o.ID == tr.ID }) {
		return &domainerr.AlreadyExistsError{Resource: "transfer", ID: tr.ID}
	}
	if len(tr.Legs) == 0 {
		return fmt.Errorf("ledger/memory: transfer %s has no legs", tr.ID)
	}
	// Each account's net change, by the legs and by the entries; both
	// wrap alike on overflow, and the Service refuses overflow before.
	byLegs, byEntries := map[string]int64{}, map[string]int64{}
	for _, l := range tr.Legs {
		t.mustBeLocked(l.From)
		t.mustBeLocked(l.To)
		if l.Amount <= 0 || l.From == l.To {
			return fmt.Errorf("ledger/memory: transfer %s has an invalid leg %+v", tr.ID, l)
		}
		byLegs[l.From] -= l.Amount
		byLegs[l.To] += l.Amount
	}
	after := map[string]ledger.Account{}
	for _, e := range entries {
		t.mustBeLocked(e.AccountID)
		a, ok := after[e.AccountID]
		if !ok {
			a = t.Account(e.AccountID)
		}
		switch {
		case e.TransferID != tr.ID:
			return fmt.Errorf("ledger/memory: entry %s belongs to transfer %s, not %s", e.ID, e.TransferID, tr.ID)
		case e.Amount == 0:
			return fmt.Errorf("ledger/memory: entry %s moves nothing", e.ID)
		case e.Seq != a.EntryCount+1:
			return fmt.Errorf("ledger/memory: entry %s has Seq %d, ledger account %s expects %d", e.ID, e.Seq, e.AccountID, a.EntryCount+1)
		case e.BalanceAfter != a.Posted+e.Amount || (e.Amount > 0) != (e.BalanceAfter > a.Posted):
			return fmt.Errorf("ledger/memory: entry %s has BalanceAfter %d, ledger account %s would have %d", e.ID, e.BalanceAfter, e.AccountID, a.Posted+e.Amount)
		}
		a.EntryCount, a.Posted = e.Seq, e.BalanceAfter
		after[e.AccountID] = a
		byEntries[e.AccountID] += e.Amount
	}
	for id, net := range byLegs {
		if byEntries[id] != net {
			return fmt.Errorf("ledger/memory: the entries of transfer %s change ledger account %s by %d, its legs by %d", tr.ID, id, byEntries[id], net)
		}
	}
	for id := range byEntries {
		if _, ok := byLegs[id]; !ok {
			return fmt.Errorf("ledger/memory: transfer %s has an entry for ledger account %s, which none of its legs touches", tr.ID, id)
		}
	}
	for id, a := range after {
		t.accounts[id] = a
	}
	t.transfers = append(t.transfers, cloneTransfer(tr))
	t.entries = append(t.entries, entries...)
	return nil
}

func (t *tx) MarkReversed(reversalID string) error {
	tr, err := t.Transfer() // panics unless the Lock names a transfer
	if err != nil {
		return err
	}
	if tr.ReversedByID != "" {
		return fmt.Errorf("ledger/memory: transfer %s was reversed already, by %s", tr.ID, tr.ReversedByID)
	}
	_, stored := t.s.transfers[reversalID]
	if !stored && !slices.ContainsFunc(t.transfers, func(o ledger.Transfer) bool { return o.ID == reversalID }) {
		return fmt.Errorf("ledger/memory: the reversal %s of transfer %s does not exist", reversalID, tr.ID)
	}
	t.reversedBy = reversalID
	return nil
}

func (t *tx) SaveHold(h ledger.Hold) error {
	t.mustBeOpen()
	if h.State != ledger.HoldActive && h.State != ledger.HoldCaptured && h.State != ledger.HoldReleased {
		return fmt.Errorf("ledger/memory: hold %s cannot be stored %s", h.ID, h.State)
	}
	if h.ID == t.lock.HoldID {
		if cur, err := t.Hold(); err == nil {
			cur.State = h.State
			cur.CapturedAmount = h.CapturedAmount
			cur.CaptureTransferID = h.CaptureTransferID
			cur.UpdatedAt = h.UpdatedAt
			t.holds[h.ID] = cur
			return nil
		}
	}
	_, stored := t.s.holds[h.ID]
	_, staged := t.holds[h.ID]
	if stored || staged {
		return &domainerr.AlreadyExistsError{Resource: "hold", ID: h.ID}
	}
	t.mustBeLocked(h.AccountID)
	t.holds[h.ID] = h
	t.newHolds = append(t.newHolds, h.ID)
	return nil
}

// commit writes what the tx recorded into the Store, whose mutex the
// caller holds.
func (t *tx) commit() {
	s := t.s
	for id, a := range t.accounts {
		s.accounts[id] = a
	}
	for _, tr := range t.transfers {
		s.transfers[tr.ID] = tr
		s.transferIDs = insertSorted(s.transferIDs, tr.ID)
		touched := map[string]bool{}
		for _, l := range tr.Legs {
			for _, id := range [2]string{l.From, l.To} {
				if !touched[id] {
					touched[id] = true
					s.transfersOf[id] = insertSorted(s.transfersOf[id], tr.ID)
				}
			}
		}
	}
	for _, e := range t.entries {
		s.entries[e.AccountID] = append(s.entries[e.AccountID], e)
	}
	for id, h := range t.holds {
		s.holds[id] = h
	}
	for _, id := range t.newHolds {
		acc := t.holds[id].AccountID
		s.holdsOf[acc] = append(s.holdsOf[acc], id)
	}
	if t.reversedBy != "" {
		tr := s.transfers[t.lock.TransferID]
		tr.ReversedByID = t.reversedBy
		s.transfers[tr.ID] = tr
	}
}

// after returns the index of the first id in sorted ids greater than id.
func after(ids []string, id string) int {
	i, found := slices.BinarySearch(ids, id)
	if found {
		i++
	}
	return i
}

// insertSorted inserts id into sorted ids. Ids are ULIDs made in time
// order, so it nearly always appends.
func insertSorted(ids []string, id string) []string {
	i, _ := slices.BinarySearch(ids, id)
	return slices.Insert(ids, i, id)
}

// cloneTransfer copies a transfer so that callers never share its legs with
// what the store holds.
func cloneTransfer(t ledger.Transfer) ledger.Transfer {
	t.Legs = slices.Clone(t.Legs)
	return t
}

func init() {
	registry.RegisterBackend(registry.Backend{
		Domain: "ledger",
		Name:   "memory",
		Open: func(context.Context, registry.Env) (any, error) {
			return ledger.Store(New()), nil
		},
	})
}
