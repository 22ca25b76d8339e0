package seal

import "time"

// Defaults of the options.
const (
	// DefaultDataKeyMaxAge is how long a data key is used, for sealing and
	// from the cache for opening, before the keyring is asked again.
	DefaultDataKeyMaxAge = time.Hour
	// DefaultDataKeyMaxUses is how many values one data key seals, and
	// how many opens one cached data key serves, before it is dropped.
	DefaultDataKeyMaxUses = 100_000
	// DefaultMaxCachedKeys is how many unwrapped data keys the cache for
	// opening holds.
	DefaultMaxCachedKeys = 1024
)

// maxDataKeyUses caps WithDataKeyMaxUses: each value gets a random 96-bit
// nonce, and NIST SP 800-38D allows 2^32 of those under one key.
const maxDataKeyUses = 1 << 32

// An Option configures a Sealer. Options are made by the With functions.
type Option interface {
	apply(*Sealer)
}

type optionFunc func(*Sealer)

func (f optionFunc) apply(s *Sealer) { f(s) }

// WithDataKeyMaxAge sets how long a data key is used: a data key older than
// d seals no more values (the next Seal asks the keyring for a new one), and
// an unwrapped data key older than d (counted from its unwrapping) leaves the
// cache for opening. A shorter age limits how long a key sits in memory; a
// longer one saves keyring round trips. A d of zero or less does nothing.
// This value defaults to DefaultDataKeyMaxAge.
func WithDataKeyMaxAge(d time.Duration) Option {
	return optionFunc(func(s *Sealer) {
		if d > 0 {
			s.maxAge = d
		}
	})
}

// WithDataKeyMaxUses sets how many values one data key seals before the
// Sealer asks the keyring for a new one, and how many opens one cached
// unwrapped data key serves before it leaves the cache. An n of zero or
// less does nothing; an n above 2^32 is taken as 2^32 (the limit for random
// nonces under one key). This value defaults to DefaultDataKeyMaxUses.
func WithDataKeyMaxUses(n int64) Option {
	return optionFunc(func(s *Sealer) {
		if n > 0 {
			s.maxUses = min(n, maxDataKeyUses)
		}
	})
}

// WithMaxCachedKeys sets how many unwrapped data keys the cache for opening
// holds; when it is full, the oldest is dropped. An n of zero or less does
// nothing. This value defaults to DefaultMaxCachedKeys.
func WithMaxCachedKeys(n int) Option {
	return optionFunc(func(s *Sealer) {
		if n > 0 {
			s.maxCached = n
		}
	})
}

// WithClock sets the clock that ages data keys, for tests. A nil now does
// nothing. This value defaults to time.Now.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(s *Sealer) {
		if now != nil {
			s.now = now
		}
	})
}
