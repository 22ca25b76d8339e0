package memory_test

import (
	"fmt"
	"testing"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/access/accesstest"
	"plinth.dev/plinth/capabilities/access/memory"
	"plinth.dev/plinth/capabilities/registry"
)

// TestConformance holds the memory backend to the suite every access
// backend must pass. What it stores is everything %#v prints of it: its
// maps hold values, not pointers, so every field of every principal and key
// is in the dump.
func TestConformance(t *testing.T) {
	accesstest.Run(t, func(*testing.T) access.Store { return memory.New() },
		accesstest.WithStoredContents(func(t *testing.T, s access.Store) string {
			return fmt.Sprintf("%#v", s.(*memory.Store))
		}))
}

func TestRegistered(t *testing.T) {
	b, err := registry.LookupBackend("access", "memory")
	if err != nil {
		t.Fatal(err)
	}
	store, err := b.Open(t.Context(), registry.Env{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, ok := store.(access.Store); !ok {
		t.Fatalf("Open returned a %T, not an access.Store", store)
	}
}
