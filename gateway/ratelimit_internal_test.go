package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/access"
)

// TestRateLimiterKeepsABoundedMap proves that the buckets of at most a
// bounded number of principals are kept: idle ones, whose buckets are full
// again, go first (which loses nothing), and the longest idle otherwise.
func TestRateLimiterKeepsABoundedMap(t *testing.T) {
	const procedure = "/plinth.test.v1.Test/Write"
	l := newRateLimiter(RateLimitsConfig{Write: RateLimit{Rate: 1, Burst: 1}}, map[string]bool{procedure: true}, newMetrics())
	l.max = 3
	now := time.Unix(1_700_000_000, 0)
	l.now = func() time.Time { return now }
	call := func(id string) error {
		ctx, c := ensureCall(context.Background())
		c.noteAuthorized(access.Principal{ID: id, Name: id})
		return l.admit(ctx, procedure)
	}

	for _, id := range []string{"prn_a", "prn_b", "prn_c"} {
		if err := call(id); err != nil {
			t.Fatalf("%s's first call: %v", id, err)
		}
		now = now.Add(100 * time.Millisecond)
	}
	// All three are busy (their buckets not yet full again): the longest
	// idle, prn_a, makes room for prn_d.
	if err := call("prn_d"); err != nil {
		t.Fatal(err)
	}
	if n := l.size(); n != 3 {
		t.Fatalf("%d principals kept, want 3", n)
	}
	if err := call("prn_c"); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("prn_c, kept, with an empty bucket: %v, want resource_exhausted", err)
	}
	// Once idle long enough, they all go to make room, and a principal that
	// comes back starts with a full bucket, as it would have had anyway.
	now = now.Add(2 * time.Second)
	if err := call("prn_e"); err != nil {
		t.Fatal(err)
	}
	if n := l.size(); n != 1 {
		t.Errorf("%d principals kept after the others were idle past their refill, want 1", n)
	}
	if err := call("prn_c"); err != nil {
		t.Errorf("prn_c after its bucket refilled: %v", err)
	}

	// However many principals call, the map stays bounded.
	for i := range 10_000 {
		if err := call(fmt.Sprintf("prn_%05d", i)); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Millisecond)
	}
	if n := l.size(); n > l.max {
		t.Errorf("%d principals kept, want at most %d", n, l.max)
	}
}

// TestRateLimiterOffCostsNothing proves that with no limit configured the
// interceptor is not in the chain at all.
func TestRateLimiterOffCostsNothing(t *testing.T) {
	l := newRateLimiter(RateLimitsConfig{}, map[string]bool{"/x/Y": true}, newMetrics())
	called := false
	next := connect.UnaryFunc(func(context.Context, connect.AnyRequest) (connect.AnyResponse, error) {
		called = true
		return nil, nil
	})
	wrapped := l.WrapUnary(next)
	wrapped(context.Background(), nil)
	if !called || fmt.Sprintf("%p", wrapped) != fmt.Sprintf("%p", next) {
		t.Error("with no limits the rate limiter wraps the call")
	}
}
