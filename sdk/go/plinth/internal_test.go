package plinth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
)

func TestBackoffIsBoundedAndGrows(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 10, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	for n, bound := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 9: time.Second} {
		var longest time.Duration
		for range 2000 {
			d := p.backoff(n)
			if d < 0 || d >= bound {
				t.Fatalf("backoff(%d) = %v; want in [0, %v)", n, d, bound)
			}
			longest = max(longest, d)
		}
		// Full jitter: the waits spread up to the bound.
		if longest < bound/2 {
			t.Errorf("backoff(%d) never went above %v of its %v bound", n, longest, bound)
		}
	}
	if d := (RetryPolicy{MaxAttempts: 100, InitialBackoff: time.Hour, MaxBackoff: 1<<63 - 1}).backoff(80); d < 0 {
		t.Errorf("a huge backoff overflowed to %v", d)
	}
}

func TestRetryPolicyDefaults(t *testing.T) {
	d := DefaultRetryPolicy()
	for _, tc := range []struct{ in, want RetryPolicy }{
		{RetryPolicy{}, d},
		{RetryPolicy{MaxAttempts: 2}, RetryPolicy{MaxAttempts: 2, InitialBackoff: d.InitialBackoff, MaxBackoff: d.MaxBackoff}},
		{RetryPolicy{MaxBackoff: 50 * time.Millisecond}, RetryPolicy{MaxAttempts: d.MaxAttempts, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}},
		{RetryPolicy{InitialBackoff: 5 * time.Second}, RetryPolicy{MaxAttempts: d.MaxAttempts, InitialBackoff: 5 * time.Second, MaxBackoff: 5 * time.Second}},
	} {
		if got := tc.in.withDefaults(); got != tc.want {
			t.Errorf("%+v.withDefaults() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "3": 3 * time.Second, " 2 ": 2 * time.Second} {
		if got, ok := parseRetryAfter(in); !ok || got != want {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	if got, ok := parseRetryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); !ok || got < 59*time.Minute || got > time.Hour {
		t.Errorf("an HTTP date an hour away: %v, %v", got, ok)
	}
	for _, in := range []string{"", "-1", "soon"} {
		if _, ok := parseRetryAfter(in); ok {
			t.Errorf("parseRetryAfter(%q) is ok", in)
		}
	}
}

func TestDecodeRefusesMalformedDetails(t *testing.T) {
	for _, b := range [][]byte{{0x0a}, {0x0a, 0x05, 'a'}, {0xff}} {
		if _, ok := decodeErrorInfo(b); ok {
			t.Errorf("decodeErrorInfo(%x) is ok", b)
		}
		if _, ok := decodeRetryInfo(b); ok {
			t.Errorf("decodeRetryInfo(%x) is ok", b)
		}
	}
	if _, ok := decodeRetryInfo(nil); ok {
		t.Error("a RetryInfo without a delay is a hint")
	}
}

// A mutating call without an idempotency key is never retried: sending it
// again could apply it twice. A Client always gives such calls a key; this
// is the retrier alone.
func TestAMutatingCallWithoutAKeyIsNotRetried(t *testing.T) {
	var attempts atomic.Int32
	mux := http.NewServeMux()
	mux.Handle(customersv1connect.NewCustomerServiceHandler(flaky{attempts: &attempts}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := customersv1connect.NewCustomerServiceClient(srv.Client(), srv.URL,
		connect.WithInterceptors(retrier{policy: RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}}))
	ctx := context.Background()

	_, err := client.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Ada", Email: "ada@example.com"}))
	if connect.CodeOf(err) != connect.CodeUnavailable || attempts.Load() != 1 {
		t.Fatalf("without a key: %v after %d attempts; want unavailable after 1", err, attempts.Load())
	}

	attempts.Store(0)
	req := connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Ada", Email: "ada@example.com"})
	req.Header().Set(IdempotencyKeyHeader, NewIdempotencyKey())
	if _, err := client.SignUpCustomer(ctx, req); connect.CodeOf(err) != connect.CodeUnavailable || attempts.Load() != 4 {
		t.Fatalf("with a key: %v after %d attempts; want unavailable after 4", err, attempts.Load())
	}
}

type flaky struct {
	customersv1connect.UnimplementedCustomerServiceHandler
	attempts *atomic.Int32
}

func (f flaky) SignUpCustomer(context.Context, *connect.Request[customersv1.SignUpCustomerRequest]) (*connect.Response[customersv1.SignUpCustomerResponse], error) {
	f.attempts.Add(1)
	return nil, connect.NewError(connect.CodeUnavailable, errors.New("down"))
}
