package ledger

import (
	"context"
	"time"
)

// Store keeps the ledger. Backends implement it; every implementation must
// pass ledgertest.Run.
//
// A Store may refuse what would break the ledger's invariants even if the
// Service never asks for it (an entry that does not follow on from its
// account's last one, a transfer whose entries do not sum to zero): such a
// refusal is a plain error, a bug to fix, not a domain error. A duplicate
// id of an account, transfer or hold is a *domainerr.AlreadyExistsError.
//
// Reads outside Apply see committed data. Every change goes through Apply,
// which gives the Service a Tx over locked rows and writes what the Service
// recorded atomically: all of it or nothing. Methods that name an account,
// transfer or hold that does not exist return the *domainerr.NotFoundError
// of AccountNotFound, TransferNotFound or HoldNotFound. A backend that cannot
// reach what it stores in returns a *domainerr.UnavailableError; one that
// lost a race it cannot wait out (a serialization failure, a deadlock)
// returns a domain error of domainerr.KindAborted, and the caller may retry.
type Store interface {
	// CreateAccount stores a new account.
	CreateAccount(ctx context.Context, a Account) error

	// GetAccount returns an account and the sum of its holds that reserve
	// money at now (see Hold.ReservesAt).
	GetAccount(ctx context.Context, id string, now time.Time) (Account, int64, error)

	// ListAccounts returns at most q.Limit accounts with ids greater than
	// q.AfterID, ordered by id, only q.CustomerID's unless it is empty,
	// each with the sum of its holds that reserve money at now.
	ListAccounts(ctx context.Context, q AccountQuery, now time.Time) ([]AccountWithHeld, error)

	// GetTransfer returns a transfer with its legs in their order.
	GetTransfer(ctx context.Context, id string) (Transfer, error)

	// ListTransfers returns at most q.Limit transfers with ids greater than
	// q.AfterID, ordered by id, only those with a leg to or from
	// q.AccountID unless it is empty.
	ListTransfers(ctx context.Context, q TransferQuery) ([]Transfer, error)

	// GetHold returns a hold as stored.
	GetHold(ctx context.Context, id string) (Hold, error)

	// ListEntries returns at most q.Limit entries of account q.AccountID
	// with Seq greater than q.AfterSeq, ordered by Seq. The account must
	// exist.
	ListEntries(ctx context.Context, q EntryQuery) ([]Entry, error)

	// BalanceAt returns the sum of the entries of an account posted at or
	// before at. The account must exist.
	BalanceAt(ctx context.Context, accountID string, at time.Time) (int64, error)

	// Apply locks what l names, calls change with a Tx over it, and
	// writes what change recorded, atomically. Accounts are locked in id
	// order, then the hold, then the transfer, so that concurrent Applies
	// never deadlock one another; every account named must exist (else the
	// NotFound error of the first missing one, and change is not called).
	// A locked account can't change under change's feet; neither can a
	// locked hold or transfer. If change returns an error, nothing is
	// written and Apply returns that error.
	Apply(ctx context.Context, l Lock, change func(Tx) error) error
}

// Lock names what an Apply changes.
type Lock struct {
	AccountIDs []string // in any order, duplicates allowed
	HoldID     string   // "" for none
	TransferID string   // "" for none
	// HeldAsOf, if not zero, is the instant the Service will ask HeldAt
	// about: a Store may read the locked accounts' reserving holds as of it
	// together with the locks (PostgreSQL does, saving a round trip per
	// account), as long as HeldAt stays right after SaveHold.
	HeldAsOf time.Time
}

// Tx is what change sees and records inside Store.Apply. Reads return the
// locked rows as they are, including what change recorded before.
type Tx interface {
	// Account returns a locked account. Asking for an account not in the
	// Lock is a programming error and panics.
	Account(id string) Account
	// HeldAt returns the sum of a locked account's holds that reserve
	// money at now.
	HeldAt(accountID string, now time.Time) (int64, error)
	// Hold returns the locked hold. Asking when the Lock names none is a
	// programming error and panics.
	Hold() (Hold, error)
	// Transfer returns the locked transfer. Asking when the Lock names none
	// is a programming error and panics.
	Transfer() (Transfer, error)

	// UpdateAccount records a locked account's new State, FreezeReason,
	// Description and UpdatedAt. Balances change only through
	// PostTransfer.
	UpdateAccount(a Account) error
	// PostTransfer records a new transfer and its entries, and sets each
	// locked account's Posted and EntryCount to the BalanceAfter and Seq
	// of its last entry. The Service computes the entries (see
	// ledger.entriesFor); the Store keeps them as they are.
	PostTransfer(t Transfer, entries []Entry) error
	// MarkReversed records that the locked transfer was reversed by
	// reversalID, a reversal posted in the same Apply whose ReversesID is
	// the locked transfer. (A PostTransfer whose ReversesID or
	// CapturesHoldID is set must name the locked transfer or hold.)
	MarkReversed(reversalID string) error
	// SaveHold records a new hold, or the new state of the locked hold
	// (State, CapturedAmount, CaptureTransferID, UpdatedAt).
	SaveHold(h Hold) error
}

// AccountWithHeld is an account and the sum of its reserving holds.
type AccountWithHeld struct {
	Account
	Held int64
}

// AccountQuery selects a page of accounts.
type AccountQuery struct {
	AfterID    string
	CustomerID string
	Limit      int
}

// TransferQuery selects a page of transfers.
type TransferQuery struct {
	AfterID   string
	AccountID string
	Limit     int
}

// EntryQuery selects a page of an account's entries.
type EntryQuery struct {
	AccountID string
	AfterSeq  int64
	Limit     int
}
