// Package resourcestest is the conformance suite of the resources domain.
// The domain reads the others through their resource sources, so the suite
// holds two things to the same rules: the resources Store (today
// resources/composite), and the sources of the customers and ledger
// domains over whichever backend of theirs the caller gives it:
//
//	func TestConformance(t *testing.T) {
//		resourcestest.Run(t, func(t *testing.T) resourcestest.Backend {
//			cs, ls := customersmemory.New(), ledgermemory.New()
//			return resourcestest.Backend{Customers: cs, Ledger: ls,
//				Store: composite.New(resourcestest.Sources(cs, ls))}
//		})
//	}
//
// The suite makes customers and accounts through the customers and ledger
// Services over those stores, then drives the resources capabilities (the
// methods of resources.Service) over the resources Store; where the
// ResourceSource interface promises more than the capabilities show, it
// calls the sources directly. Every subtest runs in parallel with the
// others on stores of its own, and keeps its work modest.
package resourcestest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"plinth.dev/plinth/capabilities/customers"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/ledger"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/capabilities/resources"
	"plinth.dev/plinth/internal/pagetoken"
	"plinth.dev/plinth/internal/pagetoken/pagetokentest"
	"plinth.dev/plinth/internal/testclock"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	resourcesv1 "plinth.dev/plinth/sdk/go/gen/plinth/resources/v1"
)

// Backend is what one subtest runs over: empty stores of the customers and
// ledger domains, of their own for this subtest, and the resources Store
// that reads them (through Sources of the same two stores).
type Backend struct {
	Customers customers.Store
	Ledger    ledger.Store
	Store     resources.Store
}

// Sources returns the resource sources of the customers and ledger
// domains over cs and ls, as the gateway makes them from the domains'
// registrations: what a resources Store reads in the suite.
func Sources(cs customers.Store, ls ledger.Store) func() []registry.ResourceSource {
	sources := []registry.ResourceSource{customers.Resources(cs), ledger.Resources(ls)}
	return func() []registry.ResourceSource { return sources }
}

// Run runs the conformance suite against the Backend that newBackend
// returns. newBackend is called once per subtest, possibly from several
// subtests at once.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	s := suite{newBackend: newBackend}

	s.run(t, "ListCustomerResources/CustomerAndAccounts", testListCustomerAndAccounts)
	s.run(t, "ListCustomerResources/OnlyTheCustomer", testListOnlyTheCustomer)
	s.run(t, "ListCustomerResources/NoSensitiveData", testListNoSensitiveData)
	s.run(t, "ListCustomerResources/StatesAreCurrent", testListStatesAreCurrent)
	s.run(t, "ListCustomerResources/UnknownCustomer", testListUnknownCustomer)
	s.run(t, "ListCustomerResources/PageSizes", testListPageSizes)
	s.run(t, "ListCustomerResources/PageTokenOfAnotherCustomer", testListTokenOfAnotherCustomer)
	s.run(t, "ListCustomerResources/ForgedPageToken", testListForgedToken)
	s.run(t, "ListCustomerResources/WhileOpening", testListWhileOpening)

	s.run(t, "GetResource/EveryType", testGetEveryType)
	s.run(t, "GetResource/PlatformAccount", testGetPlatformAccount)
	s.run(t, "GetResource/Unknown", testGetUnknown)
	s.run(t, "GetResource/UnknownPrefix", testGetUnknownPrefix)

	s.run(t, "Sources/DistinctPrefixes", testSourcesDistinctPrefixes)
	s.run(t, "Sources/AfterAndLimit", testSourcesAfterAndLimit)
	s.run(t, "Sources/UnknownCustomerOwnsNothing", testSourcesUnknownCustomer)
}

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

// epoch is where the suite's clock starts: a fixed instant with
// nanoseconds, finer than the microseconds the services keep.
var epoch = time.Date(2025, time.March, 14, 15, 9, 26, 535897932, time.UTC)

// stamp is t as the services keep it: microseconds.
func stamp(t time.Time) *timestamppb.Timestamp {
	return timestamppb.New(t.UTC().Truncate(time.Microsecond))
}

// harness is the three domains' services over one Backend.
type harness struct {
	b         Backend
	customers *customers.Service
	ledger    *ledger.Service
	svc       *resources.Service
	clock     *testclock.Clock

	mu  sync.Mutex
	seq int
}

func newHarness(t *testing.T, b Backend) *harness {
	t.Helper()
	if b.Customers == nil || b.Ledger == nil || b.Store == nil {
		t.Fatal("newBackend returned a Backend without its stores")
	}
	c := testclock.New(epoch)
	tokens, err := pagetoken.NewCodec(pagetokentest.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{
		b:         b,
		customers: customers.NewService(b.Customers, customers.WithClock(c.Now)),
		ledger:    ledger.NewService(b.Ledger, ledger.WithClock(c.Now)),
		svc:       resources.NewService(b.Store, resources.WithPageTokens(tokens)),
		clock:     c,
	}
}

// The made-up customer's personal data, which no resource may show.
const (
	secretName    = "Augusta Ada King"
	secretPhone   = "+442071234567"
	secretTaxID   = "AB123456C"
	secretAccount = "Ada's private savings"
)

// newCustomer signs up a customer with a full profile, a minute after the
// last thing the harness made.
func (h *harness) newCustomer(t *testing.T) *customersv1.Customer {
	t.Helper()
	h.mu.Lock()
	h.seq++
	email := fmt.Sprintf("owner%04d@example.com", h.seq)
	h.mu.Unlock()
	h.clock.Advance(time.Minute)
	res, err := h.customers.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
		Name: secretName, Email: email, Phone: secretPhone, DateOfBirth: "1815-12-10", TaxId: secretTaxID,
		Address: &customersv1.Address{Line1: "12 St James's Square", City: "London", CountryCode: "GB"},
	}))
	if err != nil {
		t.Fatalf("SignUpCustomer: %v", err)
	}
	return res.Msg.GetCustomer()
}

// openAccount opens an account for customerID ("" for the platform).
func (h *harness) openAccount(t *testing.T, customerID, currency string) *ledgerv1.LedgerAccount {
	t.Helper()
	h.clock.Advance(time.Second)
	policy := ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE
	if customerID == "" {
		policy = ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED
	}
	res, err := h.ledger.OpenLedgerAccount(t.Context(), connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
		Currency: currency, CustomerId: customerID, BalancePolicy: policy, Description: secretAccount,
	}))
	if err != nil {
		t.Fatalf("OpenLedgerAccount: %v", err)
	}
	return res.Msg.GetAccount()
}

// list calls ListCustomerResources.
func (h *harness) list(ctx context.Context, customerID string, size int32, token string) (*resourcesv1.ListCustomerResourcesResponse, error) {
	res, err := h.svc.ListCustomerResources(ctx, connect.NewRequest(&resourcesv1.ListCustomerResourcesRequest{
		CustomerId: customerID, PageSize: size, PageToken: token,
	}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// listAll reads every page of a customer's resources, size at a time.
func (h *harness) listAll(t *testing.T, customerID string, size int32) []*resourcesv1.Resource {
	t.Helper()
	var all []*resourcesv1.Resource
	token := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("ListCustomerResources never ends")
		}
		page, err := h.list(t.Context(), customerID, size, token)
		if err != nil {
			t.Fatalf("ListCustomerResources(%s, size %d): %v", customerID, size, err)
		}
		if want := int(pagetoken.Size(size)); len(page.GetResources()) > want {
			t.Fatalf("a page of %d resources; page size %d", len(page.GetResources()), want)
		}
		all = append(all, page.GetResources()...)
		if page.GetNextPageToken() == "" {
			return all
		}
		token = page.GetNextPageToken()
	}
}

func (h *harness) get(ctx context.Context, id string) (*resourcesv1.Resource, error) {
	res, err := h.svc.GetResource(ctx, connect.NewRequest(&resourcesv1.GetResourceRequest{ResourceId: id}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetResource(), nil
}

// customerResource is what the suite expects of customer c.
func customerResource(c *customersv1.Customer) *resourcesv1.Resource {
	return &resourcesv1.Resource{
		Id: c.GetId(), Domain: "customers", Type: "customer", State: c.GetState().String(),
		CustomerId: c.GetId(), CreatedAt: c.GetCreatedAt(),
	}
}

// accountResource is what the suite expects of account a.
func accountResource(a *ledgerv1.LedgerAccount) *resourcesv1.Resource {
	return &resourcesv1.Resource{
		Id: a.GetId(), Domain: "ledger", Type: "ledger_account", State: a.GetState().String(),
		CustomerId: a.GetCustomerId(), CreatedAt: a.GetCreatedAt(),
		Attributes: map[string]string{"currency": a.GetCurrency(), "balance_policy": a.GetBalancePolicy().String()},
	}
}

func ids(rs []*resourcesv1.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.GetId()
	}
	return out
}

// equal fails the test unless got and want are the same resources, in
// order.
func equal(t *testing.T, what string, got, want []*resourcesv1.Resource) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d resources %v, want %d %v", what, len(got), ids(got), len(want), ids(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("%s: resource %d is\n  %v\nwant\n  %v", what, i, got[i], want[i])
		}
	}
}

// errAs returns err as a T, failing the test if it is not one.
func errAs[T error](t *testing.T, err error) T {
	t.Helper()
	var target T
	if !errors.As(err, &target) {
		t.Fatalf("error %v (%T), want a %T", err, err, target)
	}
	return target
}

func wantNotFound(t *testing.T, err error, resource, id string) {
	t.Helper()
	got := errAs[*domainerr.NotFoundError](t, err)
	if got.Resource != resource || got.ID != id {
		t.Errorf("NotFoundError = %+v, want %s %s", *got, resource, id)
	}
}

func wantInvalidPageToken(t *testing.T, err error) {
	t.Helper()
	got := errAs[*domainerr.InvalidArgumentError](t, err)
	if got.Field != "page_token" {
		t.Errorf("InvalidArgumentError on %q, want page_token", got.Field)
	}
}

// A customer's resources: the customer, then its accounts by id; no other
// customer's account, no platform account.
func testListCustomerAndAccounts(t *testing.T, h *harness) {
	ada := h.newCustomer(t)
	other := h.newCustomer(t)
	h.openAccount(t, "", "USD") // the platform's
	wallet := h.openAccount(t, ada.GetId(), "USD")
	h.openAccount(t, other.GetId(), "USD")
	savings := h.openAccount(t, ada.GetId(), "EUR")

	approved, err := h.customers.ApproveCustomer(t.Context(), connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: ada.GetId()}))
	if err != nil {
		t.Fatal(err)
	}
	frozen, err := h.ledger.FreezeLedgerAccount(t.Context(), connect.NewRequest(&ledgerv1.FreezeLedgerAccountRequest{AccountId: savings.GetId(), Reason: "review"}))
	if err != nil {
		t.Fatal(err)
	}

	want := []*resourcesv1.Resource{
		customerResource(approved.Msg.GetCustomer()),
		accountResource(wallet),
		accountResource(frozen.Msg.GetAccount()),
	}
	if want[0].GetState() != "CUSTOMER_STATE_APPROVED" || want[2].GetState() != "LEDGER_ACCOUNT_STATE_FROZEN" ||
		!proto.Equal(want[0].GetCreatedAt(), ada.GetCreatedAt()) {
		t.Fatalf("the suite's expectations are wrong: %v", want)
	}
	page, err := h.list(t.Context(), ada.GetId(), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "ListCustomerResources", page.GetResources(), want)
	if page.GetNextPageToken() != "" {
		t.Errorf("one page holds three resources, yet next_page_token is %q", page.GetNextPageToken())
	}
	// The timestamps are the domains' own, at the microsecond.
	if got := page.GetResources()[1].GetCreatedAt(); !proto.Equal(got, stamp(wallet.GetCreatedAt().AsTime())) {
		t.Errorf("the wallet's created_at %v, want %v", got, wallet.GetCreatedAt())
	}
}

func testListOnlyTheCustomer(t *testing.T, h *harness) {
	c := h.newCustomer(t)
	h.openAccount(t, "", "USD")
	page, err := h.list(t.Context(), c.GetId(), 1, "")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "a customer without accounts", page.GetResources(), []*resourcesv1.Resource{customerResource(c)})
	if page.GetNextPageToken() != "" {
		t.Errorf("a full last page has next_page_token %q", page.GetNextPageToken())
	}
}

// No resource shows a customer's personal data or an account's
// description, whoever asks: the contract classifies nothing in a
// Resource, so the gateway would mask nothing.
func testListNoSensitiveData(t *testing.T, h *harness) {
	c := h.newCustomer(t)
	a := h.openAccount(t, c.GetId(), "USD")
	page, err := h.list(t.Context(), c.GetId(), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	cr, err := h.get(t.Context(), c.GetId())
	if err != nil {
		t.Fatal(err)
	}
	ar, err := h.get(t.Context(), a.GetId())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []proto.Message{page, cr, ar} {
		text := protojson.Format(m)
		for _, secret := range []string{secretName, c.GetEmail(), secretPhone, "1815-12-10", secretTaxID, "St James", "London", secretAccount} {
			if strings.Contains(text, secret) {
				t.Errorf("a resource shows %q:\n%s", secret, text)
			}
		}
	}
}

// A resource's state is its domain's as it is now.
func testListStatesAreCurrent(t *testing.T, h *harness) {
	c := h.newCustomer(t)
	a := h.openAccount(t, c.GetId(), "USD")
	for _, step := range []struct {
		change        func() error
		customer, acc string
	}{
		{func() error { return nil }, "CUSTOMER_STATE_PENDING", "LEDGER_ACCOUNT_STATE_OPEN"},
		{func() error {
			_, err := h.customers.ApproveCustomer(t.Context(), connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: c.GetId()}))
			return err
		}, "CUSTOMER_STATE_APPROVED", "LEDGER_ACCOUNT_STATE_OPEN"},
		{func() error {
			_, err := h.customers.SuspendCustomer(t.Context(), connect.NewRequest(&customersv1.SuspendCustomerRequest{CustomerId: c.GetId(), Reason: "review"}))
			return err
		}, "CUSTOMER_STATE_SUSPENDED", "LEDGER_ACCOUNT_STATE_OPEN"},
		{func() error {
			_, err := h.ledger.CloseLedgerAccount(t.Context(), connect.NewRequest(&ledgerv1.CloseLedgerAccountRequest{AccountId: a.GetId()}))
			return err
		}, "CUSTOMER_STATE_SUSPENDED", "LEDGER_ACCOUNT_STATE_CLOSED"},
		{func() error {
			_, err := h.customers.CloseCustomer(t.Context(), connect.NewRequest(&customersv1.CloseCustomerRequest{CustomerId: c.GetId()}))
			return err
		}, "CUSTOMER_STATE_CLOSED", "LEDGER_ACCOUNT_STATE_CLOSED"},
	} {
		if err := step.change(); err != nil {
			t.Fatal(err)
		}
		page, err := h.list(t.Context(), c.GetId(), 0, "")
		if err != nil {
			t.Fatal(err)
		}
		rs := page.GetResources()
		if len(rs) != 2 || rs[0].GetState() != step.customer || rs[1].GetState() != step.acc {
			t.Fatalf("listed %v; want the customer %s and the account %s", rs, step.customer, step.acc)
		}
		for i, id := range []string{c.GetId(), a.GetId()} {
			got, err := h.get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, rs[i]) {
				t.Errorf("GetResource(%s) = %v; the listing has %v", id, got, rs[i])
			}
		}
	}
}

func testListUnknownCustomer(t *testing.T, h *harness) {
	const unknown = "cus_01JQ0000000000000000000000"
	// Even with an account that names it: the ledger does not check
	// customers, the customers domain says who exists.
	h.openAccount(t, unknown, "USD")
	_, err := h.list(t.Context(), unknown, 0, "")
	wantNotFound(t, err, "customer", unknown)
}

// Every resource exactly once, in id order, whatever the page size; the
// last page has no token.
func testListPageSizes(t *testing.T, h *harness) {
	c := h.newCustomer(t)
	want := []*resourcesv1.Resource{customerResource(c)}
	for i := range 6 {
		want = append(want, accountResource(h.openAccount(t, c.GetId(), []string{"USD", "EUR"}[i%2])))
		h.openAccount(t, "", "USD") // interleaved: not the customer's
	}
	if !slices.IsSortedFunc(want, func(a, b *resourcesv1.Resource) int { return strings.Compare(a.GetId(), b.GetId()) }) {
		t.Fatalf("ids do not sort in the order they were made: %v", ids(want))
	}
	for _, size := range []int32{0, 1, 2, 3, 6, 7, 8, 200} {
		equal(t, fmt.Sprintf("page size %d", size), h.listAll(t, c.GetId(), size), want)
	}
	// Exactly full pages: the last page's token leads to an empty page
	// or none at all, never to a repeat.
	first, err := h.list(t.Context(), c.GetId(), 7, "")
	if err != nil {
		t.Fatal(err)
	}
	if first.GetNextPageToken() != "" {
		rest, err := h.list(t.Context(), c.GetId(), 7, first.GetNextPageToken())
		if err != nil || len(rest.GetResources()) != 0 || rest.GetNextPageToken() != "" {
			t.Errorf("after a full page of everything: %v, %v", rest, err)
		}
	}
}

func testListTokenOfAnotherCustomer(t *testing.T, h *harness) {
	a, b := h.newCustomer(t), h.newCustomer(t)
	h.openAccount(t, a.GetId(), "USD")
	h.openAccount(t, b.GetId(), "USD")
	page, err := h.list(t.Context(), a.GetId(), 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if page.GetNextPageToken() == "" {
		t.Fatal("no next_page_token after the first of two resources")
	}
	_, err = h.list(t.Context(), b.GetId(), 1, page.GetNextPageToken())
	wantInvalidPageToken(t, err)
}

func testListForgedToken(t *testing.T, h *harness) {
	c := h.newCustomer(t)
	h.openAccount(t, c.GetId(), "USD")
	h.openAccount(t, c.GetId(), "USD")
	page, err := h.list(t.Context(), c.GetId(), 1, "")
	if err != nil {
		t.Fatal(err)
	}
	token := page.GetNextPageToken()
	for _, bad := range append(pagetokentest.Altered(token), "not a token", "c3RhcnQ") {
		_, err := h.list(t.Context(), c.GetId(), 1, bad)
		wantInvalidPageToken(t, err)
	}
	// A token of another deployment's key is refused too.
	other, err := pagetoken.NewCodec(pagetokentest.OtherKey)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := resources.NewService(h.b.Store, resources.WithPageTokens(other)).ListCustomerResources(t.Context(),
		connect.NewRequest(&resourcesv1.ListCustomerResourcesRequest{CustomerId: c.GetId(), PageSize: 1}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.list(t.Context(), c.GetId(), 1, theirs.Msg.GetNextPageToken())
	wantInvalidPageToken(t, err)
}

// A resource that exists when the first page is read is listed exactly
// once, while the customer opens more accounts.
func testListWhileOpening(t *testing.T, h *harness) {
	c := h.newCustomer(t)
	before := []string{c.GetId()}
	for range 8 {
		before = append(before, h.openAccount(t, c.GetId(), "USD").GetId())
	}
	var listed []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("ListCustomerResources never ends: listed %d resources", len(listed))
		}
		page, err := h.list(t.Context(), c.GetId(), 2, token)
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, ids(page.GetResources())...)
		h.openAccount(t, c.GetId(), "USD") // after the page: later pages may or may not have it
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if !slices.IsSorted(listed) || len(slices.Compact(slices.Clone(listed))) != len(listed) {
		t.Errorf("listed %v: not in id order, or with repeats", listed)
	}
	for _, id := range before {
		if !slices.Contains(listed, id) {
			t.Errorf("%s existed before the first page and was never listed", id)
		}
	}
}

func testGetEveryType(t *testing.T, h *harness) {
	c := h.newCustomer(t)
	a := h.openAccount(t, c.GetId(), "JPY")
	for _, want := range []*resourcesv1.Resource{customerResource(c), accountResource(a)} {
		got, err := h.get(t.Context(), want.GetId())
		if err != nil {
			t.Fatalf("GetResource(%s): %v", want.GetId(), err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("GetResource(%s) = %v, want %v", want.GetId(), got, want)
		}
	}
}

// The platform's own accounts are resources too, owned by no customer.
func testGetPlatformAccount(t *testing.T, h *harness) {
	a := h.openAccount(t, "", "USD")
	got, err := h.get(t.Context(), a.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if want := accountResource(a); !proto.Equal(got, want) || got.GetCustomerId() != "" ||
		got.GetAttributes()["balance_policy"] != "BALANCE_POLICY_UNRESTRICTED" {
		t.Errorf("GetResource = %v, want %v", got, want)
	}
}

func testGetUnknown(t *testing.T, h *harness) {
	h.newCustomer(t)
	h.openAccount(t, "", "USD")
	_, err := h.get(t.Context(), "cus_01JQ0000000000000000000000")
	wantNotFound(t, err, "customer", "cus_01JQ0000000000000000000000")
	_, err = h.get(t.Context(), "lac_01JQ0000000000000000000000")
	wantNotFound(t, err, "ledger account", "lac_01JQ0000000000000000000000")
}

func testGetUnknownPrefix(t *testing.T, h *harness) {
	for _, id := range []string{"trf_01JQ0000000000000000000000", "xyz_01JQ0000000000000000000000"} {
		_, err := h.get(t.Context(), id)
		got := errAs[*resources.UnknownPrefixError](t, err)
		if got.Field != "resource_id" || got.Prefix != id[:3] || !slices.Equal(got.Known, []string{"cus", "lac"}) {
			t.Errorf("GetResource(%s): %+v", id, *got)
		}
		if kind, _ := domainerr.KindOf(err); kind != domainerr.KindInvalidArgument || got.Reason() != "UNKNOWN_RESOURCE_PREFIX" ||
			got.Metadata()["prefix"] != id[:3] || got.Metadata()["known_prefixes"] != "cus,lac" {
			t.Errorf("GetResource(%s): kind %v, reason %s, metadata %v", id, kind, got.Reason(), got.Metadata())
		}
	}
}

func testSourcesDistinctPrefixes(t *testing.T, h *harness) {
	seen := map[string]bool{}
	for _, src := range h.b.Store.Sources() {
		for _, p := range src.Prefixes() {
			if seen[p] {
				t.Errorf("two sources claim prefix %q", p)
			}
			seen[p] = true
		}
	}
	if !seen["cus"] || !seen["lac"] {
		t.Errorf("the sources' prefixes %v lack cus or lac", seen)
	}
}

// Each source on its own: at most Limit resources, after AfterID, in id
// order, the customer's only.
func testSourcesAfterAndLimit(t *testing.T, h *harness) {
	c := h.newCustomer(t)
	other := h.newCustomer(t)
	var accounts []string
	for range 4 {
		accounts = append(accounts, h.openAccount(t, c.GetId(), "USD").GetId())
		h.openAccount(t, other.GetId(), "USD")
	}
	want := map[string][]string{"cus": {c.GetId()}, "lac": accounts}
	for _, src := range h.b.Store.Sources() {
		mine := want[src.Prefixes()[0]]
		for _, after := range append([]string{""}, mine...) {
			for _, limit := range []int{1, 2, 10} {
				got, err := src.CustomerResources(t.Context(), registry.ResourceQuery{CustomerID: c.GetId(), AfterID: after, Limit: limit})
				if err != nil {
					t.Fatal(err)
				}
				var rest []string
				for _, id := range mine {
					if id > after {
						rest = append(rest, id)
					}
				}
				rest = rest[:min(limit, len(rest))]
				gotIDs := make([]string, len(got))
				for i, r := range got {
					gotIDs[i] = r.ID
					if r.CustomerID != c.GetId() {
						t.Errorf("%T listed %s of customer %q", src, r.ID, r.CustomerID)
					}
				}
				if !slices.Equal(gotIDs, rest) {
					t.Errorf("%T.CustomerResources(after %q, limit %d) = %v, want %v", src, after, limit, gotIDs, rest)
				}
			}
		}
	}
}

func testSourcesUnknownCustomer(t *testing.T, h *harness) {
	h.newCustomer(t)
	h.openAccount(t, "", "USD")
	for _, src := range h.b.Store.Sources() {
		got, err := src.CustomerResources(t.Context(), registry.ResourceQuery{CustomerID: "cus_01JQ0000000000000000000000", Limit: 10})
		if err != nil || len(got) != 0 {
			t.Errorf("%T.CustomerResources(an unknown customer) = %v, %v; want nothing, no error", src, got, err)
		}
	}
}
