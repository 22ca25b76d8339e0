package plinth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

const (
	signUp      = customersv1connect.CustomerServiceSignUpCustomerProcedure
	getCustomer = customersv1connect.CustomerServiceGetCustomerProcedure
)

func unavailable() error {
	return connect.NewError(connect.CodeUnavailable, errors.New("the database is unreachable"))
}

func signUpAda(ctx context.Context, client *plinth.Client) (*connect.Response[customersv1.SignUpCustomerResponse], error) {
	return client.Customers.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Ada", Email: "ada@example.com"}))
}

func TestRetriesSendTheSameIdempotencyKey(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	g.failNext(signUp, unavailable(), unavailable())

	res, err := signUpAda(context.Background(), client)
	if err != nil {
		t.Fatalf("a call that fails twice with unavailable, then succeeds: %v", err)
	}
	if res.Msg.GetCustomer().GetId() == "" {
		t.Fatalf("signed up %v", res.Msg)
	}
	calls := g.callsOf(signUp)
	if len(calls) != 3 {
		t.Fatalf("%d attempts, want 3", len(calls))
	}
	key := calls[0].IdempotencyKey
	if key == "" {
		t.Fatal("the first attempt has no idempotency key")
	}
	for i, c := range calls {
		if c.IdempotencyKey != key {
			t.Errorf("attempt %d sent key %q; the first sent %q", i+1, c.IdempotencyKey, key)
		}
		if c.Authorization != "Bearer "+testKey {
			t.Errorf("attempt %d sent Authorization %q", i+1, c.Authorization)
		}
	}
}

func TestAbortedIsRetried(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	// What the gateway answers while a call with the same key still runs.
	g.failNext(signUp, connect.NewError(connect.CodeAborted, errors.New("a call with this Idempotency-Key is still running; retry when it has finished")))
	if _, err := signUpAda(context.Background(), client); err != nil {
		t.Fatal(err)
	}
	if calls := g.callsOf(signUp); len(calls) != 2 || calls[0].IdempotencyKey != calls[1].IdempotencyKey {
		t.Fatalf("attempts %+v; want 2 with the same key", calls)
	}
}

func TestAnswersAreNotRetried(t *testing.T) {
	for _, code := range []connect.Code{
		connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeNotFound,
		connect.CodeAlreadyExists, connect.CodePermissionDenied, connect.CodeUnauthenticated,
		connect.CodeInternal, connect.CodeUnknown, connect.CodeUnimplemented, connect.CodeOutOfRange,
		connect.CodeCanceled,
		// Without a retry hint: the gateway's answer to a request too large.
		connect.CodeResourceExhausted,
	} {
		t.Run(code.String(), func(t *testing.T) {
			g := startFake(t)
			client := newClient(t, g)
			g.failAlways(signUp, connect.NewError(code, errors.New("refused")))
			_, err := signUpAda(context.Background(), client)
			if connect.CodeOf(err) != code {
				t.Fatalf("got %v, want %v", err, code)
			}
			if n := len(g.callsOf(signUp)); n != 1 {
				t.Fatalf("%d attempts, want exactly 1", n)
			}
		})
	}
}

func TestValidationErrorIsSentOnce(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	_, err := client.Customers.SignUpCustomer(context.Background(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Email: "not an email"}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("got %v, want invalid_argument", err)
	}
	if n := len(g.callsOf(signUp)); n != 1 {
		t.Fatalf("%d attempts, want exactly 1", n)
	}
}

func TestAttemptsAreBounded(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g, plinth.WithRetry(plinth.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}))
	g.failAlways(signUp, unavailable())
	_, err := signUpAda(context.Background(), client)
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "database is unreachable") {
		t.Fatalf("got %v; want the last attempt's error", err)
	}
	if n := len(g.callsOf(signUp)); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
}

func TestWithoutRetriesSendsOnce(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g, plinth.WithoutRetries())
	g.failAlways(signUp, unavailable())
	if _, err := signUpAda(context.Background(), client); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("got %v", err)
	}
	calls := g.callsOf(signUp)
	if len(calls) != 1 || calls[0].IdempotencyKey == "" {
		t.Fatalf("attempts %+v; want 1, with a key", calls)
	}
}

func TestCancelStopsRetries(t *testing.T) {
	g := startFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	attempts := 0
	// Interceptors given with WithConnectOptions run once per attempt:
	// this one cancels the call soon after its first attempt failed, while
	// it waits to retry.
	cancelAfterAttempt := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			attempts++
			res, err := next(ctx, req)
			time.AfterFunc(100*time.Millisecond, cancel)
			return res, err
		}
	})
	client := newClient(t, g,
		plinth.WithRetry(plinth.RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Millisecond, MaxBackoff: time.Minute}),
		plinth.WithConnectOptions(connect.WithInterceptors(cancelAfterAttempt)))
	// The server asks for a wait of 50s, which the policy allows.
	g.failAlways(signUp, withRetryInfo(unavailable().(*connect.Error), 50, 0))

	start := time.Now()
	_, err := signUpAda(ctx, client)
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Fatalf("the call returned %v after it began; cancel did not stop the wait", elapsed)
	}
	if connect.CodeOf(err) != connect.CodeCanceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want canceled", err)
	}
	if !strings.Contains(err.Error(), "database is unreachable") {
		t.Errorf("%v does not say how the last attempt failed", err)
	}
	if n := len(g.callsOf(signUp)); n != 1 || attempts != 1 {
		t.Fatalf("%d attempts reached the server, %d were made; want 1", n, attempts)
	}
}

func TestNoWaitOutlastsTheDeadline(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g, plinth.WithRetry(plinth.RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Millisecond, MaxBackoff: time.Minute}))
	// The server asks for a wait of 50s; the caller has 5s.
	g.failAlways(signUp, withRetryInfo(unavailable().(*connect.Error), 50, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := signUpAda(ctx, client)
	if connect.CodeOf(err) != connect.CodeUnavailable || ctx.Err() != nil {
		t.Fatalf("got %v (context: %v); want the attempt's unavailable before the deadline", err, ctx.Err())
	}
	if n := len(g.callsOf(signUp)); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

func TestDeadlineExceededIsRetriedWhileTheContextLives(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	ada, err := signUpAda(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway's own request timeout tripped; the caller's did not.
	g.failNext(getCustomer, connect.NewError(connect.CodeDeadlineExceeded, errors.New("the call ran out of time")))
	got, err := client.Customers.GetCustomer(context.Background(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: ada.Msg.GetCustomer().GetId()}))
	if err != nil || got.Msg.GetCustomer().GetId() != ada.Msg.GetCustomer().GetId() {
		t.Fatalf("GetCustomer: %v, %v", got, err)
	}
	if n := len(g.callsOf(getCustomer)); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
}

func TestReadsAreRetriedWithoutAKey(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	g.failNext(customersv1connect.CustomerServiceListCustomersProcedure, unavailable())
	if _, err := client.Customers.ListCustomers(context.Background(), connect.NewRequest(&customersv1.ListCustomersRequest{})); err != nil {
		t.Fatal(err)
	}
	calls := g.callsOf(customersv1connect.CustomerServiceListCustomersProcedure)
	if len(calls) != 2 || calls[0].IdempotencyKey != "" || calls[1].IdempotencyKey != "" {
		t.Fatalf("attempts %+v; want 2 without a key", calls)
	}
}

func TestResourceExhaustedIsRetriedOnlyWhenTheServerSaysWhen(t *testing.T) {
	exhausted := func() *connect.Error {
		return connect.NewError(connect.CodeResourceExhausted, errors.New("too many calls"))
	}
	retryAfter := exhausted()
	retryAfter.Meta().Set("Retry-After", "0")
	for _, tc := range []struct {
		name     string
		err      error
		attempts int
	}{
		{"no hint", exhausted(), 1},
		{"RetryInfo", withRetryInfo(exhausted(), 0, int64(2*time.Millisecond)), 2},
		{"Retry-After", retryAfter, 2},
		{"RetryInfo beyond MaxBackoff", withRetryInfo(exhausted(), 60, 0), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startFake(t)
			client := newClient(t, g)
			g.failNext(signUp, tc.err)
			_, err := signUpAda(context.Background(), client)
			if n := len(g.callsOf(signUp)); n != tc.attempts {
				t.Fatalf("%d attempts (last error %v), want %d", n, err, tc.attempts)
			}
			if tc.attempts == 1 && connect.CodeOf(err) != connect.CodeResourceExhausted {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestUnreachableGatewayIsRetriedThenReported(t *testing.T) {
	g := newFakeGateway()
	url := g.URL
	g.Close()
	client, err := plinth.New(url, testKey, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	_, err = signUpAda(context.Background(), client)
	if connect.CodeOf(err) != connect.CodeUnavailable || !plinth.IsRetryable(err) {
		t.Fatalf("got %v; want unavailable", err)
	}
}
