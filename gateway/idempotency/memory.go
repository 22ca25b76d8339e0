package idempotency

import (
	"context"
	"sync"
	"time"
)

// memoryStore keeps records in memory, for `plinth dev` and the memory
// backends. It holds nothing across a restart, and neither do the memory
// backends, so nothing is lost that the effect would have kept.
type memoryStore struct {
	mu      sync.Mutex
	entries map[scopedKey]*memoryEntry
}

type scopedKey struct{ caller, key string }

type memoryEntry struct {
	running bool
	record  Record
}

// NewMemoryStore returns an empty in-memory Store.
func NewMemoryStore() Store {
	return &memoryStore{entries: map[scopedKey]*memoryEntry{}}
}

func (s *memoryStore) Begin(ctx context.Context, c Claim) (*Record, Attempt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := scopedKey{c.Caller, c.Key}
	if e, ok := s.entries[k]; ok {
		if e.running {
			return nil, nil, ErrInProgress
		}
		r := e.record
		return &r, nil, nil
	}
	s.entries[k] = &memoryEntry{running: true}
	return nil, &memoryAttempt{store: s, key: k, ctx: ctx}, nil
}

func (s *memoryStore) DeleteExpired(_ context.Context, cutoff time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for k, e := range s.entries {
		if !e.running && e.record.CreatedAt.Before(cutoff) {
			delete(s.entries, k)
			n++
		}
	}
	return n, nil
}

type memoryAttempt struct {
	store *memoryStore
	key   scopedKey
	ctx   context.Context
	done  bool
}

func (a *memoryAttempt) Context() context.Context { return a.ctx }

// Finish records r. It cannot undo a refused call's writes: the memory
// backends have none to undo, because each capability writes in one atomic
// step that a refusal prevents (Store.Apply, Store.Update). A capability
// that wrote and then refused would keep its write here, unlike on
// PostgreSQL; the conformance suites are where such a capability would
// show it.
func (a *memoryAttempt) Finish(ctx context.Context, r Record, _ bool, also func(context.Context) error) error {
	if also != nil {
		if err := also(ctx); err != nil {
			return err // the key stays in flight until Abandon releases it
		}
	}
	a.store.mu.Lock()
	defer a.store.mu.Unlock()
	a.store.entries[a.key] = &memoryEntry{record: r}
	a.done = true
	return nil
}

func (a *memoryAttempt) Abandon() {
	if a.done {
		return
	}
	a.store.mu.Lock()
	defer a.store.mu.Unlock()
	delete(a.store.entries, a.key)
	a.done = true
}
