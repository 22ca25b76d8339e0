package plinth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"connectrpc.com/connect"

	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/plinth"
)

// The examples call a fake gateway (fake_test.go) that answers as Plinth's
// does. Against a real one, pass its URL, such as the one `plinth dev`
// prints, and an API key from `plinth bootstrap` or IssueApiKey.

func ExampleNew() {
	gateway := newFakeGateway()
	defer gateway.Close()

	client, err := plinth.New(gateway.URL, "plk_0123abcd_secret")
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Customers.SignUpCustomer(context.Background(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
		Name:  "Ada Lovelace",
		Email: "ada@example.com",
	}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Msg.GetCustomer().GetState())
	// Output: CUSTOMER_STATE_PENDING
}

// A call that fails in a way a retry may cure is retried, with the same
// idempotency key: the gateway applies it once.
func ExampleWithRetry() {
	gateway := newFakeGateway()
	defer gateway.Close()
	// The next two sign-ups find the gateway unavailable.
	down := connect.NewError(connect.CodeUnavailable, errors.New("the database is unreachable"))
	gateway.failNext(signUp, down, down)

	client, err := plinth.New(gateway.URL, "plk_0123abcd_secret", plinth.WithRetry(plinth.RetryPolicy{
		MaxAttempts:    5,
		InitialBackoff: 10 * time.Millisecond,
		MaxBackoff:     time.Second,
	}))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Customers.SignUpCustomer(context.Background(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
		Name:  "Ada Lovelace",
		Email: "ada@example.com",
	})); err != nil {
		log.Fatal(err)
	}
	attempts := gateway.callsOf(signUp)
	fmt.Println("attempts:", len(attempts))
	fmt.Println("one key:", attempts[0].IdempotencyKey == attempts[1].IdempotencyKey && attempts[1].IdempotencyKey == attempts[2].IdempotencyKey)
	// Output:
	// attempts: 3
	// one key: true
}

func ExampleCustomersClient_AllCustomers() {
	gateway := newFakeGateway()
	defer gateway.Close()
	client, err := plinth.New(gateway.URL, "plk_0123abcd_secret")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"Ada", "Grace", "Katherine", "Margaret", "Hedy"} {
		if _, err := client.Customers.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{
			Name: name, Email: name + "@example.com",
		})); err != nil {
			log.Fatal(err)
		}
	}

	// Two customers a page: three pages, fetched as the loop needs them.
	for customer, err := range client.Customers.AllCustomers(ctx, &customersv1.ListCustomersRequest{PageSize: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(customer.GetName())
	}
	// Output:
	// Ada
	// Grace
	// Katherine
	// Margaret
	// Hedy
}

func ExampleFieldViolations() {
	gateway := newFakeGateway()
	defer gateway.Close()
	client, err := plinth.New(gateway.URL, "plk_0123abcd_secret")
	if err != nil {
		log.Fatal(err)
	}

	_, err = client.Customers.SignUpCustomer(context.Background(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
		Email: "not an email",
	}))
	fmt.Println(connect.CodeOf(err))
	for _, v := range plinth.FieldViolations(err) {
		fmt.Printf("%s: %s\n", v.Field, v.Message)
	}
	// Output:
	// invalid_argument
	// name: value length must be at least 1 characters
	// email: value must be a valid email address
}

func ExampleAvailableBalance() {
	gateway := newFakeGateway()
	defer gateway.Close()
	client, err := plinth.New(gateway.URL, "plk_0123abcd_secret")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	open := func(policy ledgerv1.BalancePolicy) string {
		res, err := client.Ledger.OpenLedgerAccount(ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
			Currency: "USD", BalancePolicy: policy,
		}))
		if err != nil {
			log.Fatal(err)
		}
		return res.Msg.GetAccount().GetId()
	}
	settlement := open(ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED)
	wallet := open(ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE)
	payee := open(ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE)
	move := func(from, to string, amount int64) error {
		_, err := client.Ledger.MoveMoney(ctx, connect.NewRequest(&ledgerv1.MoveMoneyRequest{
			Currency: "USD",
			Legs:     []*ledgerv1.Leg{{FromAccountId: from, ToAccountId: to, Amount: amount}},
		}))
		return err
	}
	if err := move(settlement, wallet, 1050); err != nil { // $10.50
		log.Fatal(err)
	}

	err = move(wallet, payee, 2000)
	if available, currency, ok := plinth.AvailableBalance(err); ok {
		fmt.Printf("%s: only %d %s available\n", plinth.Reason(err), available, currency)
	}
	// Output: INSUFFICIENT_FUNDS: only 1050 USD available
}

func ExamplePaginate() {
	// Anything that pages with tokens, such as a List capability that has
	// no All... method yet.
	pages := map[string][]string{"": {"a", "b"}, "2": {"c"}}
	next := map[string]string{"": "2"}
	fetch := func(_ context.Context, token string) ([]string, string, error) {
		return pages[token], next[token], nil
	}
	for item, err := range plinth.Paginate(context.Background(), fetch) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(item)
	}
	// Output:
	// a
	// b
	// c
}

func ExampleIsRetryable() {
	gateway := newFakeGateway()
	defer gateway.Close()
	gateway.failAlways(signUp, connect.NewError(connect.CodeUnavailable, errors.New("the database is unreachable")))
	client, err := plinth.New(gateway.URL, "plk_0123abcd_secret", plinth.WithoutRetries())
	if err != nil {
		log.Fatal(err)
	}

	_, err = client.Customers.SignUpCustomer(context.Background(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
		Name: "Ada Lovelace", Email: "ada@example.com",
	}))
	fmt.Println(connect.CodeOf(err), plinth.IsRetryable(err))
	// Output: unavailable true
}
