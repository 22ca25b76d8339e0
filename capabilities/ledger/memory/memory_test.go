package memory_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/ledger"
	"plinth.dev/plinth/capabilities/ledger/ledgertest"
	"plinth.dev/plinth/capabilities/ledger/memory"
	"plinth.dev/plinth/gateway/idempotency"
)

// TestConformance holds the memory backend to the suite every ledger
// backend must pass.
func TestConformance(t *testing.T) {
	ledgertest.Run(t, func(*testing.T) ledgertest.Backend {
		return ledgertest.Backend{Store: memory.New(), Idempotency: idempotency.NewMemoryStore()}
	})
}

// The tests below hold the memory Store to what its Service does not show: an
// Apply whose change fails writes nothing, a Tx reads its own writes, and
// the Store refuses what a PostgreSQL schema's constraints would.

var now = time.Date(2025, time.March, 14, 15, 9, 26, 535897000, time.UTC)

const (
	idA       = "lac_01JQ00000000000000000000A1"
	idB       = "lac_01JQ00000000000000000000B1"
	idMissing = "lac_01JQ00000000000000000000Z9"
)

func newStore(t *testing.T) *memory.Store {
	t.Helper()
	s := memory.New()
	for _, id := range []string{idA, idB} {
		a := ledger.Account{ID: id, Currency: "USD", Policy: ledger.PolicyUnrestricted, State: ledger.AccountOpen, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateAccount(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// transfer returns a transfer of amount from idA to idB and its entries,
// for accounts a and b as they are.
func transfer(id string, amount int64, a, b ledger.Account) (ledger.Transfer, []ledger.Entry) {
	t := ledger.Transfer{ID: id, Currency: "USD", Legs: []ledger.Leg{{From: idA, To: idB, Amount: amount}}, PostedAt: now}
	return t, []ledger.Entry{
		{ID: id + "_a", AccountID: idA, TransferID: id, Seq: a.EntryCount + 1, Amount: -amount, BalanceAfter: a.Posted - amount, PostedAt: now},
		{ID: id + "_b", AccountID: idB, TransferID: id, Seq: b.EntryCount + 1, Amount: amount, BalanceAfter: b.Posted + amount, PostedAt: now},
	}
}

func TestCreateAccountTwice(t *testing.T) {
	s := newStore(t)
	err := s.CreateAccount(t.Context(), ledger.Account{ID: idA, Currency: "USD"})
	var exists *domainerr.AlreadyExistsError
	if !errors.As(err, &exists) {
		t.Errorf("CreateAccount of an existing id = %v", err)
	}
}

func TestApplyWritesAllOrNothing(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	boom := errors.New("boom")
	err := s.Apply(ctx, ledger.Lock{AccountIDs: []string{idB, idA}}, func(tx ledger.Tx) error {
		tr, entries := transfer("trf_1", 10, tx.Account(idA), tx.Account(idB))
		if err := tx.PostTransfer(tr, entries); err != nil {
			return err
		}
		// A Tx reads what it recorded.
		if a := tx.Account(idA); a.Posted != -10 || a.EntryCount != 1 {
			t.Errorf("inside the Apply, account A = %+v", a)
		}
		if err := tx.SaveHold(ledger.Hold{ID: "hld_1", AccountID: idB, Currency: "USD", Amount: 5, State: ledger.HoldActive, ExpiresAt: now.Add(time.Hour)}); err != nil {
			return err
		}
		if held, err := tx.HeldAt(idB, now); err != nil || held != 5 {
			t.Errorf("inside the Apply, HeldAt = %d, %v", held, err)
		}
		a := tx.Account(idA)
		a.State = ledger.AccountFrozen
		if err := tx.UpdateAccount(a); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Apply = %v, want the change's error as it is", err)
	}
	a, held, err := s.GetAccount(ctx, idA, now)
	if err != nil || a.Posted != 0 || a.EntryCount != 0 || a.State != ledger.AccountOpen || held != 0 {
		t.Errorf("after a failed Apply, account A = %+v, held %d, %v", a, held, err)
	}
	if _, err := s.GetTransfer(ctx, "trf_1"); err == nil {
		t.Error("a failed Apply stored its transfer")
	}
	if _, err := s.GetHold(ctx, "hld_1"); err == nil {
		t.Error("a failed Apply stored its hold")
	}
	if es, err := s.ListEntries(ctx, ledger.EntryQuery{AccountID: idB, Limit: 10}); err != nil || len(es) != 0 {
		t.Errorf("a failed Apply stored entries %v, %v", es, err)
	}

	// The same change, succeeding, writes everything.
	err = s.Apply(ctx, ledger.Lock{AccountIDs: []string{idA, idB}}, func(tx ledger.Tx) error {
		tr, entries := transfer("trf_1", 10, tx.Account(idA), tx.Account(idB))
		if err := tx.PostTransfer(tr, entries); err != nil {
			return err
		}
		return tx.SaveHold(ledger.Hold{ID: "hld_1", AccountID: idB, Currency: "USD", Amount: 5, State: ledger.HoldActive, ExpiresAt: now.Add(time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}
	b, held, err := s.GetAccount(ctx, idB, now)
	if err != nil || b.Posted != 10 || b.EntryCount != 1 || held != 5 {
		t.Errorf("account B = %+v, held %d, %v", b, held, err)
	}
	if _, held, _ := s.GetAccount(ctx, idB, now.Add(time.Hour)); held != 0 {
		t.Errorf("an expired hold still holds %d", held)
	}
	if sum, err := s.BalanceAt(ctx, idB, now.Add(-time.Microsecond)); err != nil || sum != 0 {
		t.Errorf("BalanceAt before = %d, %v", sum, err)
	}
	if sum, err := s.BalanceAt(ctx, idB, now); err != nil || sum != 10 {
		t.Errorf("BalanceAt = %d, %v", sum, err)
	}
	for _, q := range []ledger.TransferQuery{{Limit: 10}, {AccountID: idA, Limit: 10}, {AccountID: idB, Limit: 10}} {
		if ts, err := s.ListTransfers(ctx, q); err != nil || len(ts) != 1 || ts[0].ID != "trf_1" {
			t.Errorf("ListTransfers(%+v) = %v, %v", q, ts, err)
		}
	}
	if ts, err := s.ListTransfers(ctx, ledger.TransferQuery{AfterID: "trf_1", Limit: 10}); err != nil || len(ts) != 0 {
		t.Errorf("ListTransfers after the last = %v, %v", ts, err)
	}
}

func TestApplyNamesTheFirstMissingAccount(t *testing.T) {
	s := newStore(t)
	called := false
	err := s.Apply(t.Context(), ledger.Lock{AccountIDs: []string{idMissing, idA, "lac_01JQ00000000000000000000C0"}}, func(ledger.Tx) error {
		called = true
		return nil
	})
	want := domainerr.NotFoundError{Resource: "ledger account", ID: "lac_01JQ00000000000000000000C0"}
	var nf *domainerr.NotFoundError
	if !errors.As(err, &nf) || *nf != want || called {
		t.Errorf("Apply = %v (change called: %v), want %v", err, called, &want)
	}
	for name, read := range map[string]func(ledger.Tx) error{
		"Hold":     func(tx ledger.Tx) error { _, err := tx.Hold(); return err },
		"Transfer": func(tx ledger.Tx) error { _, err := tx.Transfer(); return err },
	} {
		err := s.Apply(t.Context(), ledger.Lock{HoldID: "hld_X", TransferID: "trf_X"}, read)
		if !errors.As(err, &nf) {
			t.Errorf("%s of a missing row = %v, want NotFound", name, err)
		}
	}
}

func TestTxRefusesWhatTheLockDoesNotName(t *testing.T) {
	s := newStore(t)
	for name, change := range map[string]func(ledger.Tx) error{
		"Account": func(tx ledger.Tx) error { tx.Account(idB); return nil },
		"HeldAt":  func(tx ledger.Tx) error { _, err := tx.HeldAt(idB, now); return err },
		"Hold":    func(tx ledger.Tx) error { _, err := tx.Hold(); return err },
		"PostTransfer": func(tx ledger.Tx) error {
			tr, entries := transfer("trf_1", 1, tx.Account(idA), ledger.Account{})
			return tx.PostTransfer(tr, entries)
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			_ = s.Apply(t.Context(), ledger.Lock{AccountIDs: []string{idA}}, change)
		})
	}
	t.Run("after Apply", func(t *testing.T) {
		var leaked ledger.Tx
		_ = s.Apply(t.Context(), ledger.Lock{AccountIDs: []string{idA}}, func(tx ledger.Tx) error { leaked = tx; return nil })
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
		}()
		leaked.Account(idA)
	})
}

func TestPostTransferRefusesInconsistentEntries(t *testing.T) {
	s := newStore(t)
	for name, spoil := range map[string]func(*ledger.Transfer, []ledger.Entry){
		"seq gap":          func(_ *ledger.Transfer, es []ledger.Entry) { es[0].Seq = 2 },
		"wrong balance":    func(_ *ledger.Transfer, es []ledger.Entry) { es[1].BalanceAfter = 11 },
		"not the legs":     func(_ *ledger.Transfer, es []ledger.Entry) { es[0].Amount, es[0].BalanceAfter = -9, -9 },
		"other transfer":   func(_ *ledger.Transfer, es []ledger.Entry) { es[1].TransferID = "trf_2" },
		"zero leg":         func(tr *ledger.Transfer, _ []ledger.Entry) { tr.Legs[0].Amount = 0 },
		"no legs":          func(tr *ledger.Transfer, _ []ledger.Entry) { tr.Legs = nil },
		"missing an entry": func(_ *ledger.Transfer, es []ledger.Entry) { es[1] = es[0] },
	} {
		t.Run(name, func(t *testing.T) {
			err := s.Apply(t.Context(), ledger.Lock{AccountIDs: []string{idA, idB}}, func(tx ledger.Tx) error {
				tr, entries := transfer("trf_1", 10, tx.Account(idA), tx.Account(idB))
				spoil(&tr, entries)
				return tx.PostTransfer(tr, entries)
			})
			if err == nil || !strings.HasPrefix(err.Error(), "ledger/memory:") {
				t.Errorf("PostTransfer = %v, want a refusal", err)
			}
		})
	}
	// A transfer id is unique.
	post := func(tx ledger.Tx) error {
		tr, entries := transfer("trf_1", 10, tx.Account(idA), tx.Account(idB))
		return tx.PostTransfer(tr, entries)
	}
	lock := ledger.Lock{AccountIDs: []string{idA, idB}}
	if err := s.Apply(t.Context(), lock, post); err != nil {
		t.Fatal(err)
	}
	var exists *domainerr.AlreadyExistsError
	if err := s.Apply(t.Context(), lock, post); !errors.As(err, &exists) {
		t.Errorf("second PostTransfer of one id = %v", err)
	}
}

func TestMarkReversed(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	lock := ledger.Lock{AccountIDs: []string{idA, idB}}
	if err := s.Apply(ctx, lock, func(tx ledger.Tx) error {
		tr, entries := transfer("trf_1", 10, tx.Account(idA), tx.Account(idB))
		return tx.PostTransfer(tr, entries)
	}); err != nil {
		t.Fatal(err)
	}
	lock.TransferID = "trf_1"
	if err := s.Apply(ctx, lock, func(tx ledger.Tx) error { return tx.MarkReversed("trf_nope") }); err == nil {
		t.Error("MarkReversed by a transfer that does not exist succeeded")
	}
	if err := s.Apply(ctx, lock, func(tx ledger.Tx) error {
		tr, entries := transfer("trf_2", 10, tx.Account(idA), tx.Account(idB))
		if err := tx.PostTransfer(tr, entries); err != nil {
			return err
		}
		if err := tx.MarkReversed("trf_2"); err != nil {
			return err
		}
		if tr, err := tx.Transfer(); err != nil || tr.ReversedByID != "trf_2" {
			t.Errorf("inside the Apply, Transfer = %+v, %v", tr, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if tr, err := s.GetTransfer(ctx, "trf_1"); err != nil || tr.ReversedByID != "trf_2" {
		t.Errorf("after MarkReversed, %+v, %v", tr, err)
	}
	if err := s.Apply(ctx, lock, func(tx ledger.Tx) error { return tx.MarkReversed("trf_2") }); err == nil {
		t.Error("a transfer was marked reversed twice")
	}
}
