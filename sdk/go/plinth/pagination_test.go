package plinth_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	resourcesv1 "plinth.dev/plinth/sdk/go/gen/plinth/resources/v1"
	"plinth.dev/plinth/sdk/go/plinth"
)

const listCustomers = customersv1connect.CustomerServiceListCustomersProcedure

// signUpMany signs up n customers and returns their ids in order.
func signUpMany(t *testing.T, client *plinth.Client, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		res, err := client.Customers.SignUpCustomer(context.Background(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
			Name: fmt.Sprint("Customer ", i), Email: fmt.Sprintf("c%d@example.com", i),
		}))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Msg.GetCustomer().GetId())
	}
	return ids
}

// collect ranges over seq and returns the ids of its items, failing on an
// error.
func collect[T interface{ GetId() string }](t *testing.T, seq func(yield func(T, error) bool)) []string {
	t.Helper()
	var ids []string
	for item, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, item.GetId())
	}
	return ids
}

func TestAllCustomersReadsEveryPage(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	want := signUpMany(t, client, 7)

	req := &customersv1.ListCustomersRequest{PageSize: 3}
	got := collect(t, client.Customers.AllCustomers(context.Background(), req))
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	calls := g.callsOf(listCustomers)
	var tokens []string
	for _, c := range calls {
		r := c.Request.(*customersv1.ListCustomersRequest)
		if r.GetPageSize() != 3 {
			t.Errorf("a page was asked with page_size %d", r.GetPageSize())
		}
		tokens = append(tokens, r.GetPageToken())
	}
	if !slices.Equal(tokens, []string{"", "3", "6"}) {
		t.Errorf("pages asked with tokens %q; want 3 pages, each with the previous page's next_page_token", tokens)
	}
	if req.GetPageToken() != "" || req.GetPageSize() != 3 {
		t.Errorf("the caller's request was changed: %v", req)
	}

	// Ranging again starts again; a nil request means every customer.
	if again := collect(t, client.Customers.AllCustomers(context.Background(), nil)); !slices.Equal(again, want) {
		t.Errorf("a nil request: got %v, want %v", again, want)
	}
	// A page token in the request resumes from there.
	if rest := collect(t, client.Customers.AllCustomers(context.Background(), &customersv1.ListCustomersRequest{PageSize: 3, PageToken: "3"})); !slices.Equal(rest, want[3:]) {
		t.Errorf("from page token 3: got %v, want %v", rest, want[3:])
	}
}

func TestBreakingOutFetchesNoMore(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	signUpMany(t, client, 5)
	for _, err := range client.Customers.AllCustomers(context.Background(), &customersv1.ListCustomersRequest{PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if n := len(g.callsOf(listCustomers)); n != 1 {
		t.Fatalf("%d pages fetched, want 1", n)
	}
}

func TestAPageErrorEndsTheIteration(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	signUpMany(t, client, 5)
	g.failNext(listCustomers, nil) // the first page succeeds
	g.failNext(listCustomers, connect.NewError(connect.CodePermissionDenied, errors.New("no customers.read")))
	var items, errs int
	for c, err := range client.Customers.AllCustomers(context.Background(), &customersv1.ListCustomersRequest{PageSize: 2}) {
		if err != nil {
			errs++
			if connect.CodeOf(err) != connect.CodePermissionDenied || c != nil {
				t.Errorf("yielded %v, %v", c, err)
			}
			continue
		}
		items++
	}
	if items != 2 || errs != 1 {
		t.Fatalf("yielded %d items and %d errors; want the first page's 2, then the error once", items, errs)
	}
}

func TestAPageIsRetriedLikeAnyRead(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	want := signUpMany(t, client, 5)
	g.failNext(listCustomers, nil, unavailable())
	if got := collect(t, client.Customers.AllCustomers(context.Background(), &customersv1.ListCustomersRequest{PageSize: 2})); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if n := len(g.callsOf(listCustomers)); n != 4 {
		t.Fatalf("%d calls, want 3 pages and one retry", n)
	}
}

func TestEveryListHasAnIterator(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	ctx := context.Background()

	// Three accounts, two transfers: four entries on the first account.
	var accounts []string
	for _, policy := range []ledgerv1.BalancePolicy{ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED, ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE, ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE} {
		res, err := client.Ledger.OpenLedgerAccount(ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{Currency: "EUR", BalancePolicy: policy}))
		if err != nil {
			t.Fatal(err)
		}
		accounts = append(accounts, res.Msg.GetAccount().GetId())
	}
	var transfers []string
	for _, to := range accounts[1:] {
		for range 2 {
			res, err := client.Ledger.MoveMoney(ctx, connect.NewRequest(&ledgerv1.MoveMoneyRequest{
				Currency: "EUR", Legs: []*ledgerv1.Leg{{FromAccountId: accounts[0], ToAccountId: to, Amount: 100}},
			}))
			if err != nil {
				t.Fatal(err)
			}
			transfers = append(transfers, res.Msg.GetTransfer().GetId())
		}
	}

	for _, tc := range []struct {
		name string
		got  []string
		want int
	}{
		{"AllLedgerAccounts", collect(t, client.Ledger.AllLedgerAccounts(ctx, &ledgerv1.ListLedgerAccountsRequest{PageSize: 2})), len(accounts)},
		{"AllTransfers", collect(t, client.Ledger.AllTransfers(ctx, &ledgerv1.ListTransfersRequest{PageSize: 3})), len(transfers)},
		{"AllAccountEntries", collect(t, client.Ledger.AllAccountEntries(ctx, &ledgerv1.ListAccountEntriesRequest{AccountId: accounts[0], PageSize: 3})), len(transfers)},
		{"AllPrincipals", collect(t, client.Access.AllPrincipals(ctx, &accessv1.ListPrincipalsRequest{PageSize: 2})), fakePrincipals},
		{"AllApiKeys", collect(t, client.Access.AllApiKeys(ctx, &accessv1.ListApiKeysRequest{PrincipalId: "prn_1", PageSize: 2})), fakeKeys},
		{"AllAuditRecords", collect(t, client.Audit.AllAuditRecords(ctx, &auditv1.ListAuditRecordsRequest{PageSize: 2})), fakeRecords},
	} {
		if len(tc.got) != tc.want || len(slices.Compact(slices.Clone(tc.got))) != tc.want {
			t.Errorf("%s yielded %v; want %d distinct items", tc.name, tc.got, tc.want)
		}
	}
	if got := collect(t, client.Ledger.AllTransfers(ctx, nil)); !slices.Equal(got, transfers) {
		t.Errorf("AllTransfers: got %v, want %v", got, transfers)
	}
}

func TestPaginateStopsOnARepeatedToken(t *testing.T) {
	fetches := 0
	seq := plinth.Paginate(context.Background(), func(_ context.Context, token string) ([]int, string, error) {
		fetches++
		return []int{fetches}, "same", nil
	})
	var items []int
	var last error
	for n, err := range seq {
		if err != nil {
			last = err
			continue
		}
		items = append(items, n)
	}
	if !slices.Equal(items, []int{1, 2}) || last == nil || !strings.Contains(last.Error(), "same token") {
		t.Fatalf("items %v, error %v; want two pages, then an error", items, last)
	}
}

// AllCustomerResources pages through what one customer owns: the customer,
// then their accounts, and nobody else's.
func TestAllCustomerResources(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	ctx := context.Background()
	customers := signUpMany(t, client, 2)
	want := []string{customers[0]}
	for i := range 5 {
		owner := customers[i%2]
		res, err := client.Ledger.OpenLedgerAccount(ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
			Currency: "EUR", CustomerId: owner, BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE,
		}))
		if err != nil {
			t.Fatal(err)
		}
		if owner == customers[0] {
			want = append(want, res.Msg.GetAccount().GetId())
		}
	}
	req := &resourcesv1.ListCustomerResourcesRequest{CustomerId: customers[0], PageSize: 2}
	if got := collect(t, client.Resources.AllCustomerResources(ctx, req)); !slices.Equal(got, want) {
		t.Errorf("AllCustomerResources = %v, want %v", got, want)
	}
	if n := len(g.callsOf("/plinth.resources.v1.ResourceService/ListCustomerResources")); n != 2 {
		t.Errorf("%d pages fetched for 4 resources 2 at a time, want 2", n)
	}
	if req.GetPageToken() != "" {
		t.Errorf("the caller's request was changed: %v", req)
	}
	// An unknown customer: the error once, nothing else.
	var errs int
	for r, err := range client.Resources.AllCustomerResources(ctx, &resourcesv1.ListCustomerResourcesRequest{CustomerId: "cus_unknown"}) {
		if connect.CodeOf(err) != connect.CodeNotFound || r != nil {
			t.Errorf("yielded %v, %v; want not_found", r, err)
		}
		errs++
	}
	if errs != 1 {
		t.Errorf("an unknown customer yielded %d errors, want 1", errs)
	}
}
