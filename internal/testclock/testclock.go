// Package testclock is a clock that tests move by hand, for services that
// take their time from a func() time.Time (WithClock options): a hold
// expires, a key's data key ages, because a test advanced the clock, never
// because it slept.
package testclock

import (
	"sync"
	"time"
)

// Clock is a time that moves only when Advance moves it. It is safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock that reads start until it is advanced.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time; it is what a WithClock option is given.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}
