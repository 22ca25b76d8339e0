// Package memory is the in-memory audit backend: the embedded default, what
// `plinth dev` runs on. It keeps the same chain and returns the same errors
// as the PostgreSQL backend (both pass audittest.Run); what it does not do
// is survive a restart, so its record starts again from 1 each time.
package memory

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"

	"plinth.dev/plinth/capabilities/audit"
	"plinth.dev/plinth/capabilities/registry"
)

// Store keeps the chain in memory. It is safe for concurrent use; its zero
// value is not usable, call New.
type Store struct {
	mu      sync.RWMutex
	pending []audit.Record // added, not chained yet
	records chain          // chained, in sequence order
	byID    map[string]int64
	head    int64 // the last sequence chained, kept apart from records
}

// chunkSize is how many records one block of a chain holds.
const chunkSize = 1024

// chain holds the chained records in fixed-size blocks, so that adding one
// never copies the ones before it: a single slice of every record ever
// chained is copied whole each time it grows, which under load was most of
// the memory backend's cost (8% of the gateway's CPU in the overhead
// benchmark). A record is never written after it is added (TamperForTest
// and DeleteForTest replace blocks instead), so a copy of the block list is
// a consistent snapshot.
type chain struct {
	blocks [][]audit.Record
	n      int
}

func (c *chain) len() int { return c.n }

func (c *chain) at(i int) *audit.Record { return &c.blocks[i/chunkSize][i%chunkSize] }

func (c *chain) add(r audit.Record) {
	if c.n%chunkSize == 0 {
		c.blocks = append(c.blocks, make([]audit.Record, 0, chunkSize))
	}
	last := len(c.blocks) - 1
	c.blocks[last] = append(c.blocks[last], r)
	c.n++
}

// snapshot returns a chain that sees the records there are now and is not
// changed by what is done to c later.
func (c *chain) snapshot() chain {
	return chain{blocks: slices.Clone(c.blocks), n: c.n}
}

// replace puts r at i, copying its block first so that snapshots keep
// what they saw.
func (c *chain) replace(i int, r audit.Record) {
	b := slices.Clone(c.blocks[i/chunkSize])
	b[i%chunkSize] = r
	c.blocks[i/chunkSize] = b
}

// remove takes the record at i out, rebuilding every block after it.
func (c *chain) remove(i int) {
	var rest chain
	for j := range c.n {
		if j != i {
			rest.add(*c.at(j))
		}
	}
	*c = rest
}

var _ audit.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{byID: map[string]int64{}}
}

// Add keeps r until the next Chain.
func (s *Store) Add(_ context.Context, r audit.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, normalize(r.Clone()))
	return nil
}

// Chain links the oldest waiting records under the write lock, so chains
// are serialized.
func (s *Store) Chain(_ context.Context, limit int, link func(last *audit.Record, pending []audit.Record) ([]audit.Record, error)) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 || limit <= 0 {
		return 0, nil
	}
	slices.SortStableFunc(s.pending, func(a, b audit.Record) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	// link does not change what it is given (Store.Chain), and what it
	// returns is the store's: no copy either way.
	batch := s.pending[:min(limit, len(s.pending))]
	var last *audit.Record
	if n := s.records.len(); n > 0 {
		l := s.records.at(n - 1).Clone()
		last = &l
	}
	linked, err := link(last, batch)
	if err != nil {
		return 0, err
	}
	if err := audit.CheckLinked(last, batch, linked); err != nil {
		return 0, err
	}
	for _, r := range linked {
		r = normalize(r)
		s.records.add(r)
		s.byID[r.ID] = r.Sequence
		s.head = r.Sequence
	}
	n := len(batch)
	s.pending = slices.Delete(s.pending, 0, n)
	return n, nil
}

// LastSequence returns the last sequence chained.
func (s *Store) LastSequence(context.Context) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.head, nil
}

// Get returns the record with the id.
func (s *Store) Get(_ context.Context, id string) (audit.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if seq, ok := s.byID[id]; ok {
		if i, found := s.find(seq); found {
			return s.records.at(i).Clone(), nil
		}
	}
	return audit.Record{}, audit.RecordNotFound(id)
}

// List returns a page of matching records in sequence order.
func (s *Store) List(_ context.Context, q audit.Query) ([]audit.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, found := s.find(q.AfterSequence)
	if found {
		i++
	}
	var page []audit.Record
	for ; i < s.records.len() && len(page) < q.Limit; i++ {
		if r := s.records.at(i); q.Matches(*r) {
			page = append(page, r.Clone())
		}
	}
	return page, nil
}

// Scan calls fn with every record in sequence order. It reads a copy of the
// chain taken at the start, so fn may call the Store.
func (s *Store) Scan(ctx context.Context, fn func(audit.Record) error) error {
	s.mu.RLock()
	records := s.records.snapshot()
	s.mu.RUnlock()
	for i := range records.len() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(records.at(i).Clone()); err != nil {
			return err
		}
	}
	return nil
}

// TamperForTest changes the stored record with the sequence in place, with
// f, as an intruder with access to the memory could. It exists only for
// tests that prove the chain shows tampering; nothing else may call it. It
// reports whether such a record was there.
func (s *Store) TamperForTest(seq int64, f func(*audit.Record)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := s.find(seq)
	if !found {
		return false
	}
	r := s.records.at(i).Clone()
	f(&r)
	s.records.replace(i, r)
	return true
}

// DeleteForTest removes the stored record with the sequence, as an intruder
// could. Like TamperForTest, it exists only for tests. It reports whether
// such a record was there.
func (s *Store) DeleteForTest(seq int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := s.find(seq)
	if !found {
		return false
	}
	delete(s.byID, s.records.at(i).ID)
	s.records.remove(i)
	return true
}

// find returns where the record with the sequence is, or would be, in
// s.records. The caller holds the lock.
func (s *Store) find(seq int64) (int, bool) {
	n := s.records.len()
	i := sort.Search(n, func(i int) bool { return s.records.at(i).Sequence >= seq })
	return i, i < n && s.records.at(i).Sequence == seq
}

// normalize returns r as every backend returns it: its time in UTC, its
// empty lists nil.
func normalize(r audit.Record) audit.Record {
	r.Time = r.Time.UTC()
	if len(r.ResourceIDs) == 0 {
		r.ResourceIDs = nil
	}
	if len(r.Revealed) == 0 {
		r.Revealed = nil
	}
	return r
}

func init() {
	registry.RegisterBackend(registry.Backend{
		Domain: "audit",
		Name:   "memory",
		Open: func(context.Context, registry.Env) (any, error) {
			return audit.Store(New()), nil
		},
	})
}
