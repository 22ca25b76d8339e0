package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"plinth.dev/plinth/internal/pgtest"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
	resourcesv1 "plinth.dev/plinth/sdk/go/gen/plinth/resources/v1"
	"plinth.dev/plinth/sdk/go/plinth"
)

// A product built only from capabilities: instant payouts for contractors.
//
// A marketplace signs a contractor up, approves them, opens a wallet and a
// tax reserve for them in the ledger, credits their earnings from the
// platform's settlement account, and pays out instantly: the payout goes to
// the platform's "payouts in transit" account (money on its way to the
// contractor's card) and the fee back to settlement, in one atomic
// transfer. Everything below the test's setup is the product's code, written
// against the Go SDK's public API only, with the API key of its own
// principal.

// payoutsRole is what the product's principal may do: manage and review
// customers, move money and list what a customer owns, but not see their
// personal data in full.
const payoutsRole = `
[auth.roles.payouts]
scopes = ["customers.read", "customers.write", "customers.review",
          "ledger.read", "ledger.accounts.write", "ledger.transfers.write",
          "resources.read"]
reveal = []
`

// payoutsApp is the product: a client of the gateway and the platform's own
// accounts.
type payoutsApp struct {
	client     *plinth.Client
	settlement string // the platform's settlement account: earnings come from it, fees go to it
	inTransit  string // instant payouts on their way to contractors' cards
}

// contractor is what the product knows of one contractor.
type contractor struct {
	customerID string
	wallet     string // what they earned and may pay out
	taxReserve string // held back for taxes
}

// openPlatformAccounts opens the platform's own accounts: no customer, no
// floor.
func openPlatformAccounts(ctx context.Context, client *plinth.Client, currency string) (*payoutsApp, error) {
	app := &payoutsApp{client: client}
	for _, a := range []struct {
		id          *string
		description string
	}{{&app.settlement, "platform settlement"}, {&app.inTransit, "instant payouts in transit"}} {
		res, err := client.Ledger.OpenLedgerAccount(ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
			Currency:      currency,
			BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED,
			Description:   a.description,
		}))
		if err != nil {
			return nil, err
		}
		*a.id = res.Msg.GetAccount().GetId()
	}
	return app, nil
}

// onboard signs a contractor up, approves them, and opens their accounts,
// which may never go below zero.
func (app *payoutsApp) onboard(ctx context.Context, name, email, currency string) (*contractor, error) {
	signed, err := app.client.Customers.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: name, Email: email}))
	if err != nil {
		return nil, err
	}
	c := &contractor{customerID: signed.Msg.GetCustomer().GetId()}
	// The ledger does not check customers: approving them first is the
	// product's job.
	if _, err := app.client.Customers.ApproveCustomer(ctx, connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: c.customerID})); err != nil {
		return nil, err
	}
	for _, a := range []struct {
		id          *string
		description string
	}{{&c.wallet, "contractor wallet"}, {&c.taxReserve, "tax reserve"}} {
		res, err := app.client.Ledger.OpenLedgerAccount(ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
			Currency:      currency,
			CustomerId:    c.customerID,
			BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE,
			Description:   a.description,
		}))
		if err != nil {
			return nil, err
		}
		*a.id = res.Msg.GetAccount().GetId()
	}
	return c, nil
}

// creditEarnings credits what a contractor earned from settlement, a part
// of it to their tax reserve, in one transfer.
func (app *payoutsApp) creditEarnings(ctx context.Context, c *contractor, currency string, earned, taxPart int64) (*ledgerv1.Transfer, error) {
	res, err := app.client.Ledger.MoveMoney(ctx, connect.NewRequest(&ledgerv1.MoveMoneyRequest{
		Currency: currency,
		Legs: []*ledgerv1.Leg{
			{FromAccountId: app.settlement, ToAccountId: c.wallet, Amount: earned - taxPart},
			{FromAccountId: app.settlement, ToAccountId: c.taxReserve, Amount: taxPart},
		},
		Description: "earnings",
	}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetTransfer(), nil
}

// instantPayout pays amount out of a contractor's wallet and takes the fee,
// both or neither. key names this payout attempt: sending it again with the
// same key (after a crash, say) pays out once; replayed says that an
// earlier attempt had done it.
func (app *payoutsApp) instantPayout(ctx context.Context, c *contractor, key, currency string, amount, fee int64) (_ *ledgerv1.Transfer, replayed bool, _ error) {
	req := connect.NewRequest(&ledgerv1.MoveMoneyRequest{
		Currency: currency,
		Legs: []*ledgerv1.Leg{
			{FromAccountId: c.wallet, ToAccountId: app.inTransit, Amount: amount},
			{FromAccountId: c.wallet, ToAccountId: app.settlement, Amount: fee},
		},
		Description: "instant payout",
	})
	req.Header().Set(plinth.IdempotencyKeyHeader, key)
	res, err := app.client.Ledger.MoveMoney(ctx, req)
	if err != nil {
		return nil, false, err
	}
	return res.Msg.GetTransfer(), res.Header().Get("Idempotent-Replayed") == "true", nil
}

// lostAnswers makes the answer of the first attempt of each MoveMoney whose
// idempotency key it is told about get lost on the way back, after the
// gateway has applied it: the client sees Unavailable, as it would if the
// connection dropped.
type lostAnswers struct {
	mu   sync.Mutex
	keys map[string]bool // key -> its answer was lost already
}

func (l *lostAnswers) lose(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys[key] = false
}

func (l *lostAnswers) interceptor() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			res, err := next(ctx, req)
			if req.Spec().Procedure != ledgerv1connect.LedgerServiceMoveMoneyProcedure || err != nil {
				return res, err
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			key := req.Header().Get(plinth.IdempotencyKeyHeader)
			if lost, ok := l.keys[key]; ok && !lost {
				l.keys[key] = true
				return nil, connect.NewError(connect.CodeUnavailable, errors.New("the connection dropped before the answer arrived"))
			}
			return res, err
		}
	}
}

// TestPayoutsForContractors runs the instant payouts product against the
// real binary on PostgreSQL.
func TestPayoutsForContractors(t *testing.T) {
	config := filepath.Join(t.TempDir(), "plinth.toml")
	if err := os.WriteFile(config, []byte(payoutsRole), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PLINTH_CONFIG=" + config,
		"PLINTH_POSTGRES_URL=" + pgtest.NewDatabase(t),
		"PLINTH_BACKENDS_CUSTOMERS=postgres",
		"PLINTH_BACKENDS_LEDGER=postgres",
		"PLINTH_BACKENDS_ACCESS=postgres",
		"PLINTH_BACKENDS_AUDIT=postgres",
		"PLINTH_KEYRING_BACKEND=local",
		"PLINTH_KEYRING_KEY_FILE=" + filepath.Join(t.TempDir(), "keys.json"),
	}
	runPlinth(t, env, "migrate", "up")
	adminKey := bootstrapKey(t, env)
	g := startGateway(t, env)
	ctx := context.Background()

	// The platform team gives the product its principal, role and key.
	admin, err := plinth.New(g.base, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	principal, err := admin.Access.CreatePrincipal(ctx, connect.NewRequest(&accessv1.CreatePrincipalRequest{Name: "payouts-app", Description: "instant payouts for contractors"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Access.GrantRole(ctx, connect.NewRequest(&accessv1.GrantRoleRequest{PrincipalId: principal.Msg.GetPrincipal().GetId(), Role: "payouts"})); err != nil {
		t.Fatal(err)
	}
	issued, err := admin.Access.IssueApiKey(ctx, connect.NewRequest(&accessv1.IssueApiKeyRequest{PrincipalId: principal.Msg.GetPrincipal().GetId(), Description: "payouts-app e2e"}))
	if err != nil {
		t.Fatal(err)
	}

	// The product's client, with its own key. The interceptors stand in for
	// the network: they count attempts and lose answers on demand.
	attempts := &procedureCounter{calls: map[string]int{}}
	network := &lostAnswers{keys: map[string]bool{}}
	client, err := plinth.New(g.base, issued.Msg.GetSecret(),
		plinth.WithUserAgent("payouts-app/1.0"),
		plinth.WithConnectOptions(connect.WithInterceptors(attempts.interceptor(), network.interceptor())))
	if err != nil {
		t.Fatal(err)
	}

	const usd = "USD"
	app, err := openPlatformAccounts(ctx, client, usd)
	if err != nil {
		t.Fatal(err)
	}
	ada, err := app.onboard(ctx, "Ada Lovelace", "ada@example.com", usd)
	if err != nil {
		t.Fatal(err)
	}
	// Another contractor, signed up but not yet reviewed, with an account
	// of their own: listings filtered by customer or state leave them out.
	other, err := client.Customers.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Charles Babbage", Email: "charles@example.com"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Ledger.OpenLedgerAccount(ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
		Currency: usd, CustomerId: other.Msg.GetCustomer().GetId(), BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE,
	})); err != nil {
		t.Fatal(err)
	}

	// $500.00 earned, $50.00 of it to the tax reserve.
	earnings, err := app.creditEarnings(ctx, ada, usd, 50000, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if legs := earnings.GetLegs(); len(legs) != 2 || legs[0].GetToAccountId() != ada.wallet || legs[1].GetToAccountId() != ada.taxReserve {
		t.Fatalf("the earnings transfer: %v", earnings)
	}

	t.Run("a payout whose answer is lost is retried and applied once", func(t *testing.T) {
		const key = "payout-ada-0001"
		network.lose(key)
		before := attempts.of(ledgerv1connect.LedgerServiceMoveMoneyProcedure)
		paid, replayed, err := app.instantPayout(ctx, ada, key, usd, 12000, 150)
		if err != nil {
			t.Fatal(err)
		}
		// The SDK retried the Unavailable with the same key, and the
		// gateway answered the retry with the first attempt's transfer.
		if n := attempts.of(ledgerv1connect.LedgerServiceMoveMoneyProcedure) - before; n != 2 || !replayed {
			t.Errorf("the payout took %d attempts (replayed: %v); want 2, the second replayed", n, replayed)
		}
		// The product restarts and sends the payout again, with the key
		// it kept.
		again, replayed, err := app.instantPayout(ctx, ada, key, usd, 12000, 150)
		if err != nil {
			t.Fatal(err)
		}
		if again.GetId() != paid.GetId() || !replayed {
			t.Errorf("the payout sent again is transfer %s (replayed: %v); want %s, replayed", again.GetId(), replayed, paid.GetId())
		}
		balance, err := client.Ledger.GetBalance(ctx, connect.NewRequest(&ledgerv1.GetBalanceRequest{AccountId: ada.wallet}))
		if err != nil {
			t.Fatal(err)
		}
		if got := balance.Msg.GetAvailableBalance(); got != 45000-12000-150 {
			t.Errorf("the wallet holds %d after one payout of 12000 and a fee of 150, want %d: the payout was applied more than once", got, 45000-12000-150)
		}
	})

	t.Run("a payout beyond the balance pays out what is available", func(t *testing.T) {
		const fee = 150
		_, _, err := app.instantPayout(ctx, ada, "payout-ada-0002", usd, 40000, fee)
		available, currency, ok := plinth.AvailableBalance(err)
		if !ok {
			t.Fatalf("a payout of 40000 from a wallet of 32850: %v; want INSUFFICIENT_FUNDS", err)
		}
		if available != 32850 || currency != usd {
			t.Errorf("AvailableBalance = %d %s, want 32850 USD", available, currency)
		}
		if f, _ := plinth.AsInsufficientFunds(err); f.AccountID != ada.wallet || f.Requested != 40000+fee || f.Floor != 0 {
			t.Errorf("AsInsufficientFunds = %+v; want the wallet, 40150 requested, floor 0", f)
		}
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || plinth.IsRetryable(err) {
			t.Errorf("insufficient funds came back as %v, retryable %v; want failed_precondition, not retryable", connect.CodeOf(err), plinth.IsRetryable(err))
		}

		// The product offers what is available, the fee included, as a new
		// payout with a key of its own.
		paid, replayed, err := app.instantPayout(ctx, ada, "payout-ada-0003", usd, available-fee, fee)
		if err != nil || replayed {
			t.Fatalf("paying out what is available: %v (replayed: %v)", err, replayed)
		}
		if paid.GetLegs()[0].GetAmount() != 32700 {
			t.Errorf("paid out %v, want 32700", paid.GetLegs())
		}

		// The refused attempt's key keeps its answer: the refusal is
		// replayed, and nothing moves.
		_, _, err = app.instantPayout(ctx, ada, "payout-ada-0002", usd, 40000, fee)
		var ce *connect.Error
		if plinth.Reason(err) != plinth.ReasonInsufficientFunds || !errors.As(err, &ce) || ce.Meta().Get("Idempotent-Replayed") != "true" {
			t.Errorf("the refused payout sent again with its key: %v; want its refusal replayed", err)
		}
	})

	t.Run("everything the contractor owns", func(t *testing.T) {
		got, err := client.Customers.GetCustomer(ctx, connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: ada.customerID}))
		if err != nil {
			t.Fatal(err)
		}
		// The product's role may not reveal PII: it sees the email's
		// domain only. The platform's admin sees it in full.
		if c := got.Msg.GetCustomer(); c.GetState() != customersv1.CustomerState_CUSTOMER_STATE_APPROVED || c.GetEmail() != "***@example.com" || c.GetName() != "****" {
			t.Errorf("the contractor as the product sees them: %v; want APPROVED, masked", c)
		}
		full, err := admin.Customers.GetCustomer(ctx, connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: ada.customerID}))
		if err != nil || full.Msg.GetCustomer().GetEmail() != "ada@example.com" {
			t.Errorf("the contractor as the admin sees them: %v, %v", full, err)
		}

		var approved []string
		for c, err := range client.Customers.AllCustomers(ctx, &customersv1.ListCustomersRequest{State: customersv1.CustomerState_CUSTOMER_STATE_APPROVED, PageSize: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			approved = append(approved, c.GetId())
		}
		if !slices.Equal(approved, []string{ada.customerID}) {
			t.Errorf("approved customers: %v, want only %s", approved, ada.customerID)
		}

		// Everything they own, across every domain, a page at a time: the
		// customer record, then their accounts in the order they were
		// opened; nothing of the other contractor's, nothing personal.
		type owned struct{ id, domain, typ, state, currency string }
		var everything []owned
		for r, err := range client.Resources.AllCustomerResources(ctx, &resourcesv1.ListCustomerResourcesRequest{CustomerId: ada.customerID, PageSize: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			if r.GetCustomerId() != ada.customerID {
				t.Errorf("resource %v is not the contractor's", r)
			}
			everything = append(everything, owned{r.GetId(), r.GetDomain(), r.GetType(), r.GetState(), r.GetAttributes()["currency"]})
		}
		if want := []owned{
			{ada.customerID, "customers", "customer", "CUSTOMER_STATE_APPROVED", ""},
			{ada.wallet, "ledger", "ledger_account", "LEDGER_ACCOUNT_STATE_OPEN", usd},
			{ada.taxReserve, "ledger", "ledger_account", "LEDGER_ACCOUNT_STATE_OPEN", usd},
		}; !slices.Equal(everything, want) {
			t.Errorf("everything the contractor owns: %v, want %v", everything, want)
		}
		// One of them by id, whatever its domain; a transfer is not a
		// resource: refused with a reason the product can act on.
		wallet, err := client.Resources.GetResource(ctx, connect.NewRequest(&resourcesv1.GetResourceRequest{ResourceId: ada.wallet}))
		if err != nil || wallet.Msg.GetResource().GetType() != "ledger_account" {
			t.Errorf("GetResource(the wallet): %v, %v", wallet, err)
		}
		_, err = client.Resources.GetResource(ctx, connect.NewRequest(&resourcesv1.GetResourceRequest{ResourceId: earnings.GetId()}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || plinth.Reason(err) != plinth.ReasonUnknownResourcePrefix {
			t.Errorf("GetResource(a transfer): %v; want invalid_argument, %s", err, plinth.ReasonUnknownResourcePrefix)
		}

		// Their accounts, a page at a time, with their balances.
		balances := map[string]int64{}
		var accounts []string
		for a, err := range client.Ledger.AllLedgerAccounts(ctx, &ledgerv1.ListLedgerAccountsRequest{CustomerId: ada.customerID, PageSize: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			if a.GetCustomerId() != ada.customerID || a.GetState() != ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_OPEN ||
				a.GetPostedBalance() != a.GetAvailableBalance() {
				t.Errorf("account %v", a)
			}
			accounts = append(accounts, a.GetId())
			balances[a.GetId()] = a.GetPostedBalance()
		}
		if !slices.Equal(accounts, []string{ada.wallet, ada.taxReserve}) {
			t.Errorf("the contractor's accounts: %v, want wallet %s and tax reserve %s, in the order they were opened", accounts, ada.wallet, ada.taxReserve)
		}
		if balances[ada.wallet] != 0 || balances[ada.taxReserve] != 5000 {
			t.Errorf("balances: wallet %d, tax reserve %d; want 0 and 5000", balances[ada.wallet], balances[ada.taxReserve])
		}

		// The wallet's history: the earnings and two payouts, each once.
		var transfers []string
		for tr, err := range client.Ledger.AllTransfers(ctx, &ledgerv1.ListTransfersRequest{AccountId: ada.wallet, PageSize: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			transfers = append(transfers, tr.GetDescription())
		}
		if !slices.Equal(transfers, []string{"earnings", "instant payout", "instant payout"}) {
			t.Errorf("transfers touching the wallet: %v", transfers)
		}
		var amounts []int64
		var last int64 = -1
		for e, err := range client.Ledger.AllAccountEntries(ctx, &ledgerv1.ListAccountEntriesRequest{AccountId: ada.wallet, PageSize: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			amounts = append(amounts, e.GetAmount())
			last = e.GetBalanceAfter()
		}
		if want := []int64{45000, -12000, -150, -32700, -150}; !slices.Equal(amounts, want) || last != 0 {
			t.Errorf("the wallet's entries: %v ending at %d; want %v ending at 0", amounts, last, want)
		}
	})

	t.Run("the platform's books balance", func(t *testing.T) {
		want := map[string]int64{
			app.settlement: -50000 + 150 + 150, // paid the earnings, took two fees
			app.inTransit:  12000 + 32700,      // two payouts on their way
			ada.wallet:     0,
			ada.taxReserve: 5000,
		}
		var sum int64
		for account, balance := range want {
			res, err := client.Ledger.GetBalance(ctx, connect.NewRequest(&ledgerv1.GetBalanceRequest{AccountId: account}))
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Msg.GetPostedBalance(); got != balance {
				t.Errorf("account %s: balance %d, want %d", account, got, balance)
			}
			sum += res.Msg.GetPostedBalance()
		}
		if sum != 0 {
			t.Errorf("the balances sum to %d; a double-entry ledger's sum to 0", sum)
		}
	})
}
