package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"plinth.dev/plinth/internal/pgtest"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/plinth"
)

// procedureCounter counts the calls of each procedure the client sends,
// attempts included.
type procedureCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *procedureCounter) interceptor() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			c.mu.Lock()
			c.calls[req.Spec().Procedure]++
			c.mu.Unlock()
			return next(ctx, req)
		}
	}
}

func (c *procedureCounter) of(procedure string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[procedure]
}

// TestSDKOnPostgres drives the real binary on PostgreSQL through the Go
// SDK's public API only: plinth.New, the domain clients, their iterators
// and the error helpers.
func TestSDKOnPostgres(t *testing.T) {
	env := []string{
		"PLINTH_POSTGRES_URL=" + pgtest.NewDatabase(t),
		"PLINTH_BACKENDS_CUSTOMERS=postgres",
		"PLINTH_BACKENDS_LEDGER=postgres",
		"PLINTH_BACKENDS_ACCESS=postgres",
		"PLINTH_BACKENDS_AUDIT=postgres",
		"PLINTH_KEYRING_BACKEND=local",
		"PLINTH_KEYRING_KEY_FILE=" + filepath.Join(t.TempDir(), "keys.json"),
	}
	runPlinth(t, env, "migrate", "up")
	key := bootstrapKey(t, env)
	g := startGateway(t, env)
	counter := &procedureCounter{calls: map[string]int{}}
	client, err := plinth.New(g.base, key,
		plinth.WithUserAgent("plinth-e2e"),
		plinth.WithConnectOptions(connect.WithInterceptors(counter.interceptor())))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("customers across pages", func(t *testing.T) {
		var want []string
		for i := range 7 {
			res, err := client.Customers.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{
				Name: fmt.Sprintf("SDK Customer %d", i), Email: fmt.Sprintf("sdk-%d@example.com", i),
			}))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, res.Msg.GetCustomer().GetId())
		}
		slices.Sort(want) // ListCustomers pages in id order

		before := counter.of(customersv1connect.CustomerServiceListCustomersProcedure)
		var got []string
		for c, err := range client.Customers.AllCustomers(ctx, &customersv1.ListCustomersRequest{PageSize: 3}) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, c.GetId())
		}
		if !slices.Equal(got, want) {
			t.Fatalf("AllCustomers yielded\n%v\nwant\n%v", got, want)
		}
		if pages := counter.of(customersv1connect.CustomerServiceListCustomersProcedure) - before; pages != 3 {
			t.Errorf("7 customers 3 a page took %d pages, want 3", pages)
		}

		// A filter holds across pages.
		approved := want[:4]
		for _, id := range approved {
			if _, err := client.Customers.ApproveCustomer(ctx, connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: id})); err != nil {
				t.Fatal(err)
			}
		}
		got = nil
		for c, err := range client.Customers.AllCustomers(ctx, &customersv1.ListCustomersRequest{PageSize: 3, State: customersv1.CustomerState_CUSTOMER_STATE_APPROVED}) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, c.GetId())
		}
		if !slices.Equal(got, approved) {
			t.Errorf("approved customers: got %v, want %v", got, approved)
		}

		// A second approval is an illegal transition, with its reason.
		_, err := client.Customers.ApproveCustomer(ctx, connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: approved[0]}))
		if info, ok := plinth.Info(err); !ok || info.Reason != plinth.ReasonIllegalTransition || info.Domain != plinth.ErrorDomain ||
			info.Metadata["from"] != "CUSTOMER_STATE_APPROVED" || plinth.IsRetryable(err) {
			t.Errorf("approving twice: %v; its ErrorInfo %+v", err, info)
		}
	})

	t.Run("a caller's idempotency key is replayed", func(t *testing.T) {
		send := func() string {
			req := connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Once Only", Email: "once@example.com"})
			req.Header().Set(plinth.IdempotencyKeyHeader, "sdk-e2e-once")
			res, err := client.Customers.SignUpCustomer(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			return res.Msg.GetCustomer().GetId()
		}
		if first, second := send(), send(); first != second {
			t.Errorf("the same key signed up %s, then %s", first, second)
		}
	})

	t.Run("validation errors name their fields", func(t *testing.T) {
		before := counter.of(customersv1connect.CustomerServiceSignUpCustomerProcedure)
		_, err := client.Customers.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{
			Name:    "",
			Email:   "not-an-email",
			Address: &customersv1.Address{Line1: "1 Main St", CountryCode: "GB"},
		}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("got %v, want invalid_argument", err)
		}
		if n := counter.of(customersv1connect.CustomerServiceSignUpCustomerProcedure) - before; n != 1 {
			t.Errorf("an invalid request was sent %d times, want once", n)
		}
		fields := map[string]plinth.FieldViolation{}
		for _, v := range plinth.FieldViolations(err) {
			fields[v.Field] = v
		}
		for _, want := range []string{"name", "email", "address.city"} {
			if v, ok := fields[want]; !ok || v.RuleID == "" || v.Message == "" {
				t.Errorf("no violation of %s among %+v", want, fields)
			}
		}
		if fields["email"].RuleID != "string.email" {
			t.Errorf("the email's violation is %+v", fields["email"])
		}
	})

	t.Run("insufficient funds", func(t *testing.T) {
		open := func(policy ledgerv1.BalancePolicy) string {
			t.Helper()
			res, err := client.Ledger.OpenLedgerAccount(ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{Currency: "EUR", BalancePolicy: policy}))
			if err != nil {
				t.Fatal(err)
			}
			return res.Msg.GetAccount().GetId()
		}
		move := func(from, to string, amount int64) error {
			_, err := client.Ledger.MoveMoney(ctx, connect.NewRequest(&ledgerv1.MoveMoneyRequest{
				Currency: "EUR", Legs: []*ledgerv1.Leg{{FromAccountId: from, ToAccountId: to, Amount: amount}},
			}))
			return err
		}
		settlement := open(ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED)
		wallet := open(ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE)
		payee := open(ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE)
		if err := move(settlement, wallet, 2000); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := move(wallet, payee, 250); err != nil {
				t.Fatal(err)
			}
		}

		err := move(wallet, payee, 5000)
		available, currency, ok := plinth.AvailableBalance(err)
		if !ok || available != 1250 || currency != "EUR" {
			t.Fatalf("AvailableBalance(%v) = %d, %q, %v; want 1250 EUR", err, available, currency, ok)
		}
		f, ok := plinth.AsInsufficientFunds(err)
		if want := (plinth.InsufficientFunds{AccountID: wallet, Currency: "EUR", Available: 1250, Floor: 0, Requested: 5000}); !ok || f != want {
			t.Errorf("AsInsufficientFunds = %+v, %v; want %+v", f, ok, want)
		}
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || plinth.Reason(err) != plinth.ReasonInsufficientFunds || plinth.IsRetryable(err) {
			t.Errorf("insufficient funds came back as %v (reason %q)", err, plinth.Reason(err))
		}

		// The ledger's iterators, a page at a time.
		var entries []int64
		for e, err := range client.Ledger.AllAccountEntries(ctx, &ledgerv1.ListAccountEntriesRequest{AccountId: wallet, PageSize: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e.GetAmount())
		}
		if !slices.Equal(entries, []int64{2000, -250, -250, -250}) {
			t.Errorf("the wallet's entries: %v", entries)
		}
		transfers := 0
		for tr, err := range client.Ledger.AllTransfers(ctx, &ledgerv1.ListTransfersRequest{AccountId: payee, PageSize: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			if tr.GetLegs()[0].GetToAccountId() != payee {
				t.Errorf("transfer %v does not pay the payee", tr)
			}
			transfers++
		}
		if transfers != 3 {
			t.Errorf("%d transfers touch the payee, want 3", transfers)
		}
		accounts := 0
		for _, err := range client.Ledger.AllLedgerAccounts(ctx, &ledgerv1.ListLedgerAccountsRequest{PageSize: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			accounts++
		}
		if accounts != 3 {
			t.Errorf("%d accounts, want 3", accounts)
		}
	})

	t.Run("access and audit iterators", func(t *testing.T) {
		var principals []*accessv1.Principal
		for p, err := range client.Access.AllPrincipals(ctx, &accessv1.ListPrincipalsRequest{PageSize: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			principals = append(principals, p)
		}
		if len(principals) == 0 {
			t.Fatal("no principals, not even bootstrap's")
		}
		// The bootstrap key is among its principal's keys.
		found := false
		for _, p := range principals {
			for k, err := range client.Access.AllApiKeys(ctx, &accessv1.ListApiKeysRequest{PrincipalId: p.GetId(), PageSize: 1}) {
				if err != nil {
					t.Fatal(err)
				}
				found = found || strings.HasPrefix(key, "plk_"+k.GetPrefix()+"_")
			}
		}
		if !found {
			t.Error("AllApiKeys of every principal did not yield the bootstrap key")
		}

		signUps := 0
		for r, err := range client.Audit.AllAuditRecords(ctx, &auditv1.ListAuditRecordsRequest{
			PageSize: 3, Capability: new(customersv1connect.CustomerServiceSignUpCustomerProcedure),
		}) {
			if err != nil {
				t.Fatal(err)
			}
			if r.GetCapability() != customersv1connect.CustomerServiceSignUpCustomerProcedure {
				t.Errorf("the filter let through %v", r)
			}
			signUps++
		}
		// 7 sign-ups, 2 of one key (each recorded), 1 invalid.
		if signUps < 7 {
			t.Errorf("%d audit records of sign-ups, want at least 7", signUps)
		}
	})
}
