package memory_test

import (
	"testing"

	"plinth.dev/plinth/capabilities/customers"
	"plinth.dev/plinth/capabilities/customers/customerstest"
	"plinth.dev/plinth/capabilities/customers/memory"
)

// TestConformance holds the memory backend to the suite every customers
// backend must pass.
func TestConformance(t *testing.T) {
	customerstest.Run(t, func(*testing.T) customers.Store { return memory.New() })
}
