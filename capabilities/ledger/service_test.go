package ledger_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/ledger"
	"plinth.dev/plinth/capabilities/ledger/memory"
	"plinth.dev/plinth/capabilities/registry"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
)

// start is where every test's clock starts: with nanoseconds, so that a
// timestamp the service forgets to truncate shows up.
var start = time.Date(2025, time.March, 14, 15, 9, 26, 535897932, time.UTC)

// env is a Service over a fresh memory store, with a clock the test moves.
type env struct {
	t     *testing.T
	ctx   context.Context
	store *memory.Store
	svc   *ledger.Service
	mu    sync.Mutex
	now   time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ctx: t.Context(), store: memory.New(), now: start}
	e.svc = ledger.NewService(e.store, ledger.WithClock(e.clock))
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
	return e.now
}

// stamp is what the service records for the clock's current time.
func (e *env) stamp() time.Time { return e.clock().Truncate(time.Microsecond) }

func (e *env) open(currency string, policy ledgerv1.BalancePolicy, overdraft int64) *ledgerv1.LedgerAccount {
	e.t.Helper()
	res, err := e.svc.OpenLedgerAccount(e.ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
		Currency: currency, BalancePolicy: policy, OverdraftLimit: overdraft,
	}))
	if err != nil {
		e.t.Fatalf("OpenLedgerAccount: %v", err)
	}
	return res.Msg.GetAccount()
}

// customer opens a non-negative USD account.
func (e *env) customer() string {
	return e.open("USD", ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE, 0).GetId()
}

// platform opens an unrestricted USD account.
func (e *env) platform() string {
	return e.open("USD", ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED, 0).GetId()
}

func leg(from, to string, amount int64) *ledgerv1.Leg {
	return &ledgerv1.Leg{FromAccountId: from, ToAccountId: to, Amount: amount}
}

func (e *env) move(currency string, legs ...*ledgerv1.Leg) (*ledgerv1.Transfer, error) {
	res, err := e.svc.MoveMoney(e.ctx, connect.NewRequest(&ledgerv1.MoveMoneyRequest{Currency: currency, Legs: legs}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetTransfer(), nil
}

func (e *env) mustMove(legs ...*ledgerv1.Leg) *ledgerv1.Transfer {
	e.t.Helper()
	tr, err := e.move("USD", legs...)
	if err != nil {
		e.t.Fatalf("MoveMoney: %v", err)
	}
	return tr
}

// balances returns an account's posted and available balances, checking
// that GetBalance and GetLedgerAccount agree.
func (e *env) balances(id string) (posted, available int64) {
	e.t.Helper()
	b, err := e.svc.GetBalance(e.ctx, connect.NewRequest(&ledgerv1.GetBalanceRequest{AccountId: id}))
	if err != nil {
		e.t.Fatalf("GetBalance(%s): %v", id, err)
	}
	a, err := e.svc.GetLedgerAccount(e.ctx, connect.NewRequest(&ledgerv1.GetLedgerAccountRequest{AccountId: id}))
	if err != nil {
		e.t.Fatalf("GetLedgerAccount(%s): %v", id, err)
	}
	if a.Msg.GetAccount().GetPostedBalance() != b.Msg.GetPostedBalance() || a.Msg.GetAccount().GetAvailableBalance() != b.Msg.GetAvailableBalance() {
		e.t.Fatalf("GetBalance %v and GetLedgerAccount %v disagree", b.Msg, a.Msg.GetAccount())
	}
	return b.Msg.GetPostedBalance(), b.Msg.GetAvailableBalance()
}

func (e *env) wantBalances(id string, posted, available int64) {
	e.t.Helper()
	if p, a := e.balances(id); p != posted || a != available {
		e.t.Errorf("balances of %s = posted %d, available %d; want %d, %d", id, p, a, posted, available)
	}
}

func (e *env) hold(account string, amount int64, ttl time.Duration) (*ledgerv1.Hold, error) {
	res, err := e.svc.HoldFunds(e.ctx, connect.NewRequest(&ledgerv1.HoldFundsRequest{AccountId: account, Amount: amount, Ttl: durationpb.New(ttl)}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetHold(), nil
}

func (e *env) mustHold(account string, amount int64) *ledgerv1.Hold {
	e.t.Helper()
	h, err := e.hold(account, amount, time.Hour)
	if err != nil {
		e.t.Fatalf("HoldFunds: %v", err)
	}
	return h
}

func (e *env) capture(hold, to string, amount int64) (*ledgerv1.CaptureHoldResponse, error) {
	res, err := e.svc.CaptureHold(e.ctx, connect.NewRequest(&ledgerv1.CaptureHoldRequest{HoldId: hold, ToAccountId: to, Amount: amount}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func (e *env) release(hold string) (*ledgerv1.Hold, error) {
	res, err := e.svc.ReleaseHold(e.ctx, connect.NewRequest(&ledgerv1.ReleaseHoldRequest{HoldId: hold}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetHold(), nil
}

func (e *env) reverse(id string) (*ledgerv1.Transfer, error) {
	res, err := e.svc.ReverseTransfer(e.ctx, connect.NewRequest(&ledgerv1.ReverseTransferRequest{TransferId: id}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetReversal(), nil
}

func (e *env) freeze(id string) error {
	_, err := e.svc.FreezeLedgerAccount(e.ctx, connect.NewRequest(&ledgerv1.FreezeLedgerAccountRequest{AccountId: id, Reason: "fraud review"}))
	return err
}

func (e *env) unfreeze(id string) error {
	_, err := e.svc.UnfreezeLedgerAccount(e.ctx, connect.NewRequest(&ledgerv1.UnfreezeLedgerAccountRequest{AccountId: id}))
	return err
}

func (e *env) close(id string) (*ledgerv1.LedgerAccount, error) {
	res, err := e.svc.CloseLedgerAccount(e.ctx, connect.NewRequest(&ledgerv1.CloseLedgerAccountRequest{AccountId: id}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetAccount(), nil
}

func (e *env) entries(id string) []*ledgerv1.Entry {
	e.t.Helper()
	var all []*ledgerv1.Entry
	token := ""
	for {
		res, err := e.svc.ListAccountEntries(e.ctx, connect.NewRequest(&ledgerv1.ListAccountEntriesRequest{AccountId: id, PageToken: token, PageSize: 200}))
		if err != nil {
			e.t.Fatalf("ListAccountEntries(%s): %v", id, err)
		}
		all = append(all, res.Msg.GetEntries()...)
		if token = res.Msg.GetNextPageToken(); token == "" {
			return all
		}
	}
}

// errAs returns err as an E, failing the test if it is not one.
func errAs[E error](t *testing.T, err error) E {
	t.Helper()
	var target E
	if !errors.As(err, &target) {
		t.Fatalf("error = %v (%T), want a %T", err, err, target)
	}
	return target
}

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if ia := errAs[*domainerr.InvalidArgumentError](t, err); ia.Field != field {
		t.Errorf("InvalidArgumentError.Field = %q (%v), want %q", ia.Field, err, field)
	}
}

func wantNotOpen(t *testing.T, err error, account string, state ledger.AccountState, action string) {
	t.Helper()
	want := ledger.AccountNotOpenError{AccountID: account, State: state, Action: action}
	if got := errAs[*ledger.AccountNotOpenError](t, err); *got != want {
		t.Errorf("AccountNotOpenError = %+v, want %+v", *got, want)
	}
}

func wantNotFound(t *testing.T, err error, resource, id string) {
	t.Helper()
	want := domainerr.NotFoundError{Resource: resource, ID: id}
	if got := errAs[*domainerr.NotFoundError](t, err); *got != want {
		t.Errorf("NotFoundError = %+v, want %+v", *got, want)
	}
}

func TestRegistered(t *testing.T) {
	b, err := registry.LookupBackend("ledger", "memory")
	if err != nil {
		t.Fatal(err)
	}
	store, err := b.Open(t.Context(), registry.Env{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range registry.Domains() {
		if d.Name != "ledger" {
			continue
		}
		if path, h, err := d.Mount(store, registry.Env{}); err != nil || h == nil || !strings.Contains(path, "LedgerService") {
			t.Errorf("Mount = %q, %v, %v", path, h, err)
		}
		return
	}
	t.Error("domain ledger is not registered")
}

func TestOpenLedgerAccount(t *testing.T) {
	e := newEnv(t)
	res, err := e.svc.OpenLedgerAccount(e.ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
		Currency: "EUR", CustomerId: "cus_01JQ0000000000000000000001",
		BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE, OverdraftLimit: 500, Description: "wallet",
	}))
	if err != nil {
		t.Fatal(err)
	}
	a := res.Msg.GetAccount()
	if !strings.HasPrefix(a.GetId(), "lac_") || len(a.GetId()) != 30 || a.GetCurrency() != "EUR" ||
		a.GetCustomerId() != "cus_01JQ0000000000000000000001" || a.GetOverdraftLimit() != 500 ||
		a.GetBalancePolicy() != ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE ||
		a.GetState() != ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_OPEN || a.GetDescription() != "wallet" ||
		a.GetPostedBalance() != 0 || a.GetAvailableBalance() != 0 ||
		!a.GetCreatedAt().AsTime().Equal(e.stamp()) || !a.GetUpdatedAt().AsTime().Equal(e.stamp()) {
		t.Errorf("opened %v", a)
	}
	got, err := e.svc.GetLedgerAccount(e.ctx, connect.NewRequest(&ledgerv1.GetLedgerAccountRequest{AccountId: a.GetId()}))
	if err != nil || got.Msg.GetAccount().String() != a.String() {
		t.Errorf("GetLedgerAccount = %v, %v; want %v", got.Msg.GetAccount(), err, a)
	}

	for name, tc := range map[string]struct {
		req   *ledgerv1.OpenLedgerAccountRequest
		field string
	}{
		"unknown currency":     {&ledgerv1.OpenLedgerAccountRequest{Currency: "ABC", BalancePolicy: 1}, "currency"},
		"lower-case currency":  {&ledgerv1.OpenLedgerAccountRequest{Currency: "usd", BalancePolicy: 1}, "currency"},
		"withdrawn currency":   {&ledgerv1.OpenLedgerAccountRequest{Currency: "HRK", BalancePolicy: 1}, "currency"},
		"no policy":            {&ledgerv1.OpenLedgerAccountRequest{Currency: "USD"}, "balance_policy"},
		"undefined policy":     {&ledgerv1.OpenLedgerAccountRequest{Currency: "USD", BalancePolicy: 9}, "balance_policy"},
		"overdraft, no floor":  {&ledgerv1.OpenLedgerAccountRequest{Currency: "USD", BalancePolicy: 2, OverdraftLimit: 1}, "overdraft_limit"},
		"negative overdraft":   {&ledgerv1.OpenLedgerAccountRequest{Currency: "USD", BalancePolicy: 1, OverdraftLimit: -1}, "overdraft_limit"},
		"unknown, any policy":  {&ledgerv1.OpenLedgerAccountRequest{Currency: "XTS", BalancePolicy: 2}, "currency"},
		"precious metal":       {&ledgerv1.OpenLedgerAccountRequest{Currency: "XAU", BalancePolicy: 2}, "currency"},
		"empty currency":       {&ledgerv1.OpenLedgerAccountRequest{BalancePolicy: 2}, "currency"},
		"currency with spaces": {&ledgerv1.OpenLedgerAccountRequest{Currency: " USD", BalancePolicy: 2}, "currency"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.svc.OpenLedgerAccount(e.ctx, connect.NewRequest(tc.req))
			wantInvalid(t, err, tc.field)
		})
	}
	for _, code := range []string{"USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "KWD", "XOF", "ZWG", "XCG"} {
		if !ledger.IsCurrency(code) {
			t.Errorf("IsCurrency(%q) = false", code)
		}
	}

	_, err = e.svc.GetLedgerAccount(e.ctx, connect.NewRequest(&ledgerv1.GetLedgerAccountRequest{AccountId: "lac_01JQ0000000000000000000000"}))
	wantNotFound(t, err, "ledger account", "lac_01JQ0000000000000000000000")
}

func TestMoveMoneyPostsBalancedEntries(t *testing.T) {
	e := newEnv(t)
	bank, alice, bob := e.platform(), e.customer(), e.customer()
	e.mustMove(leg(bank, alice, 1000))
	e.advance(time.Second)
	tr := e.mustMove(leg(alice, bob, 300), leg(bank, bob, 50), leg(bob, alice, 20))

	if !strings.HasPrefix(tr.GetId(), "trf_") || tr.GetCurrency() != "USD" || len(tr.GetLegs()) != 3 ||
		!tr.GetPostedAt().AsTime().Equal(e.stamp()) {
		t.Errorf("transfer %v", tr)
	}
	got, err := e.svc.GetTransfer(e.ctx, connect.NewRequest(&ledgerv1.GetTransferRequest{TransferId: tr.GetId()}))
	if err != nil || got.Msg.GetTransfer().String() != tr.String() {
		t.Errorf("GetTransfer = %v, %v; want %v", got.Msg.GetTransfer(), err, tr)
	}
	e.wantBalances(bank, -1050, -1050)
	e.wantBalances(alice, 720, 720)
	e.wantBalances(bob, 330, 330)

	// The second transfer's entries, leg by leg: From then To.
	type want struct {
		amount, balanceAfter int64
	}
	check := func(account string, wants ...want) {
		t.Helper()
		es := e.entries(account)
		if len(es) != len(wants) {
			t.Fatalf("%d entries for %s, want %d", len(es), account, len(wants))
		}
		for i, w := range wants {
			en := es[i]
			if !strings.HasPrefix(en.GetId(), "ent_") || en.GetAccountId() != account || en.GetAmount() != w.amount || en.GetBalanceAfter() != w.balanceAfter {
				t.Errorf("entry %d of %s = %v, want amount %d, balance after %d", i, account, en, w.amount, w.balanceAfter)
			}
		}
	}
	check(bank, want{-1000, -1000}, want{-50, -1050})
	check(alice, want{1000, 1000}, want{-300, 700}, want{20, 720})
	check(bob, want{300, 300}, want{50, 350}, want{-20, 330})

	// The stored transfer does not share its legs with what callers get.
	st, err := e.store.GetTransfer(e.ctx, tr.GetId())
	if err != nil {
		t.Fatal(err)
	}
	st.Legs[0].Amount = 1
	if again, _ := e.store.GetTransfer(e.ctx, tr.GetId()); again.Legs[0].Amount != 300 {
		t.Error("a caller changed a stored transfer's legs")
	}
	// Seq counts each account's entries from 1.
	es, err := e.store.ListEntries(e.ctx, ledger.EntryQuery{AccountID: alice, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i, en := range es {
		if en.Seq != int64(i+1) {
			t.Errorf("entry %d has Seq %d", i, en.Seq)
		}
	}
}

func TestMoveMoneyFloors(t *testing.T) {
	e := newEnv(t)
	bank, alice, bob := e.platform(), e.customer(), e.customer()
	over := e.open("USD", ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE, 100).GetId()
	e.mustMove(leg(bank, alice, 100))

	_, err := e.move("USD", leg(alice, bob, 101))
	want := ledger.InsufficientFundsError{AccountID: alice, Currency: "USD", Available: 100, Floor: 0, Requested: 101}
	if got := errAs[*ledger.InsufficientFundsError](t, err); *got != want {
		t.Errorf("InsufficientFundsError = %+v, want %+v", *got, want)
	}
	if k, _ := domainerr.KindOf(err); k != domainerr.KindFailedPrecondition {
		t.Errorf("kind %v", k)
	}
	// Nothing of a refused transfer is written.
	e.wantBalances(alice, 100, 100)
	e.wantBalances(bob, 0, 0)

	// The requested amount is the account's net outflow across legs.
	_, err = e.move("USD", leg(alice, bob, 80), leg(bob, alice, 10), leg(alice, bank, 40))
	if got := errAs[*ledger.InsufficientFundsError](t, err); got.Requested != 110 || got.Available != 100 {
		t.Errorf("InsufficientFundsError = %+v, want Requested 110", *got)
	}
	// Money passing through an empty account in one transfer is fine: its
	// net change is zero.
	e.mustMove(leg(alice, bob, 100), leg(bob, over, 100))
	e.wantBalances(bob, 0, 0)

	// The overdraft lets the balance go to minus its limit, no further.
	e.mustMove(leg(over, bank, 200))
	e.wantBalances(over, -100, -100)
	_, err = e.move("USD", leg(over, bank, 1))
	want = ledger.InsufficientFundsError{AccountID: over, Currency: "USD", Available: -100, Floor: -100, Requested: 1}
	if got := errAs[*ledger.InsufficientFundsError](t, err); *got != want {
		t.Errorf("InsufficientFundsError = %+v, want %+v", *got, want)
	}
	// An account below nothing may still receive.
	e.mustMove(leg(bank, over, 1))

	// Holds count: the available balance is what may leave.
	e.mustMove(leg(bank, alice, 100))
	e.mustHold(alice, 60)
	_, err = e.move("USD", leg(alice, bob, 41))
	want = ledger.InsufficientFundsError{AccountID: alice, Currency: "USD", Available: 40, Floor: 0, Requested: 41}
	if got := errAs[*ledger.InsufficientFundsError](t, err); *got != want {
		t.Errorf("InsufficientFundsError = %+v, want %+v", *got, want)
	}
	e.mustMove(leg(alice, bob, 40))
	e.wantBalances(alice, 60, 0)

	// The first failing account in leg order is reported.
	_, err = e.move("USD", leg(bob, bank, 1000), leg(alice, bank, 1000))
	if got := errAs[*ledger.InsufficientFundsError](t, err); got.AccountID != bob {
		t.Errorf("reported %s, want the first leg's %s", got.AccountID, bob)
	}
}

func TestMoveMoneyRefusals(t *testing.T) {
	e := newEnv(t)
	bank, alice, bob := e.platform(), e.customer(), e.customer()
	euro := e.open("EUR", ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED, 0).GetId()
	e.mustMove(leg(bank, alice, 100))
	missing, missing2 := "lac_01JQ0000000000000000000009", "lac_01JQ0000000000000000000002"

	_, err := e.move("USD", leg(alice, missing, 1), leg(alice, missing2, 1))
	wantNotFound(t, err, "ledger account", missing2) // the first missing in id order
	_, err = e.move("usd", leg(alice, bob, 1))
	wantInvalid(t, err, "currency")
	_, err = e.move("USD")
	wantInvalid(t, err, "legs")
	_, err = e.move("USD", leg(alice, bob, 0))
	wantInvalid(t, err, "legs")
	_, err = e.move("USD", leg(alice, alice, 1))
	wantInvalid(t, err, "legs")

	_, err = e.move("USD", leg(alice, euro, 1))
	want := ledger.CurrencyMismatchError{AccountID: euro, AccountCurrency: "EUR", Currency: "USD"}
	if got := errAs[*ledger.CurrencyMismatchError](t, err); *got != want {
		t.Errorf("CurrencyMismatchError = %+v, want %+v", *got, want)
	}
	_, err = e.move("EUR", leg(euro, alice, 1))
	if got := errAs[*ledger.CurrencyMismatchError](t, err); got.AccountID != alice {
		t.Errorf("CurrencyMismatchError = %+v, want it for %s", *got, alice)
	}

	if err := e.freeze(bob); err != nil {
		t.Fatal(err)
	}
	_, err = e.move("USD", leg(alice, bob, 1))
	wantNotOpen(t, err, bob, ledger.AccountFrozen, "move money")
	_, err = e.move("USD", leg(bob, alice, 1))
	wantNotOpen(t, err, bob, ledger.AccountFrozen, "move money")
	if err := e.unfreeze(bob); err != nil {
		t.Fatal(err)
	}
	if _, err := e.close(bob); err != nil {
		t.Fatal(err)
	}
	_, err = e.move("USD", leg(alice, bob, 1))
	wantNotOpen(t, err, bob, ledger.AccountClosed, "move money")
	e.wantBalances(alice, 100, 100)
}

func TestMoveMoneyOverflow(t *testing.T) {
	e := newEnv(t)
	a, b, c := e.platform(), e.platform(), e.platform()

	_, err := e.move("USD", leg(a, b, math.MaxInt64), leg(a, c, 1))
	if got := errAs[*ledger.OverflowError](t, err); got.What != "the legs' total" {
		t.Errorf("OverflowError = %+v", *got)
	}
	e.mustMove(leg(a, b, math.MaxInt64))
	_, err = e.move("USD", leg(c, b, 1))
	if got := errAs[*ledger.OverflowError](t, err); !strings.Contains(got.What, b) {
		t.Errorf("OverflowError = %+v, want it about %s", *got, b)
	}
	// a is at -MaxInt64: one more cent is MinInt64, two would wrap.
	e.mustMove(leg(a, c, 1))
	_, err = e.move("USD", leg(a, c, 1))
	if got := errAs[*ledger.OverflowError](t, err); !strings.Contains(got.What, a) {
		t.Errorf("OverflowError = %+v, want it about %s", *got, a)
	}
	// A running balance that would overflow midway is refused even if the
	// transfer ends in range.
	_, err = e.move("USD", leg(c, b, 5), leg(b, c, 5))
	if got := errAs[*ledger.OverflowError](t, err); !strings.Contains(got.What, b) {
		t.Errorf("OverflowError = %+v, want it about %s", *got, b)
	}
	if k, _ := domainerr.KindOf(err); k != domainerr.KindInvalidArgument {
		t.Errorf("kind %v", k)
	}
	e.wantBalances(a, math.MinInt64, math.MinInt64)
	e.wantBalances(b, math.MaxInt64, math.MaxInt64)
	e.wantBalances(c, 1, 1)
}

func TestReverseTransfer(t *testing.T) {
	e := newEnv(t)
	bank, alice, bob := e.platform(), e.customer(), e.customer()
	e.mustMove(leg(bank, alice, 100))
	tr := e.mustMove(leg(alice, bob, 70), leg(bank, bob, 5))

	e.advance(time.Minute)
	rev, err := e.reverse(tr.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if rev.GetReversesTransferId() != tr.GetId() || rev.GetId() == tr.GetId() || rev.GetDescription() != "reversal of "+tr.GetId() ||
		len(rev.GetLegs()) != 2 || rev.GetLegs()[0].String() != leg(bob, alice, 70).String() || rev.GetLegs()[1].String() != leg(bob, bank, 5).String() ||
		!rev.GetPostedAt().AsTime().Equal(e.stamp()) {
		t.Errorf("reversal %v", rev)
	}
	e.wantBalances(alice, 100, 100)
	e.wantBalances(bob, 0, 0)
	e.wantBalances(bank, -100, -100)
	orig, err := e.svc.GetTransfer(e.ctx, connect.NewRequest(&ledgerv1.GetTransferRequest{TransferId: tr.GetId()}))
	if err != nil || orig.Msg.GetTransfer().GetReversedByTransferId() != rev.GetId() {
		t.Errorf("original after reversal: %v, %v", orig.Msg.GetTransfer(), err)
	}

	_, err = e.reverse(tr.GetId())
	want := ledger.AlreadyReversedError{TransferID: tr.GetId(), ReversalID: rev.GetId()}
	if got := errAs[*ledger.AlreadyReversedError](t, err); *got != want {
		t.Errorf("AlreadyReversedError = %+v, want %+v", *got, want)
	}
	_, err = e.reverse(rev.GetId())
	want = ledger.AlreadyReversedError{TransferID: rev.GetId(), ReversesID: tr.GetId()}
	if got := errAs[*ledger.AlreadyReversedError](t, err); *got != want {
		t.Errorf("AlreadyReversedError = %+v, want %+v", *got, want)
	}
	_, err = e.reverse("trf_01JQ0000000000000000000000")
	wantNotFound(t, err, "transfer", "trf_01JQ0000000000000000000000")

	// A reversal is a movement like any other: refused if the money was
	// spent, or an account is frozen.
	spent := e.mustMove(leg(alice, bob, 100))
	e.mustMove(leg(bob, bank, 60))
	_, err = e.reverse(spent.GetId())
	wantFunds := ledger.InsufficientFundsError{AccountID: bob, Currency: "USD", Available: 40, Floor: 0, Requested: 100}
	if got := errAs[*ledger.InsufficientFundsError](t, err); *got != wantFunds {
		t.Errorf("InsufficientFundsError = %+v, want %+v", *got, wantFunds)
	}
	e.mustMove(leg(bank, bob, 60))
	if err := e.freeze(alice); err != nil {
		t.Fatal(err)
	}
	_, err = e.reverse(spent.GetId())
	wantNotOpen(t, err, alice, ledger.AccountFrozen, "move money")
	if err := e.unfreeze(alice); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.ReverseTransfer(e.ctx, connect.NewRequest(&ledgerv1.ReverseTransferRequest{TransferId: spent.GetId(), Description: "refund"}))
	if err != nil || res.Msg.GetReversal().GetDescription() != "refund" {
		t.Errorf("ReverseTransfer = %v, %v", res, err)
	}
}

func TestHolds(t *testing.T) {
	e := newEnv(t)
	bank, alice, bob := e.platform(), e.customer(), e.customer()
	euro := e.open("EUR", ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE, 0).GetId()
	e.mustMove(leg(bank, alice, 100))

	h := e.mustHold(alice, 60)
	if !strings.HasPrefix(h.GetId(), "hld_") || h.GetAccountId() != alice || h.GetCurrency() != "USD" || h.GetAmount() != 60 ||
		h.GetState() != ledgerv1.HoldState_HOLD_STATE_ACTIVE || !h.GetExpiresAt().AsTime().Equal(e.stamp().Add(time.Hour)) ||
		!h.GetCreatedAt().AsTime().Equal(e.stamp()) {
		t.Errorf("hold %v", h)
	}
	e.wantBalances(alice, 100, 40)

	_, err := e.hold(alice, 41, time.Hour)
	want := ledger.InsufficientFundsError{AccountID: alice, Currency: "USD", Available: 40, Floor: 0, Requested: 41}
	if got := errAs[*ledger.InsufficientFundsError](t, err); *got != want {
		t.Errorf("InsufficientFundsError = %+v, want %+v", *got, want)
	}
	_, err = e.hold(alice, 0, time.Hour)
	wantInvalid(t, err, "amount")
	_, err = e.hold(alice, 1, 0)
	wantInvalid(t, err, "ttl")

	// Capture: more than held, to itself, to another currency: refused.
	_, err = e.capture(h.GetId(), bob, 61)
	wantInvalid(t, err, "amount")
	_, err = e.capture(h.GetId(), alice, 10)
	wantInvalid(t, err, "to_account_id")
	_, err = e.capture(h.GetId(), euro, 10)
	if got := errAs[*ledger.CurrencyMismatchError](t, err); got.AccountID != euro {
		t.Errorf("CurrencyMismatchError = %+v", *got)
	}
	if err := e.freeze(bob); err != nil {
		t.Fatal(err)
	}
	_, err = e.capture(h.GetId(), bob, 10)
	wantNotOpen(t, err, bob, ledger.AccountFrozen, "capture a hold")
	if err := e.unfreeze(bob); err != nil {
		t.Fatal(err)
	}

	// A partial capture moves what it captures and frees the rest.
	e.advance(time.Minute)
	res, err := e.capture(h.GetId(), bob, 25)
	if err != nil {
		t.Fatal(err)
	}
	if c := res.GetHold(); c.GetState() != ledgerv1.HoldState_HOLD_STATE_CAPTURED || c.GetCapturedAmount() != 25 ||
		c.GetCaptureTransferId() != res.GetTransfer().GetId() || !c.GetUpdatedAt().AsTime().Equal(e.stamp()) {
		t.Errorf("captured hold %v", c)
	}
	if tr := res.GetTransfer(); tr.GetCapturesHoldId() != h.GetId() || len(tr.GetLegs()) != 1 || tr.GetLegs()[0].String() != leg(alice, bob, 25).String() {
		t.Errorf("capture transfer %v", tr)
	}
	e.wantBalances(alice, 75, 75)
	e.wantBalances(bob, 25, 25)
	_, err = e.capture(h.GetId(), bob, 0)
	wantHoldNotActive(t, err, h.GetId(), ledger.HoldCaptured, "capture")
	_, err = e.release(h.GetId())
	wantHoldNotActive(t, err, h.GetId(), ledger.HoldCaptured, "release")

	// A capture can take all the account has: the hold reserved it.
	h2 := e.mustHold(alice, 75)
	e.wantBalances(alice, 75, 0)
	res, err = e.capture(h2.GetId(), bob, 0) // 0: all of it
	if err != nil || res.GetHold().GetCapturedAmount() != 75 {
		t.Fatalf("capture all: %v, %v", res, err)
	}
	e.wantBalances(alice, 0, 0)

	// Release frees the money, once; allowed on a frozen account, whose
	// holds cannot be captured.
	h3 := e.mustHold(bob, 20)
	h4 := e.mustHold(bob, 5)
	e.wantBalances(bob, 100, 75)
	if err := e.freeze(bob); err != nil {
		t.Fatal(err)
	}
	_, err = e.capture(h4.GetId(), alice, 0)
	wantNotOpen(t, err, bob, ledger.AccountFrozen, "capture a hold")
	_, err = e.hold(bob, 1, time.Hour)
	wantNotOpen(t, err, bob, ledger.AccountFrozen, "hold funds")
	rel, err := e.release(h3.GetId())
	if err != nil || rel.GetState() != ledgerv1.HoldState_HOLD_STATE_RELEASED {
		t.Fatalf("release: %v, %v", rel, err)
	}
	e.wantBalances(bob, 100, 95)
	_, err = e.release(h3.GetId())
	wantHoldNotActive(t, err, h3.GetId(), ledger.HoldReleased, "release")
	if err := e.unfreeze(bob); err != nil {
		t.Fatal(err)
	}

	// Expiry frees the money without any job, and shows.
	e.advance(time.Hour)
	e.wantBalances(bob, 100, 100)
	_, err = e.capture(h4.GetId(), alice, 0)
	wantHoldNotActive(t, err, h4.GetId(), ledger.HoldExpired, "capture")
	_, err = e.release(h4.GetId())
	wantHoldNotActive(t, err, h4.GetId(), ledger.HoldExpired, "release")

	_, err = e.capture("hld_01JQ0000000000000000000000", bob, 0)
	wantNotFound(t, err, "hold", "hld_01JQ0000000000000000000000")
	_, err = e.release("hld_01JQ0000000000000000000000")
	wantNotFound(t, err, "hold", "hld_01JQ0000000000000000000000")
	_, err = e.hold("lac_01JQ0000000000000000000000", 1, time.Hour)
	wantNotFound(t, err, "ledger account", "lac_01JQ0000000000000000000000")
	_, err = e.capture(h4.GetId(), "lac_01JQ0000000000000000000000", 0)
	wantNotFound(t, err, "ledger account", "lac_01JQ0000000000000000000000")

	// An unrestricted account may hold more than it has.
	if _, err := e.hold(bank, 1_000_000, time.Second); err != nil {
		t.Error(err)
	}
}

func wantHoldNotActive(t *testing.T, err error, id string, state ledger.HoldState, action string) {
	t.Helper()
	want := ledger.HoldNotActiveError{HoldID: id, State: state, Action: action}
	if got := errAs[*ledger.HoldNotActiveError](t, err); *got != want {
		t.Errorf("HoldNotActiveError = %+v, want %+v", *got, want)
	}
}

func TestAccountLifecycle(t *testing.T) {
	e := newEnv(t)
	bank, alice := e.platform(), e.customer()

	err := e.unfreeze(alice)
	wantNotOpen(t, err, alice, ledger.AccountOpen, "unfreeze")
	e.advance(time.Second)
	res, err := e.svc.FreezeLedgerAccount(e.ctx, connect.NewRequest(&ledgerv1.FreezeLedgerAccountRequest{AccountId: alice, Reason: "fraud review"}))
	if err != nil {
		t.Fatal(err)
	}
	if a := res.Msg.GetAccount(); a.GetState() != ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_FROZEN || !a.GetUpdatedAt().AsTime().Equal(e.stamp()) {
		t.Errorf("frozen %v", a)
	}
	if stored, _, _ := e.store.GetAccount(e.ctx, alice, e.clock()); stored.FreezeReason != "fraud review" {
		t.Errorf("FreezeReason = %q", stored.FreezeReason)
	}
	err = e.freeze(alice)
	wantNotOpen(t, err, alice, ledger.AccountFrozen, "freeze")
	if err := e.unfreeze(alice); err != nil {
		t.Fatal(err)
	}
	if stored, _, _ := e.store.GetAccount(e.ctx, alice, e.clock()); stored.FreezeReason != "" || stored.State != ledger.AccountOpen {
		t.Errorf("unfrozen %+v", stored)
	}

	// Not empty: a balance, or a hold.
	e.mustMove(leg(bank, alice, 10))
	h := e.mustHold(alice, 10)
	_, err = e.close(alice)
	wantEmpty := ledger.AccountNotEmptyError{AccountID: alice, Currency: "USD", Posted: 10, ActiveHolds: 10}
	if got := errAs[*ledger.AccountNotEmptyError](t, err); *got != wantEmpty {
		t.Errorf("AccountNotEmptyError = %+v, want %+v", *got, wantEmpty)
	}
	if _, err := e.release(h.GetId()); err != nil {
		t.Fatal(err)
	}
	e.mustMove(leg(alice, bank, 10))

	over := e.open("USD", ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE, 50).GetId()
	if _, err := e.hold(over, 20, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err = e.close(over)
	wantEmpty = ledger.AccountNotEmptyError{AccountID: over, Currency: "USD", Posted: 0, ActiveHolds: 20}
	if got := errAs[*ledger.AccountNotEmptyError](t, err); *got != wantEmpty {
		t.Errorf("AccountNotEmptyError = %+v, want %+v", *got, wantEmpty)
	}
	e.advance(time.Minute) // the hold expires
	if _, err := e.close(over); err != nil {
		t.Errorf("close after the hold expired: %v", err)
	}

	// A frozen account can be closed; a closed one can't change any more.
	if err := e.freeze(alice); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Second)
	closed, err := e.close(alice)
	if err != nil {
		t.Fatal(err)
	}
	if closed.GetState() != ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED || !closed.GetUpdatedAt().AsTime().Equal(e.stamp()) {
		t.Errorf("closed %v", closed)
	}
	_, err = e.close(alice)
	wantNotOpen(t, err, alice, ledger.AccountClosed, "close")
	wantNotOpen(t, e.freeze(alice), alice, ledger.AccountClosed, "freeze")
	wantNotOpen(t, e.unfreeze(alice), alice, ledger.AccountClosed, "unfreeze")
	_, err = e.hold(alice, 1, time.Hour)
	wantNotOpen(t, err, alice, ledger.AccountClosed, "hold funds")
	_, err = e.close("lac_01JQ0000000000000000000000")
	wantNotFound(t, err, "ledger account", "lac_01JQ0000000000000000000000")
}

func TestListings(t *testing.T) {
	e := newEnv(t)
	const cus1, cus2 = "cus_01JQ0000000000000000000001", "cus_01JQ0000000000000000000002"
	bank := e.platform()
	var mine []string
	for i := range 7 {
		cus := cus2
		if i%2 == 0 {
			cus = cus1
		}
		res, err := e.svc.OpenLedgerAccount(e.ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
			Currency: "USD", CustomerId: cus, BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE,
		}))
		if err != nil {
			t.Fatal(err)
		}
		if cus == cus1 {
			mine = append(mine, res.Msg.GetAccount().GetId())
		}
	}
	e.mustMove(leg(bank, mine[0], 30))
	e.mustHold(mine[0], 10)

	var got []string
	token := ""
	for pages := 0; ; pages++ {
		res, err := e.svc.ListLedgerAccounts(e.ctx, connect.NewRequest(&ledgerv1.ListLedgerAccountsRequest{CustomerId: cus1, PageSize: 3, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range res.Msg.GetAccounts() {
			got = append(got, a.GetId())
			if a.GetId() == mine[0] && (a.GetPostedBalance() != 30 || a.GetAvailableBalance() != 20) {
				t.Errorf("listed %v", a)
			}
		}
		if token = res.Msg.GetNextPageToken(); token == "" {
			if pages != 1 {
				t.Errorf("%d pages, want 2", pages+1)
			}
			break
		}
		_, err = e.svc.ListLedgerAccounts(e.ctx, connect.NewRequest(&ledgerv1.ListLedgerAccountsRequest{CustomerId: cus2, PageToken: token}))
		wantInvalid(t, err, "page_token")
	}
	if strings.Join(got, ",") != strings.Join(mine, ",") {
		t.Errorf("listed %v, want %v", got, mine)
	}
	all, err := e.svc.ListLedgerAccounts(e.ctx, connect.NewRequest(&ledgerv1.ListLedgerAccountsRequest{}))
	if err != nil || len(all.Msg.GetAccounts()) != 8 || all.Msg.GetNextPageToken() != "" {
		t.Errorf("all accounts: %d, %v", len(all.Msg.GetAccounts()), err)
	}

	// Transfers, all or one account's, in id order.
	var ids []string
	for i := range 5 {
		ids = append(ids, e.mustMove(leg(bank, mine[i%2+1], int64(i+1))).GetId())
	}
	res, err := e.svc.ListTransfers(e.ctx, connect.NewRequest(&ledgerv1.ListTransfersRequest{AccountId: mine[1], PageSize: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.Msg.GetTransfers(); len(tr) != 2 || tr[0].GetId() != ids[0] || tr[1].GetId() != ids[2] || res.Msg.GetNextPageToken() == "" {
		t.Errorf("first page %v", tr)
	}
	res, err = e.svc.ListTransfers(e.ctx, connect.NewRequest(&ledgerv1.ListTransfersRequest{AccountId: mine[1], PageSize: 2, PageToken: res.Msg.GetNextPageToken()}))
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.Msg.GetTransfers(); len(tr) != 1 || tr[0].GetId() != ids[4] || res.Msg.GetNextPageToken() != "" {
		t.Errorf("second page %v", tr)
	}
	every, err := e.svc.ListTransfers(e.ctx, connect.NewRequest(&ledgerv1.ListTransfersRequest{}))
	if err != nil || len(every.Msg.GetTransfers()) != 6 {
		t.Errorf("every transfer: %d, %v", len(every.Msg.GetTransfers()), err)
	}

	// Entries, in pages, oldest first.
	for i := range 5 {
		e.mustMove(leg(bank, mine[3], int64(i+1)))
	}
	var amounts []int64
	token = ""
	for {
		res, err := e.svc.ListAccountEntries(e.ctx, connect.NewRequest(&ledgerv1.ListAccountEntriesRequest{AccountId: mine[3], PageSize: 2, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range res.Msg.GetEntries() {
			amounts = append(amounts, en.GetAmount())
		}
		if token = res.Msg.GetNextPageToken(); token == "" {
			break
		}
		_, err = e.svc.ListAccountEntries(e.ctx, connect.NewRequest(&ledgerv1.ListAccountEntriesRequest{AccountId: mine[2], PageToken: token}))
		wantInvalid(t, err, "page_token")
	}
	if len(amounts) != 5 || amounts[0] != 1 || amounts[4] != 5 {
		t.Errorf("entry amounts %v", amounts)
	}
	_, err = e.svc.ListAccountEntries(e.ctx, connect.NewRequest(&ledgerv1.ListAccountEntriesRequest{AccountId: mine[3], PageToken: "garbage"}))
	wantInvalid(t, err, "page_token")
	_, err = e.svc.ListAccountEntries(e.ctx, connect.NewRequest(&ledgerv1.ListAccountEntriesRequest{AccountId: "lac_01JQ0000000000000000000000"}))
	wantNotFound(t, err, "ledger account", "lac_01JQ0000000000000000000000")
	empty, err := e.svc.ListAccountEntries(e.ctx, connect.NewRequest(&ledgerv1.ListAccountEntriesRequest{AccountId: e.customer()}))
	if err != nil || len(empty.Msg.GetEntries()) != 0 || empty.Msg.GetNextPageToken() != "" {
		t.Errorf("entries of an empty account: %v, %v", empty, err)
	}
}

func TestGetBalanceAt(t *testing.T) {
	e := newEnv(t)
	bank, alice := e.platform(), e.customer()
	before := e.clock()
	e.advance(time.Second)
	e.mustMove(leg(bank, alice, 100))
	first := e.clock()
	e.advance(time.Second)
	e.mustMove(leg(alice, bank, 30))
	e.advance(time.Second)

	at := func(ts time.Time) int64 {
		t.Helper()
		res, err := e.svc.GetBalanceAt(e.ctx, connect.NewRequest(&ledgerv1.GetBalanceAtRequest{AccountId: alice, At: timestamppb.New(ts)}))
		if err != nil {
			t.Fatal(err)
		}
		if res.Msg.GetCurrency() != "USD" {
			t.Errorf("currency %q", res.Msg.GetCurrency())
		}
		return res.Msg.GetPostedBalance()
	}
	if got := at(before); got != 0 {
		t.Errorf("before = %d", got)
	}
	// The first entry is stamped at first truncated to the microsecond:
	// at first itself (finer) it counts, a microsecond earlier it doesn't.
	if got := at(first); got != 100 {
		t.Errorf("at first = %d", got)
	}
	if got := at(first.Truncate(time.Microsecond).Add(-time.Nanosecond)); got != 0 {
		t.Errorf("just before first = %d", got)
	}
	if got := at(e.clock()); got != 70 {
		t.Errorf("now = %d", got)
	}
	_, err := e.svc.GetBalanceAt(e.ctx, connect.NewRequest(&ledgerv1.GetBalanceAtRequest{AccountId: alice}))
	wantInvalid(t, err, "at")
	_, err = e.svc.GetBalanceAt(e.ctx, connect.NewRequest(&ledgerv1.GetBalanceAtRequest{AccountId: "lac_01JQ0000000000000000000000", At: timestamppb.Now()}))
	wantNotFound(t, err, "ledger account", "lac_01JQ0000000000000000000000")
}

// TestConcurrentMovementsNeverOverspend races many transfers out of one
// account with limited funds: exactly as many succeed as the funds allow,
// and the ledger still balances.
func TestConcurrentMovementsNeverOverspend(t *testing.T) {
	e := newEnv(t)
	bank, alice := e.platform(), e.customer()
	sinks := []string{e.customer(), e.customer(), e.customer()}
	e.mustMove(leg(bank, alice, 1000))

	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			// Each moves 30 out of alice, via a leg that also gives her
			// something back, and holds 10.
			_, err := e.move("USD", leg(alice, sinks[i%3], 40), leg(bank, alice, 10))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, new(*ledger.InsufficientFundsError)):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 33 || refused.Load() != 31 {
		t.Errorf("%d succeeded, %d refused; want 33, 31", ok.Load(), refused.Load())
	}
	var sum int64
	for _, id := range append([]string{bank, alice}, sinks...) {
		p, _ := e.balances(id)
		sum += p
		es := e.entries(id)
		var running int64
		for i, en := range es {
			running += en.GetAmount()
			if en.GetBalanceAfter() != running {
				t.Errorf("entry %d of %s: balance after %d, running sum %d", i, id, en.GetBalanceAfter(), running)
			}
		}
		if running != p {
			t.Errorf("%s: entries sum to %d, posted %d", id, running, p)
		}
	}
	if sum != 0 {
		t.Errorf("balances sum to %d", sum)
	}
	e.wantBalances(alice, 10, 10)
}

// TestConcurrentOnce races captures, releases and reversals of the same
// hold and transfer: each happens once.
func TestConcurrentOnce(t *testing.T) {
	e := newEnv(t)
	bank, alice, bob := e.platform(), e.customer(), e.customer()
	e.mustMove(leg(bank, alice, 100))
	h := e.mustHold(alice, 50)
	tr := e.mustMove(leg(bank, bob, 7))

	var captured, released, reversed atomic.Int64
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				if _, err = e.capture(h.GetId(), bob, 0); err == nil {
					captured.Add(1)
				}
			} else if _, err = e.release(h.GetId()); err == nil {
				released.Add(1)
			}
			if err != nil && !errors.As(err, new(*ledger.HoldNotActiveError)) {
				t.Error(err)
			}
		})
		wg.Go(func() {
			_, err := e.reverse(tr.GetId())
			switch {
			case err == nil:
				reversed.Add(1)
			case !errors.As(err, new(*ledger.AlreadyReversedError)):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if captured.Load()+released.Load() != 1 || reversed.Load() != 1 {
		t.Errorf("captured %d, released %d, reversed %d times", captured.Load(), released.Load(), reversed.Load())
	}
	e.wantBalances(bob, 50*captured.Load(), 50*captured.Load())
}
