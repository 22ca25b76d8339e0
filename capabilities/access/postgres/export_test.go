package postgres

import (
	"context"
	"sync"
	"time"

	"plinth.dev/plinth/capabilities/access"
)

// Hooks for the tests of package postgres_test.

// KeyCacheTTL is how long the key cache serves an entry.
const KeyCacheTTL = keyCacheTTL

// SetCacheClock makes the key cache of s read the time from now.
func SetCacheClock(s *Store, now func() time.Time) {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	s.cache.now = now
}

// CachedKey returns the key the cache of s holds for prefix, fresh or not.
func CachedKey(s *Store, prefix string) (access.APIKey, bool) {
	s.cache.mu.RLock()
	defer s.cache.mu.RUnlock()
	e, ok := s.cache.entries[prefix]
	k, _ := copied(e.key, e.principal)
	return k, ok
}

// ListenerPID returns the PID of the backend the listener of s listens
// on, or 0 when it listens on none.
func ListenerPID(s *Store) uint32 { return s.listenerPID.Load() }

// HoldRetries makes the listener of s wait, after it loses its connection,
// until release is called, rather than for its retry delay. Call it before
// the first LookupKey, which starts the listener.
func HoldRetries(s *Store) (release func()) {
	ch := make(chan struct{})
	s.sleep = func(ctx context.Context, _ time.Duration) bool {
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// HoldNotifications makes the listener of s wait, on each notification,
// until release is called before it empties the cache. Call it before the
// first LookupKey, which starts the listener.
func HoldNotifications(s *Store) (release func()) {
	ch := make(chan struct{})
	s.notified = func() {
		<-ch
		s.cache.invalidate()
	}
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}
