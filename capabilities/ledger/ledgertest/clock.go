package ledgertest

import (
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// epoch is where every subtest's clock starts: a fixed instant with
// nanoseconds, finer than the microseconds PostgreSQL keeps, so that a
// service that forgets to truncate shows up as a difference between what it
// answered and what it stored.
var epoch = time.Date(2025, time.March, 14, 15, 9, 26, 535897932, time.UTC)

// clock is the time the service and the idempotency layer see in a
// subtest. It moves only when the subtest moves it: holds expire because a
// test advanced the clock past their expiry, never because it slept. It is
// safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: epoch} }

// Now returns the clock's time; it is what ledger.WithClock is given.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and returns the new time.
func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// sameInstant reports whether a timestamp the service answered is the
// instant t, to the microsecond: the precision every store keeps.
func sameInstant(got *timestamppb.Timestamp, t time.Time) bool {
	return got != nil && got.AsTime().Truncate(time.Microsecond).Equal(t.Truncate(time.Microsecond))
}
