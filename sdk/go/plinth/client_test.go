package plinth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

const testKey = "plk_0123abcd_" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// fastRetries retries quickly, so that tests of retries take no time.
var fastRetries = plinth.WithRetry(plinth.RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})

func newClient(t *testing.T, g *fakeGateway, opts ...plinth.Option) *plinth.Client {
	t.Helper()
	client, err := plinth.New(g.URL, testKey, append([]plinth.Option{fastRetries}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func startFake(t *testing.T) *fakeGateway {
	t.Helper()
	g := newFakeGateway()
	t.Cleanup(g.Close)
	return g
}

func TestNewRefusesWhatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		name, baseURL, key string
		opts               []plinth.Option
		want               string
	}{
		{"empty URL", "", testKey, nil, "base URL is empty"},
		{"no scheme", "127.0.0.1:8080", testKey, nil, "http:// or https://"},
		{"host as scheme", "localhost:8080", testKey, nil, "no http or https scheme"},
		{"other scheme", "ftp://plinth.example.com", testKey, nil, "no http or https scheme"},
		{"no host", "http://", testKey, nil, "no host"},
		{"credentials", "https://user:pw@plinth.example.com", testKey, nil, "credentials"},
		{"query", "https://plinth.example.com/?x=1", testKey, nil, "query"},
		{"empty key", "http://127.0.0.1:8080", "", nil, "API key is empty"},
		{"Bearer", "http://127.0.0.1:8080", "Bearer " + testKey, nil, "without \"Bearer \""},
		{"newline", "http://127.0.0.1:8080", testKey + "\n", nil, "control"},
		{"nil HTTP client", "http://127.0.0.1:8080", testKey, []plinth.Option{plinth.WithHTTPClient(nil)}, "nil client"},
		{"negative attempts", "http://127.0.0.1:8080", testKey, []plinth.Option{plinth.WithRetry(plinth.RetryPolicy{MaxAttempts: -1})}, "negative"},
		{"backoff above its bound", "http://127.0.0.1:8080", testKey,
			[]plinth.Option{plinth.WithRetry(plinth.RetryPolicy{InitialBackoff: time.Second, MaxBackoff: time.Millisecond})}, "above its MaxBackoff"},
		{"user agent", "http://127.0.0.1:8080", testKey, []plinth.Option{plinth.WithUserAgent("app\r\nX-Evil: 1")}, "user agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := plinth.New(tc.baseURL, tc.key, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%q, %q) = %v, %v; want an error mentioning %q", tc.baseURL, tc.key, client, err, tc.want)
			}
			if strings.Contains(err.Error(), "00112233") {
				t.Errorf("the error repeats the key: %v", err)
			}
		})
	}
}

func TestNewAcceptsATrailingSlashAndAPathPrefix(t *testing.T) {
	g := startFake(t)
	ctx := context.Background()

	client, err := plinth.New(g.URL+"/", testKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Customers.ListCustomers(ctx, connect.NewRequest(&customersv1.ListCustomersRequest{})); err != nil {
		t.Fatalf("with a trailing slash: %v", err)
	}

	// A gateway behind a proxy that serves it under /plinth.
	mux := http.NewServeMux()
	mux.Handle("/plinth/", http.StripPrefix("/plinth", g.Config.Handler))
	proxy := httptest.NewServer(mux)
	defer proxy.Close()
	client, err = plinth.New(proxy.URL+"/plinth", testKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Customers.ListCustomers(ctx, connect.NewRequest(&customersv1.ListCustomersRequest{})); err != nil {
		t.Fatalf("under a path prefix: %v", err)
	}
}

func TestEveryCallCarriesTheAPIKeyAndUserAgent(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g, plinth.WithUserAgent("payroll-app/1.4"))
	ctx := context.Background()
	if _, err := client.Customers.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Ada", Email: "ada@example.com"})); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Customers.ListCustomers(ctx, connect.NewRequest(&customersv1.ListCustomersRequest{})); err != nil {
		t.Fatal(err)
	}
	for _, procedure := range []string{customersv1connect.CustomerServiceSignUpCustomerProcedure, customersv1connect.CustomerServiceListCustomersProcedure} {
		calls := g.callsOf(procedure)
		if len(calls) != 1 {
			t.Fatalf("%s: %d calls, want 1", procedure, len(calls))
		}
		if calls[0].Authorization != "Bearer "+testKey {
			t.Errorf("%s: Authorization %q", procedure, calls[0].Authorization)
		}
		if ua := calls[0].UserAgent; !strings.HasPrefix(ua, "payroll-app/1.4 ") || !strings.Contains(ua, "connect-go/") {
			t.Errorf("%s: User-Agent %q, want payroll-app/1.4 in front of connect's", procedure, ua)
		}
	}
}

func TestMutatingCallsGetAKeyAndReadsDoNot(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	ctx := context.Background()
	for range 2 {
		if _, err := client.Customers.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Ada", Email: "ada@example.com"})); err != nil {
			t.Fatal(err)
		}
	}
	// A caller's own key is kept: to retry across restarts, say.
	req := connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Grace", Email: "grace@example.com"})
	req.Header().Set(plinth.IdempotencyKeyHeader, "sign-up-grace-1")
	if _, err := client.Customers.SignUpCustomer(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Customers.ListCustomers(ctx, connect.NewRequest(&customersv1.ListCustomersRequest{})); err != nil {
		t.Fatal(err)
	}

	signUps := g.callsOf(customersv1connect.CustomerServiceSignUpCustomerProcedure)
	if len(signUps) != 3 {
		t.Fatalf("%d sign-ups, want 3", len(signUps))
	}
	if signUps[0].IdempotencyKey == "" || signUps[1].IdempotencyKey == "" || signUps[0].IdempotencyKey == signUps[1].IdempotencyKey {
		t.Errorf("two calls got keys %q and %q; want two different keys", signUps[0].IdempotencyKey, signUps[1].IdempotencyKey)
	}
	if signUps[2].IdempotencyKey != "sign-up-grace-1" {
		t.Errorf("the caller's key became %q", signUps[2].IdempotencyKey)
	}
	if k := g.callsOf(customersv1connect.CustomerServiceListCustomersProcedure)[0].IdempotencyKey; k != "" {
		t.Errorf("a read got an idempotency key %q", k)
	}
}
