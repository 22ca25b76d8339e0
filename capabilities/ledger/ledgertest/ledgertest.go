// Package ledgertest is the conformance suite of the ledger domain: every
// ledger.Store must pass Run, the memory backend included, in the spirit of
// SpiceDB's pkg/datastore/test.
//
//	func TestConformance(t *testing.T) {
//		ledgertest.Run(t, func(t *testing.T) ledgertest.Backend {
//			return ledgertest.Backend{Store: memory.New(), Idempotency: idempotency.NewMemoryStore()}
//		})
//	}
//
// The suite drives the capabilities the way a product team does: through a
// ledgerv1connect client, over HTTP, into the service mounted with the
// idempotency interceptor of the gateway. So every rule is exercised on the
// real wire path, and "a payment is applied exactly once per idempotency
// key" is tested together with the backend that must keep that promise (on
// PostgreSQL the key's record commits in the transaction of the effect):
//
//	ledgerv1connect client ── HTTP ──> httptest server
//	  ┌───────────────────────────────────────────────────────┐
//	  │ idempotency (Backend.Idempotency): key, replay        │
//	  │ ┌───────────────────────────────────────────────────┐ │
//	  │ │ gateway errors: domain error -> code + ErrorInfo  │ │
//	  │ │ ┌───────────────────────────────────────────────┐ │ │
//	  │ │ │ ledger.Service over Backend.Store             │ │ │
//
// The middle layer is the gateway's own error mapping
// (gateway.NewErrorInterceptor), innermost as in the gateway, so that the
// idempotency layer records exactly the answer the caller gets, and
// refusals are asserted by their Connect code and by the reason and
// metadata of their google.rpc.ErrorInfo, as callers see them. Every
// mutating call sends a fresh Idempotency-Key unless the test is about
// retries. Time comes from a clock each subtest moves by hand: holds expire
// because a test moved the clock past their expiry, never because it slept.
//
// Every subtest runs in parallel with the others on a backend of its own,
// and keeps its work modest (the concurrency test makes 16 callers move
// money 25 times each), so that a backend over a real database runs the
// suite in seconds. Most subtests end by auditing the books (checkBooks):
// every account's entries chain up to its balance, every transfer's
// entries sum to zero and match its legs, no floor is crossed, and the
// balances of each currency sum to zero.
package ledgertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/ledger"
	"plinth.dev/plinth/gateway"
	"plinth.dev/plinth/gateway/idempotency"
	"plinth.dev/plinth/internal/pagetoken"
	"plinth.dev/plinth/internal/pagetoken/pagetokentest"
	"plinth.dev/plinth/internal/testclock"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
)

// Backend is what the suite runs on: a ledger store and the idempotency
// store that goes with it (on PostgreSQL, one whose records commit in the
// same transaction as the ledger's writes).
type Backend struct {
	Store       ledger.Store
	Idempotency idempotency.Store
}

// Run runs the conformance suite against the backends that newBackend
// returns. newBackend is called once per subtest, possibly from several
// subtests at once, and must return empty stores of their own each time.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	s := suite{newBackend: newBackend}

	s.run(t, "OpenLedgerAccount/RoundTrip", testOpenRoundTrip)
	s.run(t, "OpenLedgerAccount/UnknownCurrency", testOpenUnknownCurrency)
	s.run(t, "UnknownIDs", testUnknownIDs)

	s.run(t, "MoveMoney/OneLeg", testMoveOneLeg)
	s.run(t, "MoveMoney/EntriesPerLegInOrder", testMoveEntriesPerLeg)
	s.run(t, "MoveMoney/InsufficientFunds", testMoveInsufficientFunds)
	s.run(t, "MoveMoney/InsufficientFundsCountsEveryLeg", testMoveInsufficientFundsNet)
	s.run(t, "MoveMoney/OverdraftLimitExactly", testMoveOverdraftBoundary)
	s.run(t, "MoveMoney/UnrestrictedHasNoFloor", testMoveUnrestricted)
	s.run(t, "MoveMoney/AllLegsOrNone", testMoveAtomic)
	s.run(t, "MoveMoney/CurrencyMismatch", testMoveCurrencyMismatch)
	s.run(t, "MoveMoney/UnknownCurrency", testMoveUnknownCurrency)
	s.run(t, "MoveMoney/Overflow", testMoveOverflow)

	s.run(t, "ReverseTransfer/Once", testReverseOnce)
	s.run(t, "ReverseTransfer/RefusedForFunds", testReverseRefusedForFunds)
	s.run(t, "ReverseTransfer/RefusedWhileFrozen", testReverseRefusedWhileFrozen)

	s.run(t, "HoldFunds/ReservesAvailableNotPosted", testHoldReserves)
	s.run(t, "HoldFunds/BeyondAvailable", testHoldBeyondAvailable)
	s.run(t, "HoldFunds/WithinOverdraft", testHoldWithinOverdraft)
	s.run(t, "HoldFunds/OnlyInOpenAccounts", testHoldOnlyInOpenAccounts)
	s.run(t, "CaptureHold/PartFreesTheRest", testCapturePartial)
	s.run(t, "CaptureHold/ZeroMeansAll", testCaptureAll)
	s.run(t, "CaptureHold/MoreThanHeld", testCaptureMoreThanHeld)
	s.run(t, "CaptureHold/RefusedDestinations", testCaptureRefusedDestinations)
	s.run(t, "ReleaseHold/Once", testReleaseOnce)
	s.run(t, "ReleaseHold/InFrozenAccount", testReleaseInFrozenAccount)
	s.run(t, "Hold/ExpiresWhenTheClockSaysSo", testHoldExpiry)

	s.run(t, "Lifecycle/FreezeAndUnfreeze", testFreezeUnfreeze)
	s.run(t, "Lifecycle/CloseNeedsZeroBalance", testCloseNeedsZeroBalance)
	s.run(t, "Lifecycle/CloseNeedsNoActiveHold", testCloseNeedsNoActiveHold)
	s.run(t, "Lifecycle/CloseFrozen", testCloseFrozen)
	s.run(t, "Lifecycle/ClosedIsFinal", testClosedIsFinal)

	s.run(t, "GetBalanceAt/PointInTime", testBalanceAt)

	s.run(t, "ListLedgerAccounts/ByCustomer", testListAccountsByCustomer)
	s.run(t, "ListTransfers/ByAccount", testListTransfersByAccount)
	s.run(t, "ListAccountEntries/Pages", testListEntriesPages)
	s.run(t, "Lists/DefaultAndLargestPageSize", testListDefaultPageSize)
	s.run(t, "Lists/ForgedPageTokens", testListForgedTokens)

	s.run(t, "Idempotency/SameKeySameRequest", testIdempotentReplay)
	s.run(t, "Idempotency/SameKeyOtherRequest", testIdempotencyKeyReuse)
	s.run(t, "Idempotency/MissingKey", testIdempotencyMissingKey)
	s.run(t, "Idempotency/RefusalReplayedAfterFundsArrive", testIdempotentRefusal)
	s.run(t, "Idempotency/ConcurrentDuplicates", testIdempotencyConcurrentDuplicates)

	s.run(t, "Concurrency/RandomTransfersWithRetries", testConcurrentTransfers)

	s.run(t, "Store/Unknown", testStoreUnknown)
	s.run(t, "Store/FailedApplyWritesNothing", testStoreFailedApply)
	s.run(t, "Store/ResultsNotShared", testStoreResultsNotShared)
}

// suite runs each test over a harness of its own.
type suite struct {
	newBackend func(t *testing.T) Backend
}

func (s suite) run(t *testing.T, name string, test func(t *testing.T, h *harness)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		test(t, newHarness(t, s.newBackend(t)))
	})
}

// The contract's page sizes (ledger.proto: "0 means 50. At most 200.").
const (
	defaultPageSize = 50
	maxPageSize     = 200
)

// Ids the suite uses for things that do not exist: well-formed, and from
// 2016, before any id a backend makes now.
const (
	unknownAccountID  = "lac_01ARZ3NDEKTSV4RRFFQ69G5FAV"
	unknownTransferID = "trf_01ARZ3NDEKTSV4RRFFQ69G5FAV"
	unknownHoldID     = "hld_01ARZ3NDEKTSV4RRFFQ69G5FAV"
)

var (
	accountIDPattern  = regexp.MustCompile(`^lac_[0-9A-Z]{26}$`)
	transferIDPattern = regexp.MustCompile(`^trf_[0-9A-Z]{26}$`)
	entryIDPattern    = regexp.MustCompile(`^ent_[0-9A-Z]{26}$`)
	holdIDPattern     = regexp.MustCompile(`^hld_[0-9A-Z]{26}$`)
)

// harness is the service over one backend, served over HTTP, with its
// clock.
type harness struct {
	store     ledger.Store
	clock     *testclock.Clock // the time the service and the idempotency layer see; holds expire when a subtest moves it
	client    ledgerv1connect.LedgerServiceClient
	pace      atomic.Int64 // how long each Apply lingers, in nanoseconds; see pacedStore
	customers atomic.Int64 // numbers the customer ids the suite makes up
}

// pacedStore is the backend's Store with every Apply made slower by what
// pace says, inside the change, so with the backend's locks held. It widens
// the window in which a call is still running, so that duplicate and
// contending calls meet as they do on a loaded database rather than
// passing each other by.
type pacedStore struct {
	ledger.Store
	pace *atomic.Int64
}

func (s pacedStore) Apply(ctx context.Context, l ledger.Lock, change func(ledger.Tx) error) error {
	d := time.Duration(s.pace.Load())
	if d <= 0 {
		return s.Store.Apply(ctx, l, change)
	}
	return s.Store.Apply(ctx, l, func(tx ledger.Tx) error {
		time.Sleep(d)
		return change(tx)
	})
}

func newHarness(t *testing.T, b Backend) *harness {
	t.Helper()
	if b.Store == nil || b.Idempotency == nil {
		t.Fatalf("newBackend returned %+v; want both stores", b)
	}
	h := &harness{store: b.Store, clock: testclock.New(epoch)}
	c := h.clock
	svc := ledger.NewService(pacedStore{Store: b.Store, pace: &h.pace}, ledger.WithClock(c.Now), ledger.WithPageTokens(pageTokens(t, pagetokentest.Key)))
	service := ledgerv1.File_plinth_ledger_v1_ledger_proto.Services().Get(0)
	path, handler := ledgerv1connect.NewLedgerServiceHandler(svc, connect.WithInterceptors(
		idempotency.NewInterceptor(b.Idempotency, idempotency.Options{
			Mutating: idempotency.MutatingProcedures(service),
			Now:      c.Now,
		}),
		// The gateway's own error mapping: what it logs (the causes of
		// Internal errors) goes to the test's output.
		gateway.NewErrorInterceptor(slog.New(slog.NewTextHandler(t.Output(), nil))),
	))
	mux := http.NewServeMux()
	mux.Handle(path, handler)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	transport := srv.Client().Transport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64 // the concurrency tests' callers
	t.Cleanup(transport.CloseIdleConnections)
	h.client = ledgerv1connect.NewLedgerServiceClient(&http.Client{Transport: transport}, srv.URL)
	return h
}

// pageTokens returns a page-token Codec with key: the same key stands for
// the gateways of one deployment, another key for another deployment.
func pageTokens(t *testing.T, key []byte) *pagetoken.Codec {
	t.Helper()
	c, err := pagetoken.NewCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// --- Calls -----------------------------------------------------------------

// send calls rpc with msg and, unless key is "", the Idempotency-Key
// header.
func send[Req, Res any](ctx context.Context, rpc func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), key string, msg *Req) (*connect.Response[Res], error) {
	req := connect.NewRequest(msg)
	if key != "" {
		req.Header().Set(idempotency.Header, key)
	}
	return rpc(ctx, req)
}

// newKey returns an idempotency key never used before.
func newKey() string { return "ledgertest-" + rand.Text() }

// customerID returns a customer id no other account of this harness has
// been opened for.
func (h *harness) customerID() string {
	return fmt.Sprintf("cus_%026d", h.customers.Add(1))
}

func leg(from, to *ledgerv1.LedgerAccount, amount int64) *ledgerv1.Leg {
	return &ledgerv1.Leg{FromAccountId: from.GetId(), ToAccountId: to.GetId(), Amount: amount}
}

func (h *harness) open(ctx context.Context, req *ledgerv1.OpenLedgerAccountRequest) (*ledgerv1.LedgerAccount, error) {
	res, err := send(ctx, h.client.OpenLedgerAccount, newKey(), req)
	if err != nil {
		return nil, err
	}
	return res.Msg.GetAccount(), nil
}

func (h *harness) mustOpen(t *testing.T, req *ledgerv1.OpenLedgerAccountRequest) *ledgerv1.LedgerAccount {
	t.Helper()
	a, err := h.open(t.Context(), req)
	if err != nil {
		t.Fatalf("OpenLedgerAccount(%v): %v", req, err)
	}
	return a
}

// settlement opens a platform account without a floor.
func (h *harness) settlement(t *testing.T, currency string) *ledgerv1.LedgerAccount {
	t.Helper()
	return h.mustOpen(t, &ledgerv1.OpenLedgerAccountRequest{
		Currency:      currency,
		BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED,
		Description:   "settlement",
	})
}

// customerAccount opens a NON_NEGATIVE account for a new customer.
func (h *harness) customerAccount(t *testing.T, currency string, overdraft int64) *ledgerv1.LedgerAccount {
	t.Helper()
	return h.mustOpen(t, &ledgerv1.OpenLedgerAccountRequest{
		Currency:       currency,
		CustomerId:     h.customerID(),
		BalancePolicy:  ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE,
		OverdraftLimit: overdraft,
		Description:    "wallet",
	})
}

func (h *harness) move(ctx context.Context, currency string, legs ...*ledgerv1.Leg) (*ledgerv1.Transfer, error) {
	res, err := send(ctx, h.client.MoveMoney, newKey(), &ledgerv1.MoveMoneyRequest{Currency: currency, Legs: legs, Description: "ledgertest"})
	if err != nil {
		return nil, err
	}
	return res.Msg.GetTransfer(), nil
}

// mustMove moves USD, failing the test if that fails.
func (h *harness) mustMove(t *testing.T, legs ...*ledgerv1.Leg) *ledgerv1.Transfer {
	t.Helper()
	tr, err := h.move(t.Context(), "USD", legs...)
	if err != nil {
		t.Fatalf("MoveMoney(%v): %v", legs, err)
	}
	return tr
}

func (h *harness) reverse(ctx context.Context, transferID string) (*ledgerv1.Transfer, error) {
	res, err := send(ctx, h.client.ReverseTransfer, newKey(), &ledgerv1.ReverseTransferRequest{TransferId: transferID, Description: "undo"})
	if err != nil {
		return nil, err
	}
	return res.Msg.GetReversal(), nil
}

func (h *harness) mustReverse(t *testing.T, transferID string) *ledgerv1.Transfer {
	t.Helper()
	r, err := h.reverse(t.Context(), transferID)
	if err != nil {
		t.Fatalf("ReverseTransfer(%s): %v", transferID, err)
	}
	return r
}

func (h *harness) hold(ctx context.Context, accountID string, amount int64, ttl time.Duration) (*ledgerv1.Hold, error) {
	res, err := send(ctx, h.client.HoldFunds, newKey(), &ledgerv1.HoldFundsRequest{
		AccountId: accountID, Amount: amount, Ttl: durationpb.New(ttl), Description: "card authorization",
	})
	if err != nil {
		return nil, err
	}
	return res.Msg.GetHold(), nil
}

func (h *harness) mustHold(t *testing.T, a *ledgerv1.LedgerAccount, amount int64, ttl time.Duration) *ledgerv1.Hold {
	t.Helper()
	hold, err := h.hold(t.Context(), a.GetId(), amount, ttl)
	if err != nil {
		t.Fatalf("HoldFunds(%s, %d): %v", a.GetId(), amount, err)
	}
	return hold
}

func (h *harness) capture(ctx context.Context, holdID, toAccountID string, amount int64) (*ledgerv1.CaptureHoldResponse, error) {
	res, err := send(ctx, h.client.CaptureHold, newKey(), &ledgerv1.CaptureHoldRequest{
		HoldId: holdID, ToAccountId: toAccountID, Amount: amount, Description: "capture",
	})
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func (h *harness) release(ctx context.Context, holdID string) (*ledgerv1.Hold, error) {
	res, err := send(ctx, h.client.ReleaseHold, newKey(), &ledgerv1.ReleaseHoldRequest{HoldId: holdID})
	if err != nil {
		return nil, err
	}
	return res.Msg.GetHold(), nil
}

func (h *harness) freeze(ctx context.Context, accountID string) (*ledgerv1.LedgerAccount, error) {
	res, err := send(ctx, h.client.FreezeLedgerAccount, newKey(), &ledgerv1.FreezeLedgerAccountRequest{AccountId: accountID, Reason: "suspected fraud"})
	if err != nil {
		return nil, err
	}
	return res.Msg.GetAccount(), nil
}

func (h *harness) unfreeze(ctx context.Context, accountID string) (*ledgerv1.LedgerAccount, error) {
	res, err := send(ctx, h.client.UnfreezeLedgerAccount, newKey(), &ledgerv1.UnfreezeLedgerAccountRequest{AccountId: accountID})
	if err != nil {
		return nil, err
	}
	return res.Msg.GetAccount(), nil
}

func (h *harness) close(ctx context.Context, accountID string) (*ledgerv1.LedgerAccount, error) {
	res, err := send(ctx, h.client.CloseLedgerAccount, newKey(), &ledgerv1.CloseLedgerAccountRequest{AccountId: accountID})
	if err != nil {
		return nil, err
	}
	return res.Msg.GetAccount(), nil
}

// must takes what a call returned and gives a function that fails the test
// if the call failed, or returns its value:
//
//	res := must(h.capture(ctx, holdID, to, 0))(t, "CaptureHold")
func must[T any](v T, err error) func(t *testing.T, what string) T {
	return func(t *testing.T, what string) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// --- Reads -----------------------------------------------------------------

func (h *harness) account(t *testing.T, id string) *ledgerv1.LedgerAccount {
	t.Helper()
	res, err := send(t.Context(), h.client.GetLedgerAccount, "", &ledgerv1.GetLedgerAccountRequest{AccountId: id})
	if err != nil {
		t.Fatalf("GetLedgerAccount(%s): %v", id, err)
	}
	return res.Msg.GetAccount()
}

func (h *harness) transfer(t *testing.T, id string) *ledgerv1.Transfer {
	t.Helper()
	res, err := send(t.Context(), h.client.GetTransfer, "", &ledgerv1.GetTransferRequest{TransferId: id})
	if err != nil {
		t.Fatalf("GetTransfer(%s): %v", id, err)
	}
	return res.Msg.GetTransfer()
}

func (h *harness) balanceAt(t *testing.T, id string, at time.Time) int64 {
	t.Helper()
	res, err := send(t.Context(), h.client.GetBalanceAt, "", &ledgerv1.GetBalanceAtRequest{AccountId: id, At: timestamppb.New(at)})
	if err != nil {
		t.Fatalf("GetBalanceAt(%s, %s): %v", id, at.Format(time.RFC3339Nano), err)
	}
	return res.Msg.GetPostedBalance()
}

// wantBalance fails the test unless the account's posted and available
// balances are as given, as GetBalance and GetLedgerAccount both say.
func (h *harness) wantBalance(t *testing.T, a *ledgerv1.LedgerAccount, posted, available int64) {
	t.Helper()
	res, err := send(t.Context(), h.client.GetBalance, "", &ledgerv1.GetBalanceRequest{AccountId: a.GetId()})
	if err != nil {
		t.Fatalf("GetBalance(%s): %v", a.GetId(), err)
	}
	b := res.Msg
	if b.GetPostedBalance() != posted || b.GetAvailableBalance() != available || b.GetCurrency() != a.GetCurrency() {
		t.Fatalf("GetBalance(%s) = posted %d, available %d %s; want posted %d, available %d %s",
			a.GetId(), b.GetPostedBalance(), b.GetAvailableBalance(), b.GetCurrency(), posted, available, a.GetCurrency())
	}
	got := h.account(t, a.GetId())
	if got.GetPostedBalance() != posted || got.GetAvailableBalance() != available {
		t.Fatalf("GetLedgerAccount(%s) has posted %d, available %d; want posted %d, available %d",
			a.GetId(), got.GetPostedBalance(), got.GetAvailableBalance(), posted, available)
	}
}

// readPages reads every page of a list with pageSize and returns the pages.
// It checks what every page must satisfy: no more items than the page size
// allows, and a next_page_token on every page but the last, which only a
// full page may carry.
func readPages[T any](t *testing.T, what string, pageSize int32, read func(token string) ([]T, string, error)) [][]T {
	t.Helper()
	limit := int(pageSize)
	if limit == 0 {
		limit = defaultPageSize
	}
	limit = min(limit, maxPageSize)
	var pages [][]T
	token := ""
	for {
		if len(pages) > 10_000 {
			t.Fatalf("%s with page_size %d did not end after %d pages", what, pageSize, len(pages))
		}
		items, next, err := read(token)
		if err != nil {
			t.Fatalf("%s, page %d: %v", what, len(pages)+1, err)
		}
		pages = append(pages, items)
		if len(items) > limit {
			t.Fatalf("%s: page %d has %d items, more than page_size %d allows (%d)", what, len(pages), len(items), pageSize, limit)
		}
		if next == "" {
			return pages
		}
		if len(items) < limit {
			t.Fatalf("%s: page %d has %d items and a next_page_token; only a full page of %d may have one", what, len(pages), len(items), limit)
		}
		token = next
	}
}

func (h *harness) accountPages(t *testing.T, customerID string, pageSize int32) [][]*ledgerv1.LedgerAccount {
	t.Helper()
	return readPages(t, "ListLedgerAccounts(customer "+customerID+")", pageSize, func(token string) ([]*ledgerv1.LedgerAccount, string, error) {
		res, err := send(t.Context(), h.client.ListLedgerAccounts, "", &ledgerv1.ListLedgerAccountsRequest{PageSize: pageSize, PageToken: token, CustomerId: customerID})
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetAccounts(), res.Msg.GetNextPageToken(), nil
	})
}

func (h *harness) transferPages(t *testing.T, accountID string, pageSize int32) [][]*ledgerv1.Transfer {
	t.Helper()
	return readPages(t, "ListTransfers(account "+accountID+")", pageSize, func(token string) ([]*ledgerv1.Transfer, string, error) {
		res, err := send(t.Context(), h.client.ListTransfers, "", &ledgerv1.ListTransfersRequest{PageSize: pageSize, PageToken: token, AccountId: accountID})
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetTransfers(), res.Msg.GetNextPageToken(), nil
	})
}

func (h *harness) entryPages(t *testing.T, accountID string, pageSize int32) [][]*ledgerv1.Entry {
	t.Helper()
	return readPages(t, "ListAccountEntries("+accountID+")", pageSize, func(token string) ([]*ledgerv1.Entry, string, error) {
		res, err := send(t.Context(), h.client.ListAccountEntries, "", &ledgerv1.ListAccountEntriesRequest{AccountId: accountID, PageSize: pageSize, PageToken: token})
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetEntries(), res.Msg.GetNextPageToken(), nil
	})
}

// accounts returns every account of customerID (every account if ""), in
// the order of the list.
func (h *harness) accounts(t *testing.T, customerID string) []*ledgerv1.LedgerAccount {
	t.Helper()
	return slices.Concat(h.accountPages(t, customerID, maxPageSize)...)
}

// transfers returns every transfer touching accountID (every transfer if
// ""), in the order of the list.
func (h *harness) transfers(t *testing.T, accountID string) []*ledgerv1.Transfer {
	t.Helper()
	return slices.Concat(h.transferPages(t, accountID, maxPageSize)...)
}

// entries returns every entry of an account, oldest first.
func (h *harness) entries(t *testing.T, accountID string) []*ledgerv1.Entry {
	t.Helper()
	return slices.Concat(h.entryPages(t, accountID, maxPageSize)...)
}

// --- Assertions ------------------------------------------------------------

// wantCode fails the test unless err is a Connect error of code, and
// returns it.
func wantCode(t *testing.T, err error, code connect.Code) *connect.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("got error %q (%T), want a *connect.Error of code %s", err, err, code)
	}
	if ce.Code() != code {
		t.Fatalf("got %s %q, want %s", ce.Code(), ce.Message(), code)
	}
	return ce
}

// errorInfo returns the ErrorInfo detail of a Connect error, or nil.
func errorInfo(ce *connect.Error) *errdetails.ErrorInfo {
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if info, ok := v.(*errdetails.ErrorInfo); ok {
				return info
			}
		}
	}
	return nil
}

// wantRefusal fails the test unless err is a Connect error of code with an
// ErrorInfo of reason whose metadata holds at least meta.
func wantRefusal(t *testing.T, err error, code connect.Code, reason string, meta map[string]string) *connect.Error {
	t.Helper()
	ce := wantCode(t, err, code)
	info := errorInfo(ce)
	if info == nil {
		t.Fatalf("%s %q has no ErrorInfo detail; want reason %s", ce.Code(), ce.Message(), reason)
	}
	if info.GetReason() != reason || info.GetDomain() != "plinth.dev" {
		t.Fatalf("%s %q has ErrorInfo %s/%s; want plinth.dev/%s", ce.Code(), ce.Message(), info.GetDomain(), info.GetReason(), reason)
	}
	for k, want := range meta {
		if got, ok := info.GetMetadata()[k]; !ok || got != want {
			t.Fatalf("%s %q: ErrorInfo metadata[%q] = %q (present: %t), want %q; metadata %v", reason, ce.Message(), k, got, ok, want, info.GetMetadata())
		}
	}
	return ce
}

func wantInsufficientFunds(t *testing.T, err error, a *ledgerv1.LedgerAccount, available, floor, requested int64) {
	t.Helper()
	wantRefusal(t, err, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS", map[string]string{
		"account_id": a.GetId(),
		"currency":   a.GetCurrency(),
		"available":  strconv.FormatInt(available, 10),
		"floor":      strconv.FormatInt(floor, 10),
		"requested":  strconv.FormatInt(requested, 10),
	})
}

// wantNotOpen fails the test unless err refuses to act on an account in
// state (FROZEN, CLOSED or OPEN).
func wantNotOpen(t *testing.T, err error, a *ledgerv1.LedgerAccount, state ledgerv1.LedgerAccountState) {
	t.Helper()
	reason := map[ledgerv1.LedgerAccountState]string{
		ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_FROZEN: "ACCOUNT_FROZEN",
		ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED: "ACCOUNT_CLOSED",
	}[state]
	if reason == "" {
		reason = "ACCOUNT_STATE"
	}
	wantRefusal(t, err, connect.CodeFailedPrecondition, reason, map[string]string{"account_id": a.GetId(), "state": state.String()})
}

func wantHoldNotActive(t *testing.T, err error, holdID string, state ledgerv1.HoldState) {
	t.Helper()
	wantRefusal(t, err, connect.CodeFailedPrecondition, "HOLD_NOT_ACTIVE", map[string]string{"hold_id": holdID, "state": state.String()})
}

func wantNotEmpty(t *testing.T, err error, a *ledgerv1.LedgerAccount, posted, held int64) {
	t.Helper()
	wantRefusal(t, err, connect.CodeFailedPrecondition, "ACCOUNT_NOT_EMPTY", map[string]string{
		"account_id": a.GetId(), "posted": strconv.FormatInt(posted, 10), "held": strconv.FormatInt(held, 10),
	})
}

// wantNotFound fails the test unless err is NotFound naming id.
func wantNotFound(t *testing.T, err error, id string) {
	t.Helper()
	ce := wantCode(t, err, connect.CodeNotFound)
	if !strings.Contains(ce.Message(), id) {
		t.Fatalf("NotFound %q does not name %s", ce.Message(), id)
	}
}

// wantInvalidArgument fails the test unless err is InvalidArgument with a
// message that mentions mention (the field, or "overflow").
func wantInvalidArgument(t *testing.T, err error, mention string) {
	t.Helper()
	ce := wantCode(t, err, connect.CodeInvalidArgument)
	if !strings.Contains(ce.Message(), mention) {
		t.Fatalf("InvalidArgument %q does not mention %q", ce.Message(), mention)
	}
}

// wantSame fails the test unless got and want are the same message.
func wantSame(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func wantInstant(t *testing.T, what string, got *timestamppb.Timestamp, want time.Time) {
	t.Helper()
	if !sameInstant(got, want) {
		t.Fatalf("%s = %v, want %s", what, got.AsTime().Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
}

// snapshot is what a refused call must leave as it was: the accounts, how
// many entries each has, and how many transfers there are.
type snapshot struct {
	accounts  map[string]*ledgerv1.LedgerAccount
	entries   map[string]int
	transfers int
}

func (h *harness) snapshot(t *testing.T) snapshot {
	t.Helper()
	s := snapshot{accounts: map[string]*ledgerv1.LedgerAccount{}, entries: map[string]int{}, transfers: len(h.transfers(t, ""))}
	for _, a := range h.accounts(t, "") {
		s.accounts[a.GetId()] = a
		s.entries[a.GetId()] = len(h.entries(t, a.GetId()))
	}
	return s
}

// wantUnchanged fails the test unless the ledger is as it was at before.
func (h *harness) wantUnchanged(t *testing.T, what string, before snapshot) {
	t.Helper()
	after := h.snapshot(t)
	if after.transfers != before.transfers {
		t.Fatalf("after %s: %d transfers, want %d as before", what, after.transfers, before.transfers)
	}
	if len(after.accounts) != len(before.accounts) {
		t.Fatalf("after %s: %d accounts, want %d as before", what, len(after.accounts), len(before.accounts))
	}
	for id, a := range before.accounts {
		wantSame(t, "account "+id+" after "+what, after.accounts[id], a)
		if after.entries[id] != before.entries[id] {
			t.Fatalf("after %s: account %s has %d entries, want %d as before", what, id, after.entries[id], before.entries[id])
		}
	}
}

// checkBooks audits the whole ledger of the harness through the
// capabilities:
//
//   - each account's entries, oldest first, chain from 0 (balance_after =
//     the previous balance_after + amount) up to its posted balance;
//   - a NON_NEGATIVE account's available balance, and its posted balance
//     after every transfer, is not below minus its overdraft limit;
//   - every entry belongs to a listed transfer, and every transfer's entries
//     are its legs', one debit and one credit each, summing to zero;
//   - the posted balances of each currency sum to zero.
func (h *harness) checkBooks(t *testing.T) {
	t.Helper()
	accounts := h.accounts(t, "")
	transfers := h.transfers(t, "")
	byTransfer := map[string][]*ledgerv1.Entry{}
	sums := map[string]int64{}
	for _, a := range accounts {
		sums[a.GetCurrency()] += a.GetPostedBalance()
		floor, hasFloor := -a.GetOverdraftLimit(), a.GetBalancePolicy() == ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE
		if hasFloor && a.GetAvailableBalance() < floor {
			t.Errorf("account %s: available balance %d is below its floor %d", a.GetId(), a.GetAvailableBalance(), floor)
		}
		if a.GetAvailableBalance() > a.GetPostedBalance() {
			t.Errorf("account %s: available balance %d is above its posted balance %d", a.GetId(), a.GetAvailableBalance(), a.GetPostedBalance())
		}
		var balance int64
		entries := h.entries(t, a.GetId())
		for i, e := range entries {
			if e.GetAccountId() != a.GetId() {
				t.Errorf("account %s lists entry %s of account %s", a.GetId(), e.GetId(), e.GetAccountId())
			}
			if !entryIDPattern.MatchString(e.GetId()) {
				t.Errorf("entry id %q does not match %s", e.GetId(), entryIDPattern)
			}
			balance += e.GetAmount()
			if e.GetBalanceAfter() != balance {
				t.Errorf("account %s, entry %d (%s): balance_after %d, want %d (the previous balance + %d)", a.GetId(), i+1, e.GetId(), e.GetBalanceAfter(), balance, e.GetAmount())
			}
			endOfTransfer := i == len(entries)-1 || entries[i+1].GetTransferId() != e.GetTransferId()
			if hasFloor && endOfTransfer && e.GetBalanceAfter() < floor {
				t.Errorf("account %s: transfer %s left it at %d, below its floor %d", a.GetId(), e.GetTransferId(), e.GetBalanceAfter(), floor)
			}
			byTransfer[e.GetTransferId()] = append(byTransfer[e.GetTransferId()], e)
		}
		if balance != a.GetPostedBalance() {
			t.Errorf("account %s: entries sum to %d, posted balance is %d", a.GetId(), balance, a.GetPostedBalance())
		}
	}
	for currency, sum := range sums {
		if sum != 0 {
			t.Errorf("the %s balances sum to %d, want 0", currency, sum)
		}
	}
	seen := map[string]bool{}
	for _, tr := range transfers {
		if seen[tr.GetId()] {
			t.Errorf("transfer %s is listed twice", tr.GetId())
			continue
		}
		seen[tr.GetId()] = true
		type posting struct {
			account string
			amount  int64
		}
		want := map[posting]int{}
		for _, l := range tr.GetLegs() {
			want[posting{l.GetFromAccountId(), -l.GetAmount()}]++
			want[posting{l.GetToAccountId(), l.GetAmount()}]++
		}
		got := map[posting]int{}
		var sum int64
		for _, e := range byTransfer[tr.GetId()] {
			got[posting{e.GetAccountId(), e.GetAmount()}]++
			sum += e.GetAmount()
		}
		if len(byTransfer[tr.GetId()]) != 2*len(tr.GetLegs()) || !maps.Equal(got, want) {
			t.Errorf("transfer %s with legs %v has entries %v", tr.GetId(), tr.GetLegs(), byTransfer[tr.GetId()])
		}
		if sum != 0 {
			t.Errorf("transfer %s: entries sum to %d, want 0", tr.GetId(), sum)
		}
	}
	for id, entries := range byTransfer {
		if !seen[id] {
			t.Errorf("%d entries belong to transfer %s, which ListTransfers does not list", len(entries), id)
		}
	}
}

// wantEntries fails the test unless the account's entries are, oldest
// first, of the transfers and amounts given, with balance_after running.
func (h *harness) wantEntries(t *testing.T, a *ledgerv1.LedgerAccount, want ...entry) {
	t.Helper()
	got := h.entries(t, a.GetId())
	var balance int64
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		balance += want[i].amount
		ok = got[i].GetTransferId() == want[i].transferID && got[i].GetAmount() == want[i].amount && got[i].GetBalanceAfter() == balance
	}
	if !ok {
		var b strings.Builder
		for _, e := range got {
			fmt.Fprintf(&b, "\n  %s %+d -> %d", e.GetTransferId(), e.GetAmount(), e.GetBalanceAfter())
		}
		t.Fatalf("entries of %s:%s\nwant %v", a.GetId(), b.String(), want)
	}
}

// entry is an expected entry: its transfer and signed amount.
type entry struct {
	transferID string
	amount     int64
}

func (e entry) String() string { return fmt.Sprintf("%s %+d", e.transferID, e.amount) }

// --- OpenLedgerAccount, unknown ids ------------------------------------------

func testOpenRoundTrip(t *testing.T, h *harness) {
	now := h.clock.Advance(time.Second)
	customer := h.customerID()
	got := h.mustOpen(t, &ledgerv1.OpenLedgerAccountRequest{
		Currency:       "USD",
		CustomerId:     customer,
		BalancePolicy:  ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE,
		OverdraftLimit: 2500,
		Description:    "payouts wallet",
	})
	if !accountIDPattern.MatchString(got.GetId()) {
		t.Errorf("account id %q does not match %s", got.GetId(), accountIDPattern)
	}
	wantInstant(t, "created_at", got.GetCreatedAt(), now)
	wantInstant(t, "updated_at", got.GetUpdatedAt(), now)
	wantSame(t, "OpenLedgerAccount", got, &ledgerv1.LedgerAccount{
		Id:             got.GetId(),
		Currency:       "USD",
		CustomerId:     customer,
		BalancePolicy:  ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE,
		OverdraftLimit: 2500,
		State:          ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_OPEN,
		Description:    "payouts wallet",
		CreatedAt:      got.GetCreatedAt(),
		UpdatedAt:      got.GetUpdatedAt(),
	})
	wantSame(t, "GetLedgerAccount after OpenLedgerAccount", h.account(t, got.GetId()), got)

	platform := h.mustOpen(t, &ledgerv1.OpenLedgerAccountRequest{
		Currency:      "EUR",
		BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED,
	})
	if platform.GetId() == got.GetId() {
		t.Fatalf("two accounts got the id %s", got.GetId())
	}
	if platform.GetCustomerId() != "" || platform.GetCurrency() != "EUR" ||
		platform.GetBalancePolicy() != ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED ||
		platform.GetState() != ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_OPEN {
		t.Fatalf("platform account opened as %v", platform)
	}
	wantSame(t, "GetLedgerAccount of the platform account", h.account(t, platform.GetId()), platform)
	if n := len(h.accounts(t, "")); n != 2 {
		t.Fatalf("ListLedgerAccounts lists %d accounts, want 2", n)
	}
	if mine := h.accounts(t, customer); len(mine) != 1 || !proto.Equal(mine[0], got) {
		t.Fatalf("ListLedgerAccounts(customer %s) = %v, want [%v]", customer, mine, got)
	}
}

func testOpenUnknownCurrency(t *testing.T, h *harness) {
	_, err := h.open(t.Context(), &ledgerv1.OpenLedgerAccountRequest{
		Currency:      "QQQ", // well-formed, but no ISO 4217 currency
		BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED,
	})
	wantInvalidArgument(t, err, "currency")
	if n := len(h.accounts(t, "")); n != 0 {
		t.Fatalf("a refused OpenLedgerAccount left %d accounts", n)
	}
}

func testUnknownIDs(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 1000))
	hold := h.mustHold(t, a, 100, time.Hour)
	unknown := &ledgerv1.LedgerAccount{Id: unknownAccountID}
	before := h.snapshot(t)

	for _, c := range []struct {
		name string
		id   string
		call func() error
	}{
		{"GetLedgerAccount", unknownAccountID, func() error {
			_, err := send(ctx, h.client.GetLedgerAccount, "", &ledgerv1.GetLedgerAccountRequest{AccountId: unknownAccountID})
			return err
		}},
		{"GetBalance", unknownAccountID, func() error {
			_, err := send(ctx, h.client.GetBalance, "", &ledgerv1.GetBalanceRequest{AccountId: unknownAccountID})
			return err
		}},
		{"GetBalanceAt", unknownAccountID, func() error {
			_, err := send(ctx, h.client.GetBalanceAt, "", &ledgerv1.GetBalanceAtRequest{AccountId: unknownAccountID, At: timestamppb.New(h.clock.Now())})
			return err
		}},
		{"ListAccountEntries", unknownAccountID, func() error {
			_, err := send(ctx, h.client.ListAccountEntries, "", &ledgerv1.ListAccountEntriesRequest{AccountId: unknownAccountID})
			return err
		}},
		{"MoveMoney to", unknownAccountID, func() error { _, err := h.move(ctx, "USD", leg(s, unknown, 10)); return err }},
		{"MoveMoney from", unknownAccountID, func() error { _, err := h.move(ctx, "USD", leg(unknown, a, 10)); return err }},
		{"HoldFunds", unknownAccountID, func() error { _, err := h.hold(ctx, unknownAccountID, 10, time.Hour); return err }},
		{"FreezeLedgerAccount", unknownAccountID, func() error { _, err := h.freeze(ctx, unknownAccountID); return err }},
		{"UnfreezeLedgerAccount", unknownAccountID, func() error { _, err := h.unfreeze(ctx, unknownAccountID); return err }},
		{"CloseLedgerAccount", unknownAccountID, func() error { _, err := h.close(ctx, unknownAccountID); return err }},
		{"GetTransfer", unknownTransferID, func() error {
			_, err := send(ctx, h.client.GetTransfer, "", &ledgerv1.GetTransferRequest{TransferId: unknownTransferID})
			return err
		}},
		{"ReverseTransfer", unknownTransferID, func() error { _, err := h.reverse(ctx, unknownTransferID); return err }},
		{"CaptureHold", unknownHoldID, func() error { _, err := h.capture(ctx, unknownHoldID, s.GetId(), 0); return err }},
		{"ReleaseHold", unknownHoldID, func() error { _, err := h.release(ctx, unknownHoldID); return err }},
		{"CaptureHold into", unknownAccountID, func() error { _, err := h.capture(ctx, hold.GetId(), unknownAccountID, 0); return err }},
	} {
		t.Run(c.name, func(t *testing.T) { wantNotFound(t, c.call(), c.id) })
	}
	h.wantUnchanged(t, "calls naming unknown ids", before)
	// The hold is still active: the capture into an unknown account did
	// not use it up.
	res := must(h.capture(ctx, hold.GetId(), s.GetId(), 0))(t, "CaptureHold")
	if res.GetHold().GetState() != ledgerv1.HoldState_HOLD_STATE_CAPTURED {
		t.Fatalf("hold after capture is %s", res.GetHold().GetState())
	}
	h.checkBooks(t)
}

// --- MoveMoney -------------------------------------------------------------

func testMoveOneLeg(t *testing.T, h *harness) {
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	now := h.clock.Advance(time.Minute)
	tr := h.mustMove(t, leg(s, a, 1000))
	if !transferIDPattern.MatchString(tr.GetId()) {
		t.Errorf("transfer id %q does not match %s", tr.GetId(), transferIDPattern)
	}
	wantInstant(t, "posted_at", tr.GetPostedAt(), now)
	wantSame(t, "MoveMoney", tr, &ledgerv1.Transfer{
		Id:          tr.GetId(),
		Currency:    "USD",
		Legs:        []*ledgerv1.Leg{leg(s, a, 1000)},
		Description: "ledgertest",
		PostedAt:    tr.GetPostedAt(),
	})
	wantSame(t, "GetTransfer after MoveMoney", h.transfer(t, tr.GetId()), tr)
	h.wantBalance(t, s, -1000, -1000)
	h.wantBalance(t, a, 1000, 1000)

	entries := h.entries(t, a.GetId())
	if len(entries) != 1 {
		t.Fatalf("account has %d entries, want 1", len(entries))
	}
	e := entries[0]
	wantInstant(t, "entry posted_at", e.GetPostedAt(), now)
	wantSame(t, "the credit", e, &ledgerv1.Entry{
		Id: e.GetId(), AccountId: a.GetId(), TransferId: tr.GetId(), Amount: 1000, BalanceAfter: 1000, PostedAt: e.GetPostedAt(),
	})
	h.wantEntries(t, s, entry{tr.GetId(), -1000})
	if got := h.transfers(t, a.GetId()); len(got) != 1 || !proto.Equal(got[0], tr) {
		t.Fatalf("ListTransfers(%s) = %v, want [%v]", a.GetId(), got, tr)
	}
	h.checkBooks(t)
}

func testMoveEntriesPerLeg(t *testing.T, h *harness) {
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	b := h.customerAccount(t, "USD", 0)
	c := h.customerAccount(t, "USD", 0)
	// a starts empty and ends where it started: the transfer takes nothing
	// from it in all, though its second leg takes money it only has
	// because of the first.
	legs := []*ledgerv1.Leg{leg(s, a, 500), leg(a, b, 200), leg(s, b, 100), leg(a, c, 300)}
	tr := h.mustMove(t, legs...)
	wantSame(t, "legs", &ledgerv1.MoveMoneyRequest{Legs: tr.GetLegs()}, &ledgerv1.MoveMoneyRequest{Legs: legs})
	id := tr.GetId()
	h.wantEntries(t, s, entry{id, -500}, entry{id, -100})
	h.wantEntries(t, a, entry{id, 500}, entry{id, -200}, entry{id, -300})
	h.wantEntries(t, b, entry{id, 200}, entry{id, 100})
	h.wantEntries(t, c, entry{id, 300})

	// A second transfer continues each account's chain.
	tr2 := h.mustMove(t, leg(b, a, 250), leg(c, s, 300))
	h.wantEntries(t, a, entry{id, 500}, entry{id, -200}, entry{id, -300}, entry{tr2.GetId(), 250})
	h.wantEntries(t, b, entry{id, 200}, entry{id, 100}, entry{tr2.GetId(), -250})
	h.wantBalance(t, a, 250, 250)
	h.wantBalance(t, b, 50, 50)
	h.wantBalance(t, c, 0, 0)
	h.wantBalance(t, s, -300, -300)
	for _, acct := range []*ledgerv1.LedgerAccount{a, b, s} {
		if n := len(h.transfers(t, acct.GetId())); n != 2 {
			t.Fatalf("ListTransfers(%s) lists %d transfers, want 2", acct.GetId(), n)
		}
	}
	h.checkBooks(t)
}

func testMoveInsufficientFunds(t *testing.T, h *harness) {
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	b := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 300))
	before := h.snapshot(t)

	_, err := h.move(t.Context(), "USD", leg(a, b, 301))
	wantInsufficientFunds(t, err, a, 300, 0, 301)
	h.wantUnchanged(t, "a refused transfer", before)

	h.mustMove(t, leg(a, b, 300))
	h.wantBalance(t, a, 0, 0)
	_, err = h.move(t.Context(), "USD", leg(a, b, 1))
	wantInsufficientFunds(t, err, a, 0, 0, 1)
	h.checkBooks(t)
}

func testMoveInsufficientFundsNet(t *testing.T, h *harness) {
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	b := h.customerAccount(t, "USD", 0)
	c := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 300))
	before := h.snapshot(t)

	// Each leg alone fits; together they take 400 of 300.
	_, err := h.move(t.Context(), "USD", leg(a, b, 200), leg(a, c, 200))
	wantInsufficientFunds(t, err, a, 300, 0, 400)
	// What comes in within the same transfer counts: 500 out, 150 in.
	_, err = h.move(t.Context(), "USD", leg(a, b, 500), leg(s, a, 150))
	wantInsufficientFunds(t, err, a, 300, 0, 350)
	h.wantUnchanged(t, "refused transfers", before)

	h.mustMove(t, leg(a, b, 500), leg(s, a, 200))
	h.wantBalance(t, a, 0, 0)
	h.checkBooks(t)
}

func testMoveOverdraftBoundary(t *testing.T, h *harness) {
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 500)
	b := h.customerAccount(t, "USD", 0)
	before := h.snapshot(t)

	_, err := h.move(t.Context(), "USD", leg(a, b, 501))
	wantInsufficientFunds(t, err, a, 0, -500, 501)
	h.wantUnchanged(t, "a transfer one past the overdraft limit", before)

	h.mustMove(t, leg(a, b, 500))
	h.wantBalance(t, a, -500, -500)
	_, err = h.move(t.Context(), "USD", leg(a, b, 1))
	wantInsufficientFunds(t, err, a, -500, -500, 1)
	// Money may always come in.
	h.mustMove(t, leg(s, a, 1))
	h.wantBalance(t, a, -499, -499)
	h.mustMove(t, leg(a, b, 1))
	h.wantBalance(t, a, -500, -500)
	h.checkBooks(t)
}

func testMoveUnrestricted(t *testing.T, h *harness) {
	s1 := h.settlement(t, "USD")
	s2 := h.settlement(t, "USD")
	h.mustMove(t, leg(s1, s2, 1_000_000_000_000_000))
	h.mustMove(t, leg(s2, s1, 3_000_000_000_000_000))
	h.wantBalance(t, s1, 2_000_000_000_000_000, 2_000_000_000_000_000)
	h.wantBalance(t, s2, -2_000_000_000_000_000, -2_000_000_000_000_000)
	h.checkBooks(t)
}

func testMoveAtomic(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	empty := h.customerAccount(t, "USD", 0)
	c := h.customerAccount(t, "USD", 0)
	frozen := h.customerAccount(t, "USD", 0)
	must(h.freeze(ctx, frozen.GetId()))(t, "FreezeLedgerAccount")
	closed := h.customerAccount(t, "USD", 0)
	must(h.close(ctx, closed.GetId()))(t, "CloseLedgerAccount")
	euro := h.customerAccount(t, "EUR", 0)
	before := h.snapshot(t)

	// In each, the first leg alone would be accepted; the second is not, so
	// neither is.
	_, err := h.move(ctx, "USD", leg(s, a, 100), leg(empty, c, 50))
	wantInsufficientFunds(t, err, empty, 0, 0, 50)
	_, err = h.move(ctx, "USD", leg(s, a, 100), leg(s, frozen, 100))
	wantNotOpen(t, err, frozen, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_FROZEN)
	_, err = h.move(ctx, "USD", leg(s, a, 100), leg(s, closed, 100))
	wantNotOpen(t, err, closed, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED)
	_, err = h.move(ctx, "USD", leg(s, a, 100), leg(s, euro, 100))
	wantRefusal(t, err, connect.CodeFailedPrecondition, "CURRENCY_MISMATCH", map[string]string{"account_id": euro.GetId()})
	_, err = h.move(ctx, "USD", leg(s, a, 100), &ledgerv1.Leg{FromAccountId: s.GetId(), ToAccountId: unknownAccountID, Amount: 100})
	wantNotFound(t, err, unknownAccountID)
	h.wantUnchanged(t, "transfers with one refused leg", before)

	h.mustMove(t, leg(s, a, 100))
	h.wantBalance(t, a, 100, 100)
	h.checkBooks(t)
}

func testMoveCurrencyMismatch(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	se := h.settlement(t, "EUR")
	e := h.customerAccount(t, "EUR", 0)
	before := h.snapshot(t)

	_, err := h.move(ctx, "USD", leg(s, e, 100))
	wantRefusal(t, err, connect.CodeFailedPrecondition, "CURRENCY_MISMATCH", map[string]string{
		"account_id": e.GetId(), "account_currency": "EUR", "currency": "USD",
	})
	_, err = h.move(ctx, "EUR", leg(s, a, 100))
	wantRefusal(t, err, connect.CodeFailedPrecondition, "CURRENCY_MISMATCH", map[string]string{"account_currency": "USD", "currency": "EUR"})
	h.wantUnchanged(t, "transfers across currencies", before)

	tr := must(h.move(ctx, "EUR", leg(se, e, 100)))(t, "MoveMoney in EUR")
	if tr.GetCurrency() != "EUR" {
		t.Fatalf("EUR transfer has currency %q", tr.GetCurrency())
	}
	h.wantBalance(t, e, 100, 100)
	h.checkBooks(t)
}

func testMoveUnknownCurrency(t *testing.T, h *harness) {
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	before := h.snapshot(t)
	_, err := h.move(t.Context(), "QQQ", leg(s, a, 100))
	wantInvalidArgument(t, err, "currency")
	h.wantUnchanged(t, "a transfer in an unknown currency", before)
}

func testMoveOverflow(t *testing.T, h *harness) {
	ctx := t.Context()
	s1 := h.settlement(t, "USD")
	s2 := h.settlement(t, "USD")
	s3 := h.settlement(t, "USD")
	const big = math.MaxInt64 - 10

	h.mustMove(t, leg(s1, s2, big))
	before := h.snapshot(t)
	_, err := h.move(ctx, "USD", leg(s1, s2, big))
	wantInvalidArgument(t, err, "overflow")
	_, err = h.move(ctx, "USD", leg(s3, s2, 11))
	wantInvalidArgument(t, err, "overflow")
	// Each leg fits; their total into s3 does not.
	_, err = h.move(ctx, "USD", leg(s2, s3, math.MaxInt64/2+1), leg(s1, s3, math.MaxInt64/2+1))
	wantInvalidArgument(t, err, "overflow")
	// Nor does what leaves s3 in all.
	_, err = h.move(ctx, "USD", leg(s3, s1, math.MaxInt64), leg(s3, s2, math.MaxInt64))
	wantInvalidArgument(t, err, "overflow")
	h.wantUnchanged(t, "overflowing transfers", before)

	// Up to the limit exactly is fine.
	h.mustMove(t, leg(s3, s2, 10))
	h.wantBalance(t, s2, math.MaxInt64, math.MaxInt64)
	h.checkBooks(t)
}

// --- ReverseTransfer -------------------------------------------------------

func testReverseOnce(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	b := h.customerAccount(t, "USD", 0)
	tr := h.mustMove(t, leg(s, a, 300), leg(s, b, 200))

	now := h.clock.Advance(time.Hour)
	r := h.mustReverse(t, tr.GetId())
	if !transferIDPattern.MatchString(r.GetId()) || r.GetId() == tr.GetId() {
		t.Fatalf("reversal id %q", r.GetId())
	}
	wantInstant(t, "reversal posted_at", r.GetPostedAt(), now)
	if r.GetCurrency() != "USD" || r.GetReversesTransferId() != tr.GetId() || r.GetReversedByTransferId() != "" {
		t.Fatalf("reversal %v of %s", r, tr.GetId())
	}
	wantSame(t, "the reversal's legs", &ledgerv1.MoveMoneyRequest{Legs: r.GetLegs()},
		&ledgerv1.MoveMoneyRequest{Legs: []*ledgerv1.Leg{leg(a, s, 300), leg(b, s, 200)}})
	wantSame(t, "GetTransfer of the reversal", h.transfer(t, r.GetId()), r)
	reversed := proto.CloneOf(tr)
	reversed.ReversedByTransferId = r.GetId()
	wantSame(t, "GetTransfer of the reversed transfer", h.transfer(t, tr.GetId()), reversed)
	h.wantBalance(t, a, 0, 0)
	h.wantBalance(t, b, 0, 0)
	h.wantBalance(t, s, 0, 0)
	h.wantEntries(t, a, entry{tr.GetId(), 300}, entry{r.GetId(), -300})
	before := h.snapshot(t)

	_, err := h.reverse(ctx, tr.GetId())
	wantRefusal(t, err, connect.CodeFailedPrecondition, "ALREADY_REVERSED", map[string]string{"transfer_id": tr.GetId(), "reversal_id": r.GetId()})
	_, err = h.reverse(ctx, r.GetId())
	wantRefusal(t, err, connect.CodeFailedPrecondition, "ALREADY_REVERSED", map[string]string{"transfer_id": r.GetId(), "reverses_transfer_id": tr.GetId()})
	h.wantUnchanged(t, "refused reversals", before)
	h.checkBooks(t)
}

func testReverseRefusedForFunds(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	b := h.customerAccount(t, "USD", 0)
	topUp := h.mustMove(t, leg(s, a, 300))
	spend := h.mustMove(t, leg(a, b, 300))
	before := h.snapshot(t)

	// Undoing the top-up would take back money a has spent.
	_, err := h.reverse(ctx, topUp.GetId())
	wantInsufficientFunds(t, err, a, 0, 0, 300)
	h.wantUnchanged(t, "a reversal refused for funds", before)
	wantSame(t, "GetTransfer of a transfer whose reversal was refused", h.transfer(t, topUp.GetId()), topUp)

	// Once the spending is undone, so can the top-up be.
	h.mustReverse(t, spend.GetId())
	r := h.mustReverse(t, topUp.GetId())
	if r.GetReversesTransferId() != topUp.GetId() {
		t.Fatalf("reversal %v", r)
	}
	h.wantBalance(t, a, 0, 0)
	h.wantBalance(t, b, 0, 0)
	h.checkBooks(t)
}

func testReverseRefusedWhileFrozen(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	tr := h.mustMove(t, leg(s, a, 300))
	must(h.freeze(ctx, a.GetId()))(t, "FreezeLedgerAccount")
	before := h.snapshot(t)

	_, err := h.reverse(ctx, tr.GetId())
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_FROZEN)
	h.wantUnchanged(t, "a reversal touching a frozen account", before)

	must(h.unfreeze(ctx, a.GetId()))(t, "UnfreezeLedgerAccount")
	h.mustReverse(t, tr.GetId())
	h.wantBalance(t, a, 0, 0)
	h.checkBooks(t)
}

// --- Holds -----------------------------------------------------------------

func testHoldReserves(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	b := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 1000))

	now := h.clock.Advance(time.Minute)
	hold := h.mustHold(t, a, 300, time.Hour)
	if !holdIDPattern.MatchString(hold.GetId()) {
		t.Errorf("hold id %q does not match %s", hold.GetId(), holdIDPattern)
	}
	wantInstant(t, "created_at", hold.GetCreatedAt(), now)
	wantInstant(t, "updated_at", hold.GetUpdatedAt(), now)
	wantInstant(t, "expires_at", hold.GetExpiresAt(), now.Add(time.Hour))
	wantSame(t, "HoldFunds", hold, &ledgerv1.Hold{
		Id:          hold.GetId(),
		AccountId:   a.GetId(),
		Currency:    "USD",
		Amount:      300,
		State:       ledgerv1.HoldState_HOLD_STATE_ACTIVE,
		Description: "card authorization",
		ExpiresAt:   hold.GetExpiresAt(),
		CreatedAt:   hold.GetCreatedAt(),
		UpdatedAt:   hold.GetUpdatedAt(),
	})
	h.wantBalance(t, a, 1000, 700)
	if listed := h.accounts(t, a.GetCustomerId()); len(listed) != 1 || listed[0].GetAvailableBalance() != 700 {
		t.Fatalf("ListLedgerAccounts shows %v; want available 700", listed)
	}
	// A hold moves no money: no entry, no transfer.
	if n := len(h.entries(t, a.GetId())); n != 1 {
		t.Fatalf("account has %d entries after a hold, want 1", n)
	}

	before := h.snapshot(t)
	_, err := h.move(ctx, "USD", leg(a, b, 701))
	wantInsufficientFunds(t, err, a, 700, 0, 701)
	h.wantUnchanged(t, "a transfer of held money", before)
	h.mustMove(t, leg(a, b, 700))
	h.wantBalance(t, a, 300, 0)
	// The hold still reserves its amount and can be captured in full.
	res := must(h.capture(ctx, hold.GetId(), b.GetId(), 0))(t, "CaptureHold")
	if res.GetHold().GetCapturedAmount() != 300 {
		t.Fatalf("captured %d, want 300", res.GetHold().GetCapturedAmount())
	}
	h.wantBalance(t, a, 0, 0)
	h.wantBalance(t, b, 1000, 1000)
	h.checkBooks(t)
}

func testHoldBeyondAvailable(t *testing.T, h *harness) {
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 500))
	h.mustHold(t, a, 300, time.Hour)

	_, err := h.hold(t.Context(), a.GetId(), 201, time.Hour)
	wantInsufficientFunds(t, err, a, 200, 0, 201)
	h.wantBalance(t, a, 500, 200)
	h.mustHold(t, a, 200, time.Hour)
	h.wantBalance(t, a, 500, 0)
	_, err = h.hold(t.Context(), a.GetId(), 1, time.Hour)
	wantInsufficientFunds(t, err, a, 0, 0, 1)
	h.checkBooks(t)
}

func testHoldWithinOverdraft(t *testing.T, h *harness) {
	a := h.customerAccount(t, "USD", 100)
	b := h.customerAccount(t, "USD", 0)
	hold := h.mustHold(t, a, 100, time.Hour)
	h.wantBalance(t, a, 0, -100)
	_, err := h.hold(t.Context(), a.GetId(), 1, time.Hour)
	wantInsufficientFunds(t, err, a, -100, -100, 1)
	_, err = h.move(t.Context(), "USD", leg(a, b, 1))
	wantInsufficientFunds(t, err, a, -100, -100, 1)
	must(h.capture(t.Context(), hold.GetId(), b.GetId(), 0))(t, "CaptureHold")
	h.wantBalance(t, a, -100, -100)
	h.wantBalance(t, b, 100, 100)
	h.checkBooks(t)
}

func testHoldOnlyInOpenAccounts(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 100))
	must(h.freeze(ctx, a.GetId()))(t, "FreezeLedgerAccount")
	_, err := h.hold(ctx, a.GetId(), 10, time.Hour)
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_FROZEN)
	h.wantBalance(t, a, 100, 100)

	closed := h.customerAccount(t, "USD", 100)
	must(h.close(ctx, closed.GetId()))(t, "CloseLedgerAccount")
	_, err = h.hold(ctx, closed.GetId(), 10, time.Hour)
	wantNotOpen(t, err, closed, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED)
	h.wantBalance(t, closed, 0, 0)
}

func testCapturePartial(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	b := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 1000))
	hold := h.mustHold(t, a, 400, time.Hour)
	h.wantBalance(t, a, 1000, 600)

	now := h.clock.Advance(time.Minute)
	res := must(h.capture(ctx, hold.GetId(), b.GetId(), 150))(t, "CaptureHold")
	tr := res.GetTransfer()
	if !transferIDPattern.MatchString(tr.GetId()) {
		t.Fatalf("capture transfer id %q", tr.GetId())
	}
	wantInstant(t, "capture posted_at", tr.GetPostedAt(), now)
	wantSame(t, "the capture's transfer", &ledgerv1.Transfer{
		Id: tr.GetId(), Currency: tr.GetCurrency(), Legs: tr.GetLegs(), CapturesHoldId: tr.GetCapturesHoldId(),
		ReversesTransferId: tr.GetReversesTransferId(), ReversedByTransferId: tr.GetReversedByTransferId(),
	}, &ledgerv1.Transfer{
		Id: tr.GetId(), Currency: "USD", Legs: []*ledgerv1.Leg{leg(a, b, 150)}, CapturesHoldId: hold.GetId(),
	})
	wantSame(t, "GetTransfer of the capture", h.transfer(t, tr.GetId()), tr)
	captured := res.GetHold()
	wantInstant(t, "captured hold's updated_at", captured.GetUpdatedAt(), now)
	want := proto.CloneOf(hold)
	want.State = ledgerv1.HoldState_HOLD_STATE_CAPTURED
	want.CapturedAmount = 150
	want.CaptureTransferId = tr.GetId()
	want.UpdatedAt = captured.GetUpdatedAt()
	wantSame(t, "the captured hold", captured, want)
	// The 250 not captured is free again.
	h.wantBalance(t, a, 850, 850)
	h.wantBalance(t, b, 150, 150)
	before := h.snapshot(t)

	_, err := h.capture(ctx, hold.GetId(), b.GetId(), 0)
	wantHoldNotActive(t, err, hold.GetId(), ledgerv1.HoldState_HOLD_STATE_CAPTURED)
	_, err = h.capture(ctx, hold.GetId(), b.GetId(), 100)
	wantHoldNotActive(t, err, hold.GetId(), ledgerv1.HoldState_HOLD_STATE_CAPTURED)
	_, err = h.release(ctx, hold.GetId())
	wantHoldNotActive(t, err, hold.GetId(), ledgerv1.HoldState_HOLD_STATE_CAPTURED)
	h.wantUnchanged(t, "refused captures and releases", before)
	h.checkBooks(t)
}

func testCaptureAll(t *testing.T, h *harness) {
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 1000))
	hold := h.mustHold(t, a, 400, time.Hour)
	res := must(h.capture(t.Context(), hold.GetId(), s.GetId(), 0))(t, "CaptureHold")
	if res.GetHold().GetCapturedAmount() != 400 || res.GetTransfer().GetLegs()[0].GetAmount() != 400 {
		t.Fatalf("capturing 0 (all) gave %v", res)
	}
	h.wantBalance(t, a, 600, 600)
	h.checkBooks(t)
}

func testCaptureMoreThanHeld(t *testing.T, h *harness) {
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 1000))
	hold := h.mustHold(t, a, 400, time.Hour)
	before := h.snapshot(t)

	_, err := h.capture(t.Context(), hold.GetId(), s.GetId(), 401)
	wantInvalidArgument(t, err, "amount")
	h.wantUnchanged(t, "a capture of more than held", before)
	h.wantBalance(t, a, 1000, 600)

	res := must(h.capture(t.Context(), hold.GetId(), s.GetId(), 400))(t, "CaptureHold")
	if res.GetHold().GetCapturedAmount() != 400 {
		t.Fatalf("captured %d, want 400", res.GetHold().GetCapturedAmount())
	}
	h.checkBooks(t)
}

func testCaptureRefusedDestinations(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	frozen := h.customerAccount(t, "USD", 0)
	must(h.freeze(ctx, frozen.GetId()))(t, "FreezeLedgerAccount")
	euro := h.settlement(t, "EUR")
	h.mustMove(t, leg(s, a, 1000))
	hold := h.mustHold(t, a, 400, time.Hour)
	before := h.snapshot(t)

	_, err := h.capture(ctx, hold.GetId(), euro.GetId(), 0)
	wantRefusal(t, err, connect.CodeFailedPrecondition, "CURRENCY_MISMATCH", map[string]string{
		"account_id": euro.GetId(), "account_currency": "EUR", "currency": "USD",
	})
	_, err = h.capture(ctx, hold.GetId(), frozen.GetId(), 0)
	wantNotOpen(t, err, frozen, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_FROZEN)
	_, err = h.capture(ctx, hold.GetId(), a.GetId(), 0)
	wantInvalidArgument(t, err, "to_account_id")
	// Nor may money leave a frozen account by a capture.
	must(h.freeze(ctx, a.GetId()))(t, "FreezeLedgerAccount")
	_, err = h.capture(ctx, hold.GetId(), s.GetId(), 0)
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_FROZEN)
	must(h.unfreeze(ctx, a.GetId()))(t, "UnfreezeLedgerAccount")
	h.wantUnchanged(t, "refused captures", before)

	// The hold is still active.
	must(h.capture(ctx, hold.GetId(), s.GetId(), 0))(t, "CaptureHold")
	h.wantBalance(t, a, 600, 600)
	h.checkBooks(t)
}

func testReleaseOnce(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 1000))
	hold := h.mustHold(t, a, 400, time.Hour)

	now := h.clock.Advance(time.Minute)
	released := must(h.release(ctx, hold.GetId()))(t, "ReleaseHold")
	wantInstant(t, "released hold's updated_at", released.GetUpdatedAt(), now)
	want := proto.CloneOf(hold)
	want.State = ledgerv1.HoldState_HOLD_STATE_RELEASED
	want.UpdatedAt = released.GetUpdatedAt()
	wantSame(t, "the released hold", released, want)
	h.wantBalance(t, a, 1000, 1000)
	before := h.snapshot(t)

	_, err := h.release(ctx, hold.GetId())
	wantHoldNotActive(t, err, hold.GetId(), ledgerv1.HoldState_HOLD_STATE_RELEASED)
	_, err = h.capture(ctx, hold.GetId(), s.GetId(), 0)
	wantHoldNotActive(t, err, hold.GetId(), ledgerv1.HoldState_HOLD_STATE_RELEASED)
	h.wantUnchanged(t, "refused releases and captures", before)
	h.checkBooks(t)
}

// testReleaseInFrozenAccount: releasing only makes money available, so a
// freeze does not stop it, though it stops a capture.
func testReleaseInFrozenAccount(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 100))
	hold := h.mustHold(t, a, 40, time.Hour)
	must(h.freeze(ctx, a.GetId()))(t, "FreezeLedgerAccount")
	h.wantBalance(t, a, 100, 60)
	released := must(h.release(ctx, hold.GetId()))(t, "ReleaseHold in a frozen account")
	if released.GetState() != ledgerv1.HoldState_HOLD_STATE_RELEASED {
		t.Fatalf("ReleaseHold = %v", released)
	}
	h.wantBalance(t, a, 100, 100)
	h.checkBooks(t)
}

func testHoldExpiry(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 1000))
	start := h.clock.Now()
	hold := h.mustHold(t, a, 300, 10*time.Minute)

	// A microsecond before its expiry, the hold still reserves.
	h.clock.Advance(10*time.Minute - time.Microsecond)
	h.wantBalance(t, a, 1000, 700)
	_, err := h.hold(ctx, a.GetId(), 701, time.Hour)
	wantInsufficientFunds(t, err, a, 700, 0, 701)

	// At its expiry, it no longer does.
	if now := h.clock.Advance(time.Microsecond); !now.Equal(start.Add(10 * time.Minute)) {
		t.Fatalf("clock at %s, want %s", now, start.Add(10*time.Minute))
	}
	h.wantBalance(t, a, 1000, 1000)
	stored, err := h.store.GetHold(ctx, hold.GetId())
	if err != nil {
		t.Fatalf("Store.GetHold: %v", err)
	}
	if got := stored.StateAt(h.clock.Now()); got != ledger.HoldExpired {
		t.Fatalf("stored hold's state at its expiry is %s, want %s", got, ledger.HoldExpired)
	}
	before := h.snapshot(t)
	_, err = h.capture(ctx, hold.GetId(), s.GetId(), 0)
	wantHoldNotActive(t, err, hold.GetId(), ledgerv1.HoldState_HOLD_STATE_EXPIRED)
	_, err = h.release(ctx, hold.GetId())
	wantHoldNotActive(t, err, hold.GetId(), ledgerv1.HoldState_HOLD_STATE_EXPIRED)
	h.wantUnchanged(t, "capturing and releasing an expired hold", before)

	// Its money can be held or moved again.
	h.mustHold(t, a, 1000, time.Hour)
	h.wantBalance(t, a, 1000, 0)
	h.checkBooks(t)
}

// --- Account lifecycle -----------------------------------------------------

func testFreezeUnfreeze(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 500))
	opened := h.account(t, a.GetId())

	now := h.clock.Advance(time.Minute)
	frozen := must(h.freeze(ctx, a.GetId()))(t, "FreezeLedgerAccount")
	wantInstant(t, "frozen account's updated_at", frozen.GetUpdatedAt(), now)
	want := proto.CloneOf(opened)
	want.State = ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_FROZEN
	want.UpdatedAt = frozen.GetUpdatedAt()
	wantSame(t, "FreezeLedgerAccount", frozen, want)
	wantSame(t, "GetLedgerAccount of a frozen account", h.account(t, a.GetId()), frozen)
	before := h.snapshot(t)

	_, err := h.move(ctx, "USD", leg(a, s, 100))
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_FROZEN)
	_, err = h.move(ctx, "USD", leg(s, a, 100))
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_FROZEN)
	_, err = h.freeze(ctx, a.GetId())
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_FROZEN)
	h.wantUnchanged(t, "moving money in and out of a frozen account", before)
	h.wantBalance(t, a, 500, 500) // balances can still be read

	now = h.clock.Advance(time.Minute)
	open := must(h.unfreeze(ctx, a.GetId()))(t, "UnfreezeLedgerAccount")
	wantInstant(t, "unfrozen account's updated_at", open.GetUpdatedAt(), now)
	want.State = ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_OPEN
	want.UpdatedAt = open.GetUpdatedAt()
	wantSame(t, "UnfreezeLedgerAccount", open, want)
	_, err = h.unfreeze(ctx, a.GetId())
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_OPEN)

	h.mustMove(t, leg(a, s, 100))
	h.mustMove(t, leg(s, a, 50))
	h.wantBalance(t, a, 450, 450)
	h.checkBooks(t)
}

func testCloseNeedsZeroBalance(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 100))
	overdrawn := h.customerAccount(t, "USD", 100)
	h.mustMove(t, leg(overdrawn, s, 40))
	before := h.snapshot(t)

	_, err := h.close(ctx, a.GetId())
	wantNotEmpty(t, err, a, 100, 0)
	_, err = h.close(ctx, overdrawn.GetId())
	wantNotEmpty(t, err, overdrawn, -40, 0)
	_, err = h.close(ctx, s.GetId())
	wantNotEmpty(t, err, s, -60, 0)
	h.wantUnchanged(t, "closing accounts with a balance", before)

	h.mustMove(t, leg(a, s, 100))
	now := h.clock.Advance(time.Minute)
	closed := must(h.close(ctx, a.GetId()))(t, "CloseLedgerAccount")
	wantInstant(t, "closed account's updated_at", closed.GetUpdatedAt(), now)
	if closed.GetState() != ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED || closed.GetPostedBalance() != 0 {
		t.Fatalf("CloseLedgerAccount = %v", closed)
	}
	wantSame(t, "GetLedgerAccount of a closed account", h.account(t, a.GetId()), closed)
	h.checkBooks(t)
}

func testCloseNeedsNoActiveHold(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	// An overdraft lets an empty account hold money: posted 0, held 60.
	a := h.customerAccount(t, "USD", 100)
	h.mustHold(t, a, 60, 10*time.Minute)
	_, err := h.close(ctx, a.GetId())
	wantNotEmpty(t, err, a, 0, 60)
	// Once the hold has expired, nothing stops the close.
	h.clock.Advance(10 * time.Minute)
	closed := must(h.close(ctx, a.GetId()))(t, "CloseLedgerAccount after the hold expired")
	if closed.GetState() != ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED {
		t.Fatalf("CloseLedgerAccount = %v", closed)
	}

	// Nor once a hold is released, or captured and the balance zeroed.
	b := h.customerAccount(t, "USD", 100)
	hold := h.mustHold(t, b, 60, time.Hour)
	_, err = h.close(ctx, b.GetId())
	wantNotEmpty(t, err, b, 0, 60)
	must(h.release(ctx, hold.GetId()))(t, "ReleaseHold")
	must(h.close(ctx, b.GetId()))(t, "CloseLedgerAccount after the release")

	c := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, c, 60))
	hold = h.mustHold(t, c, 60, time.Hour)
	_, err = h.close(ctx, c.GetId())
	wantNotEmpty(t, err, c, 60, 60)
	must(h.capture(ctx, hold.GetId(), s.GetId(), 0))(t, "CaptureHold")
	must(h.close(ctx, c.GetId()))(t, "CloseLedgerAccount after the capture")
	h.checkBooks(t)
}

func testCloseFrozen(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 100))
	must(h.freeze(ctx, a.GetId()))(t, "FreezeLedgerAccount")
	_, err := h.close(ctx, a.GetId())
	wantNotEmpty(t, err, a, 100, 0)

	b := h.customerAccount(t, "USD", 0)
	must(h.freeze(ctx, b.GetId()))(t, "FreezeLedgerAccount")
	closed := must(h.close(ctx, b.GetId()))(t, "CloseLedgerAccount of a frozen account")
	if closed.GetState() != ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED {
		t.Fatalf("CloseLedgerAccount = %v", closed)
	}
	h.checkBooks(t)
}

func testClosedIsFinal(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 100)
	closed := must(h.close(ctx, a.GetId()))(t, "CloseLedgerAccount")
	before := h.snapshot(t)

	_, err := h.move(ctx, "USD", leg(s, a, 10))
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED)
	_, err = h.move(ctx, "USD", leg(a, s, 10)) // within the overdraft
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED)
	_, err = h.freeze(ctx, a.GetId())
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED)
	_, err = h.unfreeze(ctx, a.GetId())
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED)
	_, err = h.close(ctx, a.GetId())
	wantNotOpen(t, err, a, ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_CLOSED)
	h.wantUnchanged(t, "acting on a closed account", before)
	wantSame(t, "GetLedgerAccount of a closed account", h.account(t, a.GetId()), closed)
	h.checkBooks(t)
}

// --- GetBalanceAt ----------------------------------------------------------

func testBalanceAt(t *testing.T, h *harness) {
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	opened := h.clock.Now()
	t1 := h.clock.Advance(time.Minute)
	h.mustMove(t, leg(s, a, 100))
	t2 := h.clock.Advance(time.Minute)
	h.mustMove(t, leg(s, a, 50))
	t3 := h.clock.Advance(time.Minute)
	h.mustMove(t, leg(a, s, 30))
	// A hold changes no posted balance, then or now.
	h.mustHold(t, a, 20, time.Hour)
	now := h.clock.Advance(time.Minute)

	for _, c := range []struct {
		name string
		at   time.Time
		want int64
	}{
		{"before the account was opened", opened.Add(-time.Hour), 0},
		{"when it was opened", opened, 0},
		{"a microsecond before the first transfer", t1.Add(-time.Microsecond), 0},
		{"at the first transfer", t1, 100},
		{"between the first two", t1.Add(30 * time.Second), 100},
		{"a microsecond before the second", t2.Add(-time.Microsecond), 100},
		{"at the second", t2, 150},
		{"at the third", t3, 120},
		{"now", now, 120},
		{"tomorrow", now.Add(24 * time.Hour), 120},
	} {
		if got := h.balanceAt(t, a.GetId(), c.at); got != c.want {
			t.Errorf("GetBalanceAt %s (%s) = %d, want %d", c.name, c.at.Format(time.RFC3339Nano), got, c.want)
		}
	}
	if got := h.balanceAt(t, s.GetId(), t2); got != -150 {
		t.Errorf("settlement's GetBalanceAt at the second transfer = %d, want -150", got)
	}
	res := must(send(t.Context(), h.client.GetBalanceAt, "", &ledgerv1.GetBalanceAtRequest{AccountId: a.GetId(), At: timestamppb.New(now)}))(t, "GetBalanceAt")
	if res.Msg.GetCurrency() != "USD" {
		t.Errorf("GetBalanceAt currency %q, want USD", res.Msg.GetCurrency())
	}
	h.wantBalance(t, a, 120, 100)
}

// --- Lists -----------------------------------------------------------------

// ids returns the ids of items.
func ids[T interface{ GetId() string }](items []T) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.GetId()
	}
	return out
}

func pageLengths[T any](pages [][]T) []int {
	out := make([]int, len(pages))
	for i, p := range pages {
		out[i] = len(p)
	}
	return out
}

// wantTokenRefused fails the test unless a list call with a token it was
// not issued for is refused as InvalidArgument naming page_token.
func wantTokenRefused(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted", what)
	}
	wantInvalidArgument(t, err, "page_token")
}

func testListAccountsByCustomer(t *testing.T, h *harness) {
	ctx := t.Context()
	x, y := h.customerID(), h.customerID()
	var xs, all []string
	for i := range 14 {
		req := &ledgerv1.OpenLedgerAccountRequest{Currency: "USD", BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE}
		switch {
		case i%2 == 0: // 7 of x's
			req.CustomerId = x
		case i%3 != 0: // 5 of y's
			req.CustomerId = y
		default: // 2 of the platform's
			req.BalancePolicy = ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED
		}
		a := h.mustOpen(t, req)
		all = append(all, a.GetId())
		if req.CustomerId == x {
			xs = append(xs, a.GetId())
		}
	}
	slices.Sort(xs)
	slices.Sort(all)

	pages := h.accountPages(t, x, 3)
	if got := pageLengths(pages); !slices.Equal(got, []int{3, 3, 1}) {
		t.Fatalf("x's accounts came in pages of %v, want [3 3 1]", got)
	}
	if got := ids(slices.Concat(pages...)); !slices.Equal(got, xs) {
		t.Fatalf("x's accounts listed as %v, want %v (by id)", got, xs)
	}
	if got := ids(h.accounts(t, y)); len(got) != 5 {
		t.Fatalf("y's accounts: %v, want 5", got)
	}
	for _, size := range []int32{1, 5, 14, 0} {
		if got := ids(slices.Concat(h.accountPages(t, "", size)...)); !slices.Equal(got, all) {
			t.Fatalf("every account with page_size %d: %v, want %v", size, got, all)
		}
	}

	first := must(send(ctx, h.client.ListLedgerAccounts, "", &ledgerv1.ListLedgerAccountsRequest{PageSize: 3, CustomerId: x}))(t, "ListLedgerAccounts")
	token := first.Msg.GetNextPageToken()
	_, err := send(ctx, h.client.ListLedgerAccounts, "", &ledgerv1.ListLedgerAccountsRequest{PageSize: 3, PageToken: token, CustomerId: y})
	wantTokenRefused(t, "a token of x's accounts for y's", err)
	_, err = send(ctx, h.client.ListLedgerAccounts, "", &ledgerv1.ListLedgerAccountsRequest{PageSize: 3, PageToken: token})
	wantTokenRefused(t, "a token of x's accounts for every account", err)
	_, err = send(ctx, h.client.ListLedgerAccounts, "", &ledgerv1.ListLedgerAccountsRequest{PageToken: "not-a-token"})
	wantTokenRefused(t, "a made-up token", err)
	// The token is good for what it was issued for.
	second := must(send(ctx, h.client.ListLedgerAccounts, "", &ledgerv1.ListLedgerAccountsRequest{PageSize: 3, PageToken: token, CustomerId: x}))(t, "ListLedgerAccounts, page 2")
	if got := ids(second.Msg.GetAccounts()); !slices.Equal(got, xs[3:6]) {
		t.Fatalf("page 2 of x's accounts: %v, want %v", got, xs[3:6])
	}
}

func testListTransfersByAccount(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	b := h.customerAccount(t, "USD", 0)
	var ofA, all []string
	for i := range 18 {
		var tr *ledgerv1.Transfer
		switch i % 3 {
		case 0:
			tr = h.mustMove(t, leg(s, a, 10))
		case 1:
			tr = h.mustMove(t, leg(s, b, 10), leg(a, b, 5)) // a only in its second leg
		default:
			tr = h.mustMove(t, leg(s, b, 10))
		}
		all = append(all, tr.GetId())
		if i%3 != 2 {
			ofA = append(ofA, tr.GetId())
		}
	}
	slices.Sort(ofA)
	slices.Sort(all)

	pages := h.transferPages(t, a.GetId(), 5)
	if got := pageLengths(pages); !slices.Equal(got, []int{5, 5, 2}) {
		t.Fatalf("a's transfers came in pages of %v, want [5 5 2]", got)
	}
	if got := ids(slices.Concat(pages...)); !slices.Equal(got, ofA) {
		t.Fatalf("a's transfers listed as %v, want %v (by id)", got, ofA)
	}
	if got := ids(h.transfers(t, "")); !slices.Equal(got, all) {
		t.Fatalf("every transfer listed as %v, want %v", got, all)
	}
	if got := ids(h.transfers(t, b.GetId())); len(got) != 12 {
		t.Fatalf("b's transfers: %d, want 12", len(got))
	}

	first := must(send(ctx, h.client.ListTransfers, "", &ledgerv1.ListTransfersRequest{PageSize: 5, AccountId: a.GetId()}))(t, "ListTransfers")
	token := first.Msg.GetNextPageToken()
	_, err := send(ctx, h.client.ListTransfers, "", &ledgerv1.ListTransfersRequest{PageSize: 5, PageToken: token, AccountId: b.GetId()})
	wantTokenRefused(t, "a token of a's transfers for b's", err)
	_, err = send(ctx, h.client.ListTransfers, "", &ledgerv1.ListTransfersRequest{PageSize: 5, PageToken: token})
	wantTokenRefused(t, "a token of a's transfers for every transfer", err)
	_, err = send(ctx, h.client.ListTransfers, "", &ledgerv1.ListTransfersRequest{PageToken: "not-a-token"})
	wantTokenRefused(t, "a made-up token", err)
	h.checkBooks(t)
}

func testListEntriesPages(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	b := h.customerAccount(t, "USD", 0)
	var want []entry
	for i := range 12 {
		amount := int64(100 + i)
		if i%4 == 3 {
			tr := h.mustMove(t, leg(a, b, amount))
			want = append(want, entry{tr.GetId(), -amount})
			continue
		}
		tr := h.mustMove(t, leg(s, a, amount))
		want = append(want, entry{tr.GetId(), amount})
	}
	h.wantEntries(t, a, want...)
	pages := h.entryPages(t, a.GetId(), 5)
	if got := pageLengths(pages); !slices.Equal(got, []int{5, 5, 2}) {
		t.Fatalf("a's entries came in pages of %v, want [5 5 2]", got)
	}
	for i, e := range slices.Concat(pages...) {
		if e.GetTransferId() != want[i].transferID || e.GetAmount() != want[i].amount {
			t.Fatalf("entry %d in pages of 5: %v, want %v", i+1, e, want[i])
		}
	}

	first := must(send(ctx, h.client.ListAccountEntries, "", &ledgerv1.ListAccountEntriesRequest{AccountId: a.GetId(), PageSize: 5}))(t, "ListAccountEntries")
	_, err := send(ctx, h.client.ListAccountEntries, "", &ledgerv1.ListAccountEntriesRequest{AccountId: b.GetId(), PageSize: 5, PageToken: first.Msg.GetNextPageToken()})
	wantTokenRefused(t, "a token of a's entries for b's", err)
	_, err = send(ctx, h.client.ListAccountEntries, "", &ledgerv1.ListAccountEntriesRequest{AccountId: a.GetId(), PageToken: "not-a-token"})
	wantTokenRefused(t, "a made-up token", err)
	h.checkBooks(t)
}

// testListForgedTokens: page tokens are signed. For every listing, a token
// altered anywhere, made under another deployment's key, or issued by
// another listing with the same filter is refused, and never trusted as a
// place to resume from; a token from another gateway of the same
// deployment (another Service with the same key) gives the same next page.
func testListForgedTokens(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	customer := h.customerID()
	for range 3 {
		h.mustMove(t, leg(s, a, 10))
		h.mustOpen(t, &ledgerv1.OpenLedgerAccountRequest{Currency: "USD", CustomerId: customer, BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE})
	}
	gatewayB := ledger.NewService(h.store, ledger.WithPageTokens(pageTokens(t, pagetokentest.Key)))
	otherDeployment := ledger.NewService(h.store, ledger.WithPageTokens(pageTokens(t, pagetokentest.OtherKey)))
	type page struct {
		ids  []string
		next string
	}
	type lister func(ctx context.Context, token string) (page, error)
	listings := []struct {
		name string
		// over the harness's gateway, and over a Service called directly
		client  lister
		service func(svc *ledger.Service) lister
	}{
		{"ListLedgerAccounts",
			func(ctx context.Context, token string) (page, error) {
				res, err := send(ctx, h.client.ListLedgerAccounts, "", &ledgerv1.ListLedgerAccountsRequest{PageSize: 1, PageToken: token, CustomerId: customer})
				if err != nil {
					return page{}, err
				}
				return page{ids(res.Msg.GetAccounts()), res.Msg.GetNextPageToken()}, nil
			},
			func(svc *ledger.Service) lister {
				return func(ctx context.Context, token string) (page, error) {
					res, err := svc.ListLedgerAccounts(ctx, connect.NewRequest(&ledgerv1.ListLedgerAccountsRequest{PageSize: 1, PageToken: token, CustomerId: customer}))
					if err != nil {
						return page{}, err
					}
					return page{ids(res.Msg.GetAccounts()), res.Msg.GetNextPageToken()}, nil
				}
			}},
		{"ListTransfers",
			func(ctx context.Context, token string) (page, error) {
				res, err := send(ctx, h.client.ListTransfers, "", &ledgerv1.ListTransfersRequest{PageSize: 1, PageToken: token, AccountId: a.GetId()})
				if err != nil {
					return page{}, err
				}
				return page{ids(res.Msg.GetTransfers()), res.Msg.GetNextPageToken()}, nil
			},
			func(svc *ledger.Service) lister {
				return func(ctx context.Context, token string) (page, error) {
					res, err := svc.ListTransfers(ctx, connect.NewRequest(&ledgerv1.ListTransfersRequest{PageSize: 1, PageToken: token, AccountId: a.GetId()}))
					if err != nil {
						return page{}, err
					}
					return page{ids(res.Msg.GetTransfers()), res.Msg.GetNextPageToken()}, nil
				}
			}},
		{"ListAccountEntries",
			func(ctx context.Context, token string) (page, error) {
				res, err := send(ctx, h.client.ListAccountEntries, "", &ledgerv1.ListAccountEntriesRequest{PageSize: 1, PageToken: token, AccountId: a.GetId()})
				if err != nil {
					return page{}, err
				}
				return page{ids(res.Msg.GetEntries()), res.Msg.GetNextPageToken()}, nil
			},
			func(svc *ledger.Service) lister {
				return func(ctx context.Context, token string) (page, error) {
					res, err := svc.ListAccountEntries(ctx, connect.NewRequest(&ledgerv1.ListAccountEntriesRequest{PageSize: 1, PageToken: token, AccountId: a.GetId()}))
					if err != nil {
						return page{}, err
					}
					return page{ids(res.Msg.GetEntries()), res.Msg.GetNextPageToken()}, nil
				}
			}},
	}
	tokens := map[string]string{}
	for _, l := range listings {
		first, err := l.client(ctx, "")
		if err != nil || first.next == "" {
			t.Fatalf("%s, page 1: %v, %v; want a next_page_token", l.name, first, err)
		}
		tokens[l.name] = first.next
		second, err := l.client(ctx, first.next)
		if err != nil {
			t.Fatalf("%s, page 2: %v", l.name, err)
		}
		for _, forged := range pagetokentest.Altered(first.next) {
			_, err := l.client(ctx, forged)
			wantTokenRefused(t, l.name+": an altered token", err)
		}
		theirs, err := l.service(otherDeployment)(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.client(ctx, theirs.next)
		wantTokenRefused(t, l.name+": another deployment's token", err)
		onB, err := l.service(gatewayB)(ctx, first.next)
		if err != nil {
			t.Fatalf("%s: another gateway of the deployment refused the token: %v", l.name, err)
		}
		if !slices.Equal(onB.ids, second.ids) || onB.next == "" {
			t.Fatalf("%s: page 2 on another gateway = %v, want %v", l.name, onB, second)
		}
	}
	// ListTransfers and ListAccountEntries both filter by the account: a
	// token of one is still refused by the other.
	_, err := listings[2].client(ctx, tokens["ListTransfers"])
	wantTokenRefused(t, "a token of ListTransfers for ListAccountEntries", err)
	_, err = listings[1].client(ctx, tokens["ListAccountEntries"])
	wantTokenRefused(t, "a token of ListAccountEntries for ListTransfers", err)
}

func testListDefaultPageSize(t *testing.T, h *harness) {
	const n = defaultPageSize + 2
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	for range n {
		h.mustMove(t, leg(s, a, 1))
	}
	customer := h.customerID()
	for range n {
		h.mustOpen(t, &ledgerv1.OpenLedgerAccountRequest{Currency: "USD", CustomerId: customer, BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE})
	}
	for _, c := range []struct {
		name    string
		size    int32
		lengths []int
	}{
		{"page_size 0", 0, []int{defaultPageSize, 2}},
		{"page_size 200", maxPageSize, []int{n}},
	} {
		if got := pageLengths(h.accountPages(t, customer, c.size)); !slices.Equal(got, c.lengths) {
			t.Errorf("ListLedgerAccounts with %s: pages of %v, want %v", c.name, got, c.lengths)
		}
		if got := pageLengths(h.transferPages(t, a.GetId(), c.size)); !slices.Equal(got, c.lengths) {
			t.Errorf("ListTransfers with %s: pages of %v, want %v", c.name, got, c.lengths)
		}
		if got := pageLengths(h.entryPages(t, a.GetId(), c.size)); !slices.Equal(got, c.lengths) {
			t.Errorf("ListAccountEntries with %s: pages of %v, want %v", c.name, got, c.lengths)
		}
	}
}

// --- Idempotency -----------------------------------------------------------

// answer is what a MoveMoney call finally answered: a transfer, or a
// refusal.
type answer struct {
	transfer *ledgerv1.Transfer
	code     connect.Code
	reason   string
	message  string
	aborted  int // how many times the call was told Aborted and retried first
}

func (a answer) String() string {
	if a.transfer != nil {
		return "transfer " + a.transfer.GetId()
	}
	return fmt.Sprintf("%s %s %q", a.code, a.reason, a.message)
}

func (a answer) same(b answer) bool {
	return proto.Equal(a.transfer, b.transfer) && a.code == b.code && a.reason == b.reason && a.message == b.message
}

// moveUntilAnswered sends req under key until the answer is final. While a
// call with the same key is still running, or when a call lost a race it
// could not wait out, the answer is Aborted, and the caller retries with the
// same key as it is told.
func (h *harness) moveUntilAnswered(ctx context.Context, key string, req *ledgerv1.MoveMoneyRequest) answer {
	for try := 1; ; try++ {
		res, err := send(ctx, h.client.MoveMoney, key, proto.CloneOf(req))
		if err == nil {
			return answer{transfer: res.Msg.GetTransfer(), aborted: try - 1}
		}
		var ce *connect.Error
		if !errors.As(err, &ce) {
			return answer{code: connect.CodeUnknown, message: err.Error()}
		}
		if ce.Code() == connect.CodeAborted && try < 2000 && ctx.Err() == nil {
			time.Sleep(time.Duration(min(try, 20)) * 100 * time.Microsecond)
			continue
		}
		a := answer{code: ce.Code(), message: ce.Message(), aborted: try - 1}
		if info := errorInfo(ce); info != nil {
			a.reason = info.GetReason()
		}
		return a
	}
}

func testIdempotentReplay(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)

	key := newKey()
	req := &ledgerv1.MoveMoneyRequest{Currency: "USD", Legs: []*ledgerv1.Leg{leg(s, a, 250)}, Description: "retried"}
	first := must(send(ctx, h.client.MoveMoney, key, proto.CloneOf(req)))(t, "MoveMoney")
	if got := first.Header().Get(idempotency.ReplayedHeader); got != "" {
		t.Fatalf("the first call is marked %s: %q", idempotency.ReplayedHeader, got)
	}
	h.clock.Advance(time.Hour) // a retry an hour later is still a retry
	second := must(send(ctx, h.client.MoveMoney, key, proto.CloneOf(req)))(t, "MoveMoney again")
	if got := second.Header().Get(idempotency.ReplayedHeader); got != "true" {
		t.Fatalf("the retry is marked %s: %q, want true", idempotency.ReplayedHeader, got)
	}
	wantSame(t, "the retried MoveMoney", second.Msg, first.Msg)
	if got := h.transfers(t, a.GetId()); len(got) != 1 || got[0].GetId() != first.Msg.GetTransfer().GetId() {
		t.Fatalf("after a retried MoveMoney, ListTransfers = %v; want only %s", ids(got), first.Msg.GetTransfer().GetId())
	}
	h.wantBalance(t, a, 250, 250)

	// The same for the other capabilities that create something.
	customer := h.customerID()
	openReq := &ledgerv1.OpenLedgerAccountRequest{Currency: "USD", CustomerId: customer, BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE}
	key = newKey()
	opened := must(send(ctx, h.client.OpenLedgerAccount, key, proto.CloneOf(openReq)))(t, "OpenLedgerAccount")
	reopened := must(send(ctx, h.client.OpenLedgerAccount, key, proto.CloneOf(openReq)))(t, "OpenLedgerAccount again")
	wantSame(t, "the retried OpenLedgerAccount", reopened.Msg, opened.Msg)
	if n := len(h.accounts(t, customer)); n != 1 {
		t.Fatalf("a retried OpenLedgerAccount opened %d accounts", n)
	}

	holdReq := &ledgerv1.HoldFundsRequest{AccountId: a.GetId(), Amount: 100, Ttl: durationpb.New(time.Hour)}
	key = newKey()
	held := must(send(ctx, h.client.HoldFunds, key, proto.CloneOf(holdReq)))(t, "HoldFunds")
	reheld := must(send(ctx, h.client.HoldFunds, key, proto.CloneOf(holdReq)))(t, "HoldFunds again")
	wantSame(t, "the retried HoldFunds", reheld.Msg, held.Msg)
	h.wantBalance(t, a, 250, 150)

	captureReq := &ledgerv1.CaptureHoldRequest{HoldId: held.Msg.GetHold().GetId(), ToAccountId: s.GetId(), Amount: 60}
	key = newKey()
	captured := must(send(ctx, h.client.CaptureHold, key, proto.CloneOf(captureReq)))(t, "CaptureHold")
	recaptured := must(send(ctx, h.client.CaptureHold, key, proto.CloneOf(captureReq)))(t, "CaptureHold again")
	wantSame(t, "the retried CaptureHold", recaptured.Msg, captured.Msg)
	h.wantBalance(t, a, 190, 190)

	key = newKey()
	reversed := must(send(ctx, h.client.ReverseTransfer, key, &ledgerv1.ReverseTransferRequest{TransferId: captured.Msg.GetTransfer().GetId()}))(t, "ReverseTransfer")
	rereversed := must(send(ctx, h.client.ReverseTransfer, key, &ledgerv1.ReverseTransferRequest{TransferId: captured.Msg.GetTransfer().GetId()}))(t, "ReverseTransfer again")
	wantSame(t, "the retried ReverseTransfer", rereversed.Msg, reversed.Msg)
	h.wantBalance(t, a, 250, 250)
	if n := len(h.transfers(t, a.GetId())); n != 3 {
		t.Fatalf("%d transfers touch the account, want 3 (the move, the capture, its reversal)", n)
	}
	h.checkBooks(t)
}

func testIdempotencyKeyReuse(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	key := newKey()
	must(send(ctx, h.client.MoveMoney, key, &ledgerv1.MoveMoneyRequest{Currency: "USD", Legs: []*ledgerv1.Leg{leg(s, a, 100)}}))(t, "MoveMoney")
	before := h.snapshot(t)

	_, err := send(ctx, h.client.MoveMoney, key, &ledgerv1.MoveMoneyRequest{Currency: "USD", Legs: []*ledgerv1.Leg{leg(s, a, 101)}})
	wantCode(t, err, connect.CodeFailedPrecondition)
	_, err = send(ctx, h.client.HoldFunds, key, &ledgerv1.HoldFundsRequest{AccountId: a.GetId(), Amount: 10, Ttl: durationpb.New(time.Hour)})
	wantCode(t, err, connect.CodeFailedPrecondition)
	h.wantUnchanged(t, "reusing a key for another request", before)
	h.wantBalance(t, a, 100, 100)
}

func testIdempotencyMissingKey(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	h.mustMove(t, leg(s, a, 100))
	hold := h.mustHold(t, a, 10, time.Hour)
	tr := h.transfers(t, a.GetId())[0]
	before := h.snapshot(t)

	for _, c := range []struct {
		name string
		call func() error
	}{
		{"OpenLedgerAccount", func() error {
			_, err := send(ctx, h.client.OpenLedgerAccount, "", &ledgerv1.OpenLedgerAccountRequest{Currency: "USD", BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED})
			return err
		}},
		{"MoveMoney", func() error {
			_, err := send(ctx, h.client.MoveMoney, "", &ledgerv1.MoveMoneyRequest{Currency: "USD", Legs: []*ledgerv1.Leg{leg(s, a, 1)}})
			return err
		}},
		{"ReverseTransfer", func() error {
			_, err := send(ctx, h.client.ReverseTransfer, "", &ledgerv1.ReverseTransferRequest{TransferId: tr.GetId()})
			return err
		}},
		{"HoldFunds", func() error {
			_, err := send(ctx, h.client.HoldFunds, "", &ledgerv1.HoldFundsRequest{AccountId: a.GetId(), Amount: 1, Ttl: durationpb.New(time.Hour)})
			return err
		}},
		{"CaptureHold", func() error {
			_, err := send(ctx, h.client.CaptureHold, "", &ledgerv1.CaptureHoldRequest{HoldId: hold.GetId(), ToAccountId: s.GetId()})
			return err
		}},
		{"ReleaseHold", func() error {
			_, err := send(ctx, h.client.ReleaseHold, "", &ledgerv1.ReleaseHoldRequest{HoldId: hold.GetId()})
			return err
		}},
		{"FreezeLedgerAccount", func() error {
			_, err := send(ctx, h.client.FreezeLedgerAccount, "", &ledgerv1.FreezeLedgerAccountRequest{AccountId: a.GetId(), Reason: "no key"})
			return err
		}},
		{"UnfreezeLedgerAccount", func() error {
			_, err := send(ctx, h.client.UnfreezeLedgerAccount, "", &ledgerv1.UnfreezeLedgerAccountRequest{AccountId: a.GetId()})
			return err
		}},
		{"CloseLedgerAccount", func() error {
			_, err := send(ctx, h.client.CloseLedgerAccount, "", &ledgerv1.CloseLedgerAccountRequest{AccountId: a.GetId()})
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) { wantInvalidArgument(t, c.call(), idempotency.Header) })
	}
	h.wantUnchanged(t, "mutating calls without a key", before)
	h.wantBalance(t, a, 100, 90)
}

func testIdempotentRefusal(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	b := h.customerAccount(t, "USD", 0)
	key := newKey()
	req := &ledgerv1.MoveMoneyRequest{Currency: "USD", Legs: []*ledgerv1.Leg{leg(a, b, 100)}}

	_, err := send(ctx, h.client.MoveMoney, key, proto.CloneOf(req))
	first := wantRefusal(t, err, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS", map[string]string{"available": "0", "requested": "100"})
	h.mustMove(t, leg(s, a, 500))

	// The retry is answered as the first call was, though it would now
	// succeed: a key gets one answer.
	_, err = send(ctx, h.client.MoveMoney, key, proto.CloneOf(req))
	retried := wantRefusal(t, err, connect.CodeFailedPrecondition, "INSUFFICIENT_FUNDS", map[string]string{"available": "0", "requested": "100"})
	if retried.Message() != first.Message() {
		t.Fatalf("the retried refusal says %q, the first said %q", retried.Message(), first.Message())
	}
	if !proto.Equal(errorInfo(retried), errorInfo(first)) {
		t.Fatalf("the retried refusal's ErrorInfo is %v, the first's %v", errorInfo(retried), errorInfo(first))
	}
	if got := retried.Meta().Get(idempotency.ReplayedHeader); got != "true" {
		t.Fatalf("the retried refusal is marked %s: %q, want true", idempotency.ReplayedHeader, got)
	}
	h.wantBalance(t, a, 500, 500)
	h.wantBalance(t, b, 0, 0)

	// A new key is a new request.
	must(send(ctx, h.client.MoveMoney, newKey(), proto.CloneOf(req)))(t, "MoveMoney with a new key")
	h.wantBalance(t, a, 400, 400)
	h.checkBooks(t)
}

func testIdempotencyConcurrentDuplicates(t *testing.T, h *harness) {
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	key := newKey()
	req := &ledgerv1.MoveMoneyRequest{Currency: "USD", Legs: []*ledgerv1.Leg{leg(s, a, 777)}}
	// The first call lingers long enough for the others to arrive while it
	// still runs.
	h.pace.Store(int64(50 * time.Millisecond))

	const n = 8
	var (
		start   = make(chan struct{})
		wg      sync.WaitGroup
		answers = make([]answer, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i] = h.moveUntilAnswered(t.Context(), key, req)
		})
	}
	close(start)
	wg.Wait()
	aborted := 0
	for i, got := range answers {
		if got.transfer == nil || !got.same(answers[0]) {
			t.Fatalf("caller %d got %v; caller 0 got %v", i, got, answers[0])
		}
		aborted += got.aborted
	}
	if aborted == 0 {
		t.Fatalf("none of %d simultaneous calls with one key was told Aborted while the first ran", n)
	}
	if got := h.transfers(t, a.GetId()); len(got) != 1 {
		t.Fatalf("%d duplicates of one call made %d transfers: %v", n, len(got), ids(got))
	}
	h.wantBalance(t, a, 777, 777)
	h.checkBooks(t)
}

// --- Concurrency -----------------------------------------------------------

// testConcurrentTransfers has 16 callers move money at random between a
// settlement account and four customer accounts (one with an overdraft),
// retrying some calls with the same key, some of them while the first call
// is still running. Then it audits the books: nothing lost, nothing applied
// twice, no floor crossed, every retry answered as the first call was.
func testConcurrentTransfers(t *testing.T, h *harness) {
	const (
		callers   = 16
		perCaller = 25
		funding   = 10_000
	)
	s := h.settlement(t, "USD")
	accounts := []*ledgerv1.LedgerAccount{s}
	want := map[string]int64{}
	known := map[string]*ledgerv1.MoveMoneyRequest{} // transfer id -> what was asked
	for _, overdraft := range []int64{0, 0, 0, 5_000} {
		a := h.customerAccount(t, "USD", overdraft)
		tr := h.mustMove(t, leg(s, a, funding))
		known[tr.GetId()] = &ledgerv1.MoveMoneyRequest{Legs: tr.GetLegs()}
		accounts = append(accounts, a)
		want[a.GetId()] += funding
		want[s.GetId()] -= funding
	}

	type call struct {
		key     string
		req     *ledgerv1.MoveMoneyRequest
		answers []answer
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	// Each Apply lingers a little, so that calls contend for accounts and a
	// retry often finds the first call with its key still running.
	h.pace.Store(int64(time.Millisecond))
	var (
		mu    sync.Mutex
		calls []*call
		wg    sync.WaitGroup
	)
	for caller := range callers {
		wg.Go(func() {
			ctx := t.Context()
			rng := mathrand.New(mathrand.NewPCG(seed, uint64(caller)))
			for range perCaller {
				c := &call{key: newKey(), req: randomMove(rng, accounts)}
				switch rng.IntN(8) {
				case 0: // a retry while the first call may still run
					c.answers = make([]answer, 2)
					var both sync.WaitGroup
					for i := range c.answers {
						both.Go(func() { c.answers[i] = h.moveUntilAnswered(ctx, c.key, c.req) })
					}
					both.Wait()
				case 1: // a retry after the answer
					c.answers = []answer{h.moveUntilAnswered(ctx, c.key, c.req), h.moveUntilAnswered(ctx, c.key, c.req)}
				default:
					c.answers = []answer{h.moveUntilAnswered(ctx, c.key, c.req)}
				}
				mu.Lock()
				calls = append(calls, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	h.pace.Store(0)
	accepted, refused, retried, aborted := 0, 0, 0, 0
	for _, c := range calls {
		for _, a := range c.answers {
			aborted += a.aborted
		}
		first := c.answers[0]
		for _, other := range c.answers[1:] {
			retried++
			if !other.same(first) {
				t.Errorf("key %s was answered %v and %v", c.key, first, other)
			}
		}
		switch {
		case first.transfer != nil:
			id := first.transfer.GetId()
			if _, dup := known[id]; dup {
				t.Errorf("two calls were answered with transfer %s", id)
			}
			known[id] = c.req
			accepted++
			if !proto.Equal(&ledgerv1.MoveMoneyRequest{Legs: first.transfer.GetLegs()}, &ledgerv1.MoveMoneyRequest{Legs: c.req.GetLegs()}) {
				t.Errorf("transfer %s has legs %v; %v were asked for", id, first.transfer.GetLegs(), c.req.GetLegs())
			}
			for _, l := range c.req.GetLegs() {
				want[l.GetFromAccountId()] -= l.GetAmount()
				want[l.GetToAccountId()] += l.GetAmount()
			}
		case first.code == connect.CodeFailedPrecondition && first.reason == "INSUFFICIENT_FUNDS":
			refused++
		default:
			t.Errorf("MoveMoney(%v) answered %v", c.req.GetLegs(), first)
		}
	}
	t.Logf("%d transfers accepted, %d refused for funds, %d retries with the same key, %d calls told Aborted and sent again",
		accepted, refused, retried, aborted)

	// Every accepted transfer is there exactly once, as it was asked for,
	// and nothing else is.
	listed := slices.Concat(h.transferPages(t, "", 37)...)
	seen := map[string]bool{}
	for _, tr := range listed {
		req, ok := known[tr.GetId()]
		switch {
		case seen[tr.GetId()]:
			t.Errorf("transfer %s is listed twice", tr.GetId())
		case !ok:
			t.Errorf("transfer %s (%v) is listed, but no caller was answered with it", tr.GetId(), tr.GetLegs())
		case !proto.Equal(&ledgerv1.MoveMoneyRequest{Legs: tr.GetLegs()}, &ledgerv1.MoveMoneyRequest{Legs: req.GetLegs()}):
			t.Errorf("transfer %s is listed with legs %v; %v were asked for", tr.GetId(), tr.GetLegs(), req.GetLegs())
		}
		seen[tr.GetId()] = true
	}
	for id := range known {
		if !seen[id] {
			t.Errorf("transfer %s was accepted but is not listed", id)
		}
	}
	for _, a := range accounts {
		h.wantBalance(t, a, want[a.GetId()], want[a.GetId()])
	}
	h.checkBooks(t)
}

// randomMove makes up a transfer between accounts: mostly one leg, now and
// then two or three, of up to 6,000.
func randomMove(rng *mathrand.Rand, accounts []*ledgerv1.LedgerAccount) *ledgerv1.MoveMoneyRequest {
	n := 1
	if rng.IntN(4) == 0 {
		n = 2 + rng.IntN(2)
	}
	req := &ledgerv1.MoveMoneyRequest{Currency: "USD", Description: "random"}
	for range n {
		i := rng.IntN(len(accounts))
		j := rng.IntN(len(accounts) - 1)
		if j >= i {
			j++
		}
		req.Legs = append(req.Legs, leg(accounts[i], accounts[j], 1+rng.Int64N(6_000)))
	}
	return req
}

// --- The Store's own promises ----------------------------------------------

func wantStoreNotFound(t *testing.T, what string, err error, resource, id string) {
	t.Helper()
	var nf *domainerr.NotFoundError
	if !errors.As(err, &nf) || nf.Resource != resource || nf.ID != id {
		t.Fatalf("%s = %v (%T); want the NotFoundError of %s %s", what, err, err, resource, id)
	}
}

func testStoreUnknown(t *testing.T, h *harness) {
	ctx := t.Context()
	now := h.clock.Now()
	a := h.customerAccount(t, "USD", 0)

	_, _, err := h.store.GetAccount(ctx, unknownAccountID, now)
	wantStoreNotFound(t, "GetAccount", err, "ledger account", unknownAccountID)
	_, err = h.store.GetTransfer(ctx, unknownTransferID)
	wantStoreNotFound(t, "GetTransfer", err, "transfer", unknownTransferID)
	_, err = h.store.GetHold(ctx, unknownHoldID)
	wantStoreNotFound(t, "GetHold", err, "hold", unknownHoldID)
	_, err = h.store.ListEntries(ctx, ledger.EntryQuery{AccountID: unknownAccountID, Limit: 10})
	wantStoreNotFound(t, "ListEntries", err, "ledger account", unknownAccountID)
	_, err = h.store.BalanceAt(ctx, unknownAccountID, now)
	wantStoreNotFound(t, "BalanceAt", err, "ledger account", unknownAccountID)

	called := false
	err = h.store.Apply(ctx, ledger.Lock{AccountIDs: []string{a.GetId(), unknownAccountID}}, func(ledger.Tx) error {
		called = true
		return nil
	})
	wantStoreNotFound(t, "Apply locking an unknown account", err, "ledger account", unknownAccountID)
	if called {
		t.Fatal("Apply called change though an account it was to lock does not exist")
	}
}

func testStoreFailedApply(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	before := h.snapshot(t)

	const transferID = "trf_01ARZ3NDEKTSV4RRFFQ69G5FAW"
	errChange := errors.New("ledgertest: change refused after recording")
	err := h.store.Apply(ctx, ledger.Lock{AccountIDs: []string{a.GetId(), s.GetId()}}, func(tx ledger.Tx) error {
		now := h.clock.Now()
		from, to := tx.Account(s.GetId()), tx.Account(a.GetId())
		tr := ledger.Transfer{ID: transferID, Currency: "USD", Legs: []ledger.Leg{{From: from.ID, To: to.ID, Amount: 100}}, PostedAt: now}
		entries := []ledger.Entry{
			{ID: "ent_01ARZ3NDEKTSV4RRFFQ69G5FAX", AccountID: from.ID, TransferID: transferID, Seq: from.EntryCount + 1, Amount: -100, BalanceAfter: from.Posted - 100, PostedAt: now},
			{ID: "ent_01ARZ3NDEKTSV4RRFFQ69G5FAY", AccountID: to.ID, TransferID: transferID, Seq: to.EntryCount + 1, Amount: 100, BalanceAfter: to.Posted + 100, PostedAt: now},
		}
		if err := tx.PostTransfer(tr, entries); err != nil {
			return err
		}
		if got := tx.Account(a.GetId()); got.Posted != 100 || got.EntryCount != 1 {
			t.Errorf("inside Apply, after PostTransfer, the account has Posted %d, EntryCount %d; want 100, 1", got.Posted, got.EntryCount)
		}
		return errChange
	})
	if !errors.Is(err, errChange) {
		t.Fatalf("Apply = %v, want the error change returned", err)
	}
	_, err = h.store.GetTransfer(ctx, transferID)
	wantStoreNotFound(t, "GetTransfer of a transfer whose Apply failed", err, "transfer", transferID)
	got, held, err := h.store.GetAccount(ctx, a.GetId(), h.clock.Now())
	if err != nil || got.Posted != 0 || got.EntryCount != 0 || held != 0 {
		t.Fatalf("GetAccount after a failed Apply = Posted %d, EntryCount %d, held %d, %v; want 0, 0, 0", got.Posted, got.EntryCount, held, err)
	}
	h.wantUnchanged(t, "a failed Apply", before)

	// The ledger works on: the failed Apply left no lock behind.
	h.mustMove(t, leg(s, a, 100))
	h.wantBalance(t, a, 100, 100)
	h.checkBooks(t)
}

// testStoreResultsNotShared: what a Store returns is the caller's; changing
// it changes nothing stored.
func testStoreResultsNotShared(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.settlement(t, "USD")
	a := h.customerAccount(t, "USD", 0)
	tr := h.mustMove(t, leg(s, a, 100), leg(s, a, 50))

	got, err := h.store.GetTransfer(ctx, tr.GetId())
	if err != nil {
		t.Fatalf("Store.GetTransfer: %v", err)
	}
	got.Legs[0].Amount = 1
	listed, err := h.store.ListTransfers(ctx, ledger.TransferQuery{Limit: 10})
	if err != nil || len(listed) != 1 {
		t.Fatalf("Store.ListTransfers = %v, %v", listed, err)
	}
	listed[0].Legs[1].To = s.GetId()
	entries, err := h.store.ListEntries(ctx, ledger.EntryQuery{AccountID: a.GetId(), Limit: 10})
	if err != nil || len(entries) != 2 {
		t.Fatalf("Store.ListEntries = %v, %v", entries, err)
	}
	entries[0].Amount = 7
	wantSame(t, "GetTransfer after changing what the Store returned", h.transfer(t, tr.GetId()), tr)
	h.wantEntries(t, a, entry{tr.GetId(), 100}, entry{tr.GetId(), 50})
}
