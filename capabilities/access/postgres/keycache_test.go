package postgres

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"plinth.dev/plinth/capabilities/access"
)

// The key cache on its own, without a database: its rules, each checked
// where nothing else can break them.

func testEntry(i int) (string, access.APIKey, access.Principal) {
	prefix := fmt.Sprintf("%08x", i)
	return prefix,
		access.APIKey{ID: fmt.Sprintf("key_%026d", i), PrincipalID: "prn_1", Prefix: prefix, SecretHash: make([]byte, 32)},
		access.Principal{ID: "prn_1", Name: "payroll-app", Roles: []string{"reader", "writer"}}
}

// listeningCache returns a cache in use, whose clock is *now.
func listeningCache(now *time.Time) *keyCache {
	c := newKeyCache()
	c.now = func() time.Time { return *now }
	c.setListening(true)
	return c
}

// fill looks prefix up in c and, on a miss, stores k and p as if read.
func fill(c *keyCache, prefix string, k access.APIKey, p access.Principal) (hit bool) {
	_, _, hit, t := c.get(prefix)
	if !hit {
		c.put(prefix, t, k, p)
	}
	return hit
}

func TestKeyCacheServesOnlyWhileListening(t *testing.T) {
	now := time.Now()
	c := newKeyCache()
	c.now = func() time.Time { return now }
	prefix, k, p := testEntry(1)
	if fill(c, prefix, k, p) || fill(c, prefix, k, p) {
		t.Fatal("a cache that never listened served an entry")
	}
	c.setListening(true)
	if fill(c, prefix, k, p) {
		t.Fatal("hit before anything was stored")
	}
	if !fill(c, prefix, k, p) {
		t.Fatal("miss after a store while listening")
	}
	c.setListening(false)
	if fill(c, prefix, k, p) || fill(c, prefix, k, p) {
		t.Fatal("served an entry after the listener was lost")
	}
	c.setListening(true)
	if fill(c, prefix, k, p) {
		t.Fatal("served an entry stored before the listener was lost")
	}
}

// A lookup that read before an invalidation may hold the row as it was
// before the change: it must not store it.
func TestKeyCacheRefusesAReadOlderThanAnInvalidation(t *testing.T) {
	now := time.Now()
	prefix, k, p := testEntry(1)
	for name, between := range map[string]func(c *keyCache){
		"notification":   func(c *keyCache) { c.invalidate() },
		"listener lost":  func(c *keyCache) { c.setListening(false) },
		"lost and found": func(c *keyCache) { c.setListening(false); c.setListening(true) },
	} {
		t.Run(name, func(t *testing.T) {
			c := listeningCache(&now)
			_, _, _, tk := c.get(prefix)
			between(c)
			c.put(prefix, tk, k, p)
			if _, _, hit, _ := c.get(prefix); hit {
				t.Fatal("stored a read made before the invalidation")
			}
		})
	}
}

func TestKeyCacheTTL(t *testing.T) {
	now := time.Now()
	c := listeningCache(&now)
	prefix, k, p := testEntry(1)
	fill(c, prefix, k, p)
	now = now.Add(keyCacheTTL - time.Nanosecond)
	if !fill(c, prefix, k, p) {
		t.Fatal("miss within the TTL")
	}
	now = now.Add(time.Nanosecond)
	if fill(c, prefix, k, p) {
		t.Fatal("hit at the TTL")
	}
	if !fill(c, prefix, k, p) {
		t.Fatal("miss after storing the entry again")
	}
}

// The TTL counts from before the read, not from the store: a slow read
// must not lengthen an entry's life.
func TestKeyCacheTTLCountsFromTheRead(t *testing.T) {
	now := time.Now()
	c := listeningCache(&now)
	prefix, k, p := testEntry(1)
	_, _, _, tk := c.get(prefix)
	now = now.Add(keyCacheTTL)
	c.put(prefix, tk, k, p)
	if _, _, hit, _ := c.get(prefix); hit {
		t.Fatal("served an entry read a TTL ago")
	}
}

func TestKeyCacheSharesNoMemory(t *testing.T) {
	now := time.Now()
	c := listeningCache(&now)
	prefix, k, p := testEntry(1)
	fill(c, prefix, k, p)
	k.SecretHash[0], p.Roles[0] = 1, "admin" // what was stored
	got, gotP, hit, _ := c.get(prefix)
	if !hit {
		t.Fatal("miss")
	}
	if got.SecretHash[0] != 0 || gotP.Roles[0] != "reader" {
		t.Fatalf("the cache holds the caller's memory: hash %x, roles %q", got.SecretHash, gotP.Roles)
	}
	got.SecretHash[0], gotP.Roles[0] = 2, "admin" // what was returned
	again, againP, _, _ := c.get(prefix)
	if again.SecretHash[0] != 0 || againP.Roles[0] != "reader" {
		t.Fatalf("a caller changed what the cache holds: hash %x, roles %q", again.SecretHash, againP.Roles)
	}
	// No roles stay nil, as every backend returns them.
	p.Roles = nil
	c.invalidate()
	fill(c, prefix, k, p)
	if _, noRoles, _, _ := c.get(prefix); noRoles.Roles != nil {
		t.Fatalf("roles %#v, want nil", noRoles.Roles)
	}
}

func TestKeyCacheSizeBound(t *testing.T) {
	now := time.Now()
	c := listeningCache(&now)
	for i := range keyCacheSize + 10 {
		prefix, k, p := testEntry(i)
		fill(c, prefix, k, p)
	}
	if len(c.entries) != keyCacheSize || len(c.byID) != keyCacheSize {
		t.Fatalf("%d entries, %d ids, want %d of each", len(c.entries), len(c.byID), keyCacheSize)
	}
	for prefix, e := range c.entries {
		if c.byID[e.key.ID] != prefix {
			t.Fatalf("key %s of prefix %s indexed as %q", e.key.ID, prefix, c.byID[e.key.ID])
		}
	}
	// The latest one is always kept.
	last, _, _ := testEntry(keyCacheSize + 9)
	if _, ok := c.entries[last]; !ok {
		t.Fatal("the entry just stored was dropped")
	}
}

func TestKeyCacheRecordUse(t *testing.T) {
	now := time.Now()
	c := listeningCache(&now)
	prefix, k, p := testEntry(1)
	fill(c, prefix, k, p)
	at := now.Add(time.Second).UTC()
	c.recordUse(k.ID, at, true)
	got, _, hit, _ := c.get(prefix)
	if !hit || !got.LastUsedAt.Equal(at) {
		t.Fatalf("after a recorded use: hit %v, LastUsedAt %v, want %v", hit, got.LastUsedAt, at)
	}
	c.recordUse(k.ID, at.Add(time.Minute), false)
	if _, _, hit, _ := c.get(prefix); hit {
		t.Fatal("a use the store did not write left the entry, whose LastUsedAt is unknown")
	}
	c.recordUse("key_unknown", at, true) // no entry: nothing to do
}

// Lookups, stores, invalidations and recorded uses at once, for the race
// detector.
func TestKeyCacheConcurrent(t *testing.T) {
	c := newKeyCache()
	c.setListening(true)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				prefix, k, p := testEntry(i % 50)
				hitK, hitP, hit, tk := c.get(prefix)
				if hit {
					if hitK.Prefix != prefix || !slices.Equal(hitP.Roles, p.Roles) {
						t.Errorf("got key %s roles %q for prefix %s", hitK.Prefix, hitP.Roles, prefix)
						return
					}
					continue
				}
				c.put(prefix, tk, k, p)
				switch (g + i) % 97 {
				case 0:
					c.invalidate()
				case 1:
					c.recordUse(k.ID, time.Now(), i%2 == 0)
				case 2:
					c.setListening(i%3 != 0)
				}
			}
		})
	}
	wg.Wait()
}
