// Package ledger is the ledger domain: a double-entry ledger that never
// loses or duplicates a cent.
//
// The package holds the model (accounts, transfers, entries, holds), the
// capabilities (Service, one method per rpc of plinth.ledger.v1), the Store
// interface that backends implement, and the domain's typed errors. Every
// rule (balance floors, currencies, account states, holds, reversal once,
// overflow) is decided here, in the Service, inside Store.Apply; backends
// only lock, read and write. So the memory and PostgreSQL backends cannot
// disagree on a rule, and both pass ledgertest.Run.
//
// Money is int64 minor units of the transfer's or account's currency.
package ledger

import (
	"fmt"
	"time"
)

// BalancePolicy says how low an account's posted and available balances may
// go.
type BalancePolicy uint8

// The balance policies, in the contract's order.
const (
	PolicyUnspecified BalancePolicy = iota
	// PolicyNonNegative: not below minus the account's overdraft limit.
	PolicyNonNegative
	// PolicyUnrestricted: no floor (the platform's settlement accounts).
	PolicyUnrestricted
)

var policyNames = [...]string{"unspecified", "non_negative", "unrestricted"}

func (p BalancePolicy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("BalancePolicy(%d)", p)
}

// AccountState is where an account is in its lifecycle.
type AccountState uint8

// The account states, in the contract's order.
const (
	AccountStateUnspecified AccountState = iota
	AccountOpen
	AccountFrozen
	AccountClosed
)

var accountStateNames = [...]string{"unspecified", "open", "frozen", "closed"}

func (s AccountState) String() string {
	if int(s) < len(accountStateNames) {
		return accountStateNames[s]
	}
	return fmt.Sprintf("AccountState(%d)", s)
}

// HoldState is where a hold is in its lifecycle. HoldExpired is never
// stored: a hold is expired when it is HoldActive and its expiry has passed
// (see Hold.StateAt), so an expired hold frees itself without a job.
type HoldState uint8

// The hold states, in the contract's order.
const (
	HoldStateUnspecified HoldState = iota
	HoldActive
	HoldCaptured
	HoldReleased
	HoldExpired
)

var holdStateNames = [...]string{"unspecified", "active", "captured", "released", "expired"}

func (s HoldState) String() string {
	if int(s) < len(holdStateNames) {
		return holdStateNames[s]
	}
	return fmt.Sprintf("HoldState(%d)", s)
}

// Account is a ledger account.
type Account struct {
	ID             string // "lac_" + ULID
	Currency       string // ISO 4217
	CustomerID     string // "" for the platform's own accounts
	Policy         BalancePolicy
	OverdraftLimit int64 // >= 0; only with PolicyNonNegative
	State          AccountState
	FreezeReason   string // while frozen
	Description    string
	// Posted is the sum of the account's entries. Stores keep it in step
	// with the entries in the same atomic write.
	Posted int64
	// EntryCount is how many entries the account has; the next entry's Seq
	// is EntryCount+1. It orders an account's entries without relying on
	// clocks or id order across gateways.
	EntryCount int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Floor returns the lowest balance the account may reach, and false if it
// has none.
func (a Account) Floor() (int64, bool) {
	if a.Policy == PolicyUnrestricted {
		return 0, false
	}
	return -a.OverdraftLimit, true
}

// Leg moves a positive Amount from one account to another.
type Leg struct {
	From, To string
	Amount   int64
}

// Transfer is money moved between accounts, atomically.
type Transfer struct {
	ID             string // "trf_" + ULID
	Currency       string
	Legs           []Leg
	Description    string
	ReversesID     string // the transfer this one reverses, if any
	ReversedByID   string // the reversal of this transfer, if any
	CapturesHoldID string // the hold this transfer captured, if any
	PostedAt       time.Time
}

// Entry is one change of one account's posted balance. A leg makes two: a
// negative one for From and a positive one for To.
type Entry struct {
	ID           string // "ent_" + ULID
	AccountID    string
	TransferID   string
	Seq          int64 // 1, 2, 3... per account, in posting order
	Amount       int64 // signed
	BalanceAfter int64 // the account's Posted just after this entry
	PostedAt     time.Time
}

// Hold is money reserved in an account for a later capture.
type Hold struct {
	ID                string // "hld_" + ULID
	AccountID         string
	Currency          string
	Amount            int64
	State             HoldState // as stored: never HoldExpired
	CapturedAmount    int64
	CaptureTransferID string
	Description       string
	ExpiresAt         time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// StateAt returns the hold's state at now: an active hold whose expiry has
// passed is HoldExpired.
func (h Hold) StateAt(now time.Time) HoldState {
	if h.State == HoldActive && !now.Before(h.ExpiresAt) {
		return HoldExpired
	}
	return h.State
}

// ReservesAt reports whether the hold reserves its amount at now.
func (h Hold) ReservesAt(now time.Time) bool { return h.StateAt(now) == HoldActive }
