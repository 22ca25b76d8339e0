package ledger

import (
	"math"
	"time"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/ids"
)

// This file holds the rules every movement of money obeys, whatever
// capability asked for it (MoveMoney, ReverseTransfer, CaptureHold), and the
// one place entries are made. All of it runs inside Store.Apply, over locked
// accounts, so a rule checked here still holds when the transfer is written.

// add returns a+b, and false if the sum does not fit in an int64.
func add(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// sub returns a-b, and false if the difference does not fit in an int64.
func sub(a, b int64) (int64, bool) {
	if b == math.MinInt64 {
		if a >= 0 {
			return 0, false
		}
		return a - b, true
	}
	return add(a, -b)
}

// available returns posted less held, the balance an account can spend.
// The Service never lets it leave int64 (see post and HoldFunds); should a
// store hand it numbers that would, it saturates rather than wrap.
func available(posted, held int64) int64 {
	if v, ok := sub(posted, held); ok {
		return v
	}
	if held > 0 {
		return math.MinInt64
	}
	return math.MaxInt64
}

// accountIDs returns the accounts t's legs touch, once each, in the order
// the legs name them (each leg's From before its To). Checks that report
// "the first offending account" report the first in this order.
func (t Transfer) accountIDs() []string {
	seen := make(map[string]bool, 2*len(t.Legs))
	var out []string
	for _, l := range t.Legs {
		for _, id := range [2]string{l.From, l.To} {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

// checkLegs refuses legs the contract's validation rules refuse, so that a
// Service called without the gateway in front of it (a test, another
// domain) cannot post them either.
func checkLegs(legs []Leg) error {
	if len(legs) == 0 {
		return &domainerr.InvalidArgumentError{Field: "legs", Description: "must hold at least one leg"}
	}
	for _, l := range legs {
		if l.Amount <= 0 {
			return &domainerr.InvalidArgumentError{Field: "legs", Description: "every leg's amount must be positive"}
		}
		if l.From == l.To {
			return &domainerr.InvalidArgumentError{Field: "legs", Description: "a leg must move money between two different accounts"}
		}
	}
	return nil
}

// post checks transfer t against the rules of every movement of money and
// records it with its entries, inside tx, at now. Every account t touches
// must be locked. action names what is refused when an account is not open
// ("move money"). capturing, if not nil, is the hold t captures: the money
// it reserves counts as available to t (t takes it out of the hold's
// account itself).
//
// The checks run in this order, each over the accounts in leg order (see
// accountIDs), and the first that fails is returned:
//
//  1. every account is open (*AccountNotOpenError);
//  2. every account is in t's currency (*CurrencyMismatchError);
//  3. the legs' total, each account's net change and its balance after it
//     fit in int64 (*OverflowError);
//  4. no account whose net change is negative goes below its floor
//     (*InsufficientFundsError); an account that gains, or whose legs
//     cancel out, is never refused for funds.
func post(tx Tx, t Transfer, now time.Time, action string, capturing *Hold) error {
	ids := t.accountIDs()
	accounts := make(map[string]Account, len(ids))
	for _, id := range ids {
		accounts[id] = tx.Account(id)
	}
	for _, id := range ids {
		if a := accounts[id]; a.State != AccountOpen {
			return &AccountNotOpenError{AccountID: id, State: a.State, Action: action}
		}
	}
	for _, id := range ids {
		if a := accounts[id]; a.Currency != t.Currency {
			return &CurrencyMismatchError{AccountID: id, AccountCurrency: a.Currency, Currency: t.Currency}
		}
	}

	var total int64
	net := make(map[string]int64, len(ids))
	for _, l := range t.Legs {
		var ok bool
		if total, ok = add(total, l.Amount); !ok {
			return &OverflowError{What: "the legs' total"}
		}
		if net[l.From], ok = sub(net[l.From], l.Amount); !ok {
			return &OverflowError{What: "the net change of ledger account " + l.From}
		}
		if net[l.To], ok = add(net[l.To], l.Amount); !ok {
			return &OverflowError{What: "the net change of ledger account " + l.To}
		}
	}
	for _, id := range ids {
		if _, ok := add(accounts[id].Posted, net[id]); !ok {
			return &OverflowError{What: "the balance of ledger account " + id}
		}
	}

	for _, id := range ids {
		change := net[id]
		if change >= 0 {
			continue
		}
		a := accounts[id]
		held, err := tx.HeldAt(id, now)
		if err != nil {
			return err
		}
		if capturing != nil && capturing.AccountID == id {
			held -= capturing.Amount
		}
		avail, ok := sub(a.Posted, held)
		if !ok {
			return &OverflowError{What: "the available balance of ledger account " + id}
		}
		after, ok := add(avail, change)
		floor, hasFloor := a.Floor()
		switch {
		case hasFloor && (!ok || after < floor):
			// change >= -total > math.MinInt64, so -change fits.
			return &InsufficientFundsError{AccountID: id, Currency: a.Currency, Available: avail, Floor: floor, Requested: -change}
		case !ok:
			// Keeps posted - held inside int64 for every account, so that
			// balances can always be shown.
			return &OverflowError{What: "the available balance of ledger account " + id}
		}
	}

	entries, err := entriesFor(t, accounts)
	if err != nil {
		return err
	}
	return tx.PostTransfer(t, entries)
}

// entriesFor returns the entries that post transfer t to accounts (which
// holds every account t touches, as they are before t): for each leg in
// order, one entry taking the amount out of From, then one giving it to To.
// Each entry's Seq follows its account's EntryCount, its BalanceAfter is the
// account's running posted balance, and it is posted when t is. It refuses
// with an *OverflowError a running balance that would leave int64, even if
// the account's balance after the whole transfer would not.
//
// It is the only place entries are made, so every store records the same
// entries for the same transfer.
func entriesFor(t Transfer, accounts map[string]Account) ([]Entry, error) {
	type running struct{ seq, balance int64 }
	state := make(map[string]running, len(accounts))
	for id, a := range accounts {
		state[id] = running{seq: a.EntryCount, balance: a.Posted}
	}
	entries := make([]Entry, 0, 2*len(t.Legs))
	for _, l := range t.Legs {
		for _, side := range [2]struct {
			account string
			amount  int64
		}{{l.From, -l.Amount}, {l.To, l.Amount}} {
			r := state[side.account]
			balance, ok := add(r.balance, side.amount)
			if !ok {
				return nil, &OverflowError{What: "the balance of ledger account " + side.account}
			}
			r = running{seq: r.seq + 1, balance: balance}
			state[side.account] = r
			entries = append(entries, Entry{
				ID:           ids.New("ent"),
				AccountID:    side.account,
				TransferID:   t.ID,
				Seq:          r.seq,
				Amount:       side.amount,
				BalanceAfter: r.balance,
				PostedAt:     t.PostedAt,
			})
		}
	}
	return entries, nil
}
