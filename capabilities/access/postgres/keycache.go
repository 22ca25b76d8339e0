package postgres

import (
	"slices"
	"sync"
	"time"

	"plinth.dev/plinth/capabilities/access"
)

// Bounds of the key cache.
const (
	// keyCacheTTL is the longest an entry is served: the bound on how
	// stale an answer can be if a notification is lost in a way the
	// listener cannot see (it sees a lost connection at once).
	keyCacheTTL = 5 * time.Second
	// keyCacheSize is the most entries the cache holds; past it, storing
	// one drops another, an arbitrary one. Only keys that exist are
	// stored, so nobody fills it by presenting made-up prefixes.
	keyCacheSize = 10_000
)

// keyCache holds what LookupKey returned, by prefix, for as long as
// nothing may have changed it:
//
//   - it serves and takes entries only while the listener is listening
//     (setListening): a change committed while nobody listened would go
//     unseen, so entering and leaving that state empties it;
//   - every notification empties it (invalidate);
//   - an entry is served for keyCacheTTL at most, in case a notification
//     is lost without the connection being lost;
//   - a lookup stores what it read only if no invalidation happened since
//     before it read (the generation is unchanged): otherwise the row it
//     read may be older than the change the invalidation announced.
type keyCache struct {
	mu        sync.RWMutex
	listening bool
	gen       uint64               // bumped by every invalidation
	entries   map[string]cachedKey // by prefix
	byID      map[string]string    // key id -> prefix, for recordUse

	// ttl and now are keyCacheTTL and time.Now but in tests.
	ttl time.Duration
	now func() time.Time
}

// cachedKey is one answer of LookupKey, and when it was read.
type cachedKey struct {
	key       access.APIKey
	principal access.Principal
	readAt    time.Time
}

// ticket is what a lookup that missed the cache must show to store what
// it read: the generation and the time before it read.
type ticket struct {
	ok     bool // the cache was in use: the lookup may store
	gen    uint64
	readAt time.Time
}

func newKeyCache() *keyCache {
	return &keyCache{
		entries: map[string]cachedKey{},
		byID:    map[string]string{},
		ttl:     keyCacheTTL,
		now:     time.Now,
	}
}

// get returns a copy of the entry of prefix if it is fresh (hit), or else
// the ticket to store what the caller is about to read.
func (c *keyCache) get(prefix string) (k access.APIKey, p access.Principal, hit bool, t ticket) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.listening {
		return k, p, false, ticket{}
	}
	now := c.now()
	if e, ok := c.entries[prefix]; ok && now.Sub(e.readAt) < c.ttl {
		k, p = copied(e.key, e.principal)
		return k, p, true, ticket{}
	}
	return k, p, false, ticket{ok: true, gen: c.gen, readAt: now}
}

// put stores a copy of what a lookup read, unless the cache was emptied
// since the lookup's get (or is not in use). An entry past its TTL is
// overwritten, never served, so expired entries need no sweeping: the
// size bound holds them.
func (c *keyCache) put(prefix string, t ticket, k access.APIKey, p access.Principal) {
	if !t.ok {
		return
	}
	k, p = copied(k, p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.listening || c.gen != t.gen {
		return
	}
	if old, ok := c.entries[prefix]; ok {
		delete(c.byID, old.key.ID)
	} else if len(c.entries) >= keyCacheSize {
		for victim, e := range c.entries { // map order: an arbitrary one
			delete(c.entries, victim)
			delete(c.byID, e.key.ID)
			break
		}
	}
	c.entries[prefix] = cachedKey{key: k, principal: p, readAt: t.readAt}
	c.byID[k.ID] = prefix
}

// recordUse keeps the cached LastUsedAt of key id in step with what
// RecordKeyUse wrote, which notifies nobody (see the migration): with
// wrote, it set last_used_at to at; without, it does not know what is
// stored and drops the entry, so the next lookup reads it.
func (c *keyCache) recordUse(id string, at time.Time, wrote bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prefix, ok := c.byID[id]
	if !ok {
		return
	}
	if !wrote {
		delete(c.entries, prefix)
		delete(c.byID, id)
		return
	}
	e := c.entries[prefix]
	e.key.LastUsedAt = at
	c.entries[prefix] = e
}

// invalidate empties the cache, and makes lookups under way store nothing.
func (c *keyCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
}

// setListening puts the cache in use, or out of use, and empties it either
// way: changes may have been missed while nobody listened.
func (c *keyCache) setListening(listening bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listening = listening
	c.clearLocked()
}

func (c *keyCache) clearLocked() {
	c.gen++
	clear(c.entries)
	clear(c.byID)
}

// copied returns k and p sharing no memory with them, so that neither the
// cache nor its callers can change what the other holds.
func copied(k access.APIKey, p access.Principal) (access.APIKey, access.Principal) {
	k.SecretHash = slices.Clone(k.SecretHash)
	p.Roles = slices.Clone(p.Roles)
	return k, p
}
