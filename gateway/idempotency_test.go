package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"plinth.dev/plinth/gateway/idempotency"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

func signUpWithKey(t *testing.T, _ *testServer, client interface {
	SignUpCustomer(context.Context, *connect.Request[customersv1.SignUpCustomerRequest]) (*connect.Response[customersv1.SignUpCustomerResponse], error)
}, key, name, email string) (*connect.Response[customersv1.SignUpCustomerResponse], error) {
	t.Helper()
	req := connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: name, Email: email})
	req.Header().Set(idempotency.Header, key)
	return client.SignUpCustomer(t.Context(), req)
}

// TestIdempotencyKeys proves the rules of idempotency keys through the
// whole gateway.
func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	ts := startServer(t)

	t.Run("a retry gets the first answer and does nothing again, whatever the protocol", func(t *testing.T) {
		first, err := signUpWithKey(t, ts, ts.client(), "retry-1", "Ada", "ada@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if first.Header().Get(idempotency.ReplayedHeader) != "" {
			t.Error("a first answer is marked as replayed")
		}
		for _, c := range []struct {
			name   string
			client interface {
				SignUpCustomer(context.Context, *connect.Request[customersv1.SignUpCustomerRequest]) (*connect.Response[customersv1.SignUpCustomerResponse], error)
			}
		}{{"connect json", ts.client(connect.WithProtoJSON())}, {"grpc", ts.grpcClient()}} {
			again, err := signUpWithKey(t, ts, c.client, "retry-1", "Ada", "ada@example.com")
			if err != nil {
				t.Fatalf("%s: retry: %v", c.name, err)
			}
			if again.Msg.GetCustomer().GetId() != first.Msg.GetCustomer().GetId() ||
				!again.Msg.GetCustomer().GetCreatedAt().AsTime().Equal(first.Msg.GetCustomer().GetCreatedAt().AsTime()) {
				t.Errorf("%s: retry answered %v, want the first answer %v", c.name, again.Msg, first.Msg)
			}
			if again.Header().Get(idempotency.ReplayedHeader) != "true" {
				t.Errorf("%s: a replayed answer lacks %s: true", c.name, idempotency.ReplayedHeader)
			}
		}
		if n := countCustomers(t, ts.client()); n != 1 {
			t.Errorf("%d customers after retries, want 1", n)
		}
	})

	t.Run("the same key for another request is refused", func(t *testing.T) {
		if _, err := signUpWithKey(t, ts, ts.client(), "reused-1", "Grace", "grace@example.com"); err != nil {
			t.Fatal(err)
		}
		_, err := signUpWithKey(t, ts, ts.client(), "reused-1", "Grace", "grace.hopper@example.com")
		ce := connectError(t, err, connect.CodeFailedPrecondition)
		if !strings.Contains(ce.Message(), "different request") {
			t.Errorf("message %q should say the key was used for a different request", ce.Message())
		}
		if info := errorInfo(t, ce); info.GetReason() != idempotency.ReasonKeyReused || info.GetDomain() != "plinth.dev" {
			t.Errorf("ErrorInfo = %v, want reason %s in domain plinth.dev", info, idempotency.ReasonKeyReused)
		}
	})

	t.Run("a refusal is replayed even once the request would succeed", func(t *testing.T) {
		first, err := signUpWithKey(t, ts, ts.client(), "owner-1", "Owner", "taken@example.com")
		if err != nil {
			t.Fatal(err)
		}
		_, err = signUpWithKey(t, ts, ts.client(), "dup-1", "Second", "taken@example.com")
		connectError(t, err, connect.CodeAlreadyExists)
		// Free the email: the same request would now succeed...
		req := connect.NewRequest(&customersv1.ChangeCustomerEmailRequest{CustomerId: first.Msg.GetCustomer().GetId(), NewEmail: "moved@example.com"})
		if _, err := ts.client().ChangeCustomerEmail(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		// ...but its retry gets the first answer.
		_, err = signUpWithKey(t, ts, ts.client(), "dup-1", "Second", "taken@example.com")
		ce := connectError(t, err, connect.CodeAlreadyExists)
		if ce.Meta().Get(idempotency.ReplayedHeader) != "true" {
			t.Error("a replayed refusal lacks the replay header")
		}
		if len(ce.Details()) != 1 {
			t.Errorf("a replayed refusal has %d details, want its ErrorInfo", len(ce.Details()))
		}
	})

	t.Run("a mutating call needs a well-formed key; a read does not", func(t *testing.T) {
		// A client without the SDK's option, which would make a key.
		bare := customersv1connect.NewCustomerServiceClient(ts.h1, ts.URL, plinth.WithAPIKey(ts.key))
		for name, key := range map[string]string{"missing": "", "with a space": "a b", "too long": strings.Repeat("k", 256)} {
			_, err := signUpWithKey(t, ts, bare, key, "Nokey", "nokey@example.com")
			ce := connectError(t, err, connect.CodeInvalidArgument)
			if !strings.Contains(ce.Message(), "Idempotency-Key") {
				t.Errorf("%s key: message %q should name the header", name, ce.Message())
			}
		}
		res, body := ts.post(t, "/plinth.customers.v1.CustomerService/ListCustomers", "application/json", `{}`, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("a read without a key: %d %s", res.StatusCode, body)
		}
	})
}

// TestIdempotencyDuplicateWhileRunning proves that a retry arriving while
// the first call runs is told to retry (Aborted), and gets the first
// answer once it has finished.
func TestIdempotencyDuplicateWhileRunning(t *testing.T) {
	t.Parallel()
	hooks := &slowHooks{started: make(chan struct{}), finished: make(chan struct{})}
	ts := startServer(t, withBackend("testslow"), withSlowHooks(hooks))

	type result struct {
		res *connect.Response[customersv1.SignUpCustomerResponse]
		err error
	}
	firstDone := make(chan result, 1)
	go func() {
		res, err := signUpWithKey(t, ts, ts.client(), "slow-1", "Slow", "slow@example.com")
		firstDone <- result{res, err}
	}()
	select {
	case <-hooks.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first call never reached the store")
	}
	_, err := signUpWithKey(t, ts, ts.client(), "slow-1", "Slow", "slow@example.com")
	connectError(t, err, connect.CodeAborted)

	first := <-firstDone
	if first.err != nil {
		t.Fatal(first.err)
	}
	again, err := signUpWithKey(t, ts, ts.client(), "slow-1", "Slow", "slow@example.com")
	if err != nil || again.Msg.GetCustomer().GetId() != first.res.Msg.GetCustomer().GetId() {
		t.Fatalf("retry after the first finished: %v, %v", again, err)
	}
}
