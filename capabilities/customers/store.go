package customers

import "context"

// Store keeps customers. Backends implement it; every implementation must
// pass customerstest.Run.
//
// A Store keeps EmailKey unique across customers, and returns
// *EmailTakenError from Create and Update when a write would break that.
// Methods that name a customer that does not exist return the error of
// NotFound(id). A backend that cannot reach what it stores in returns a
// *domainerr.UnavailableError.
type Store interface {
	// Create stores a new customer.
	Create(ctx context.Context, c Customer) error

	// Get returns the customer with the id.
	Get(ctx context.Context, id string) (Customer, error)

	// GetByEmailKey returns the customer whose EmailKey is key, or a
	// *domainerr.NotFoundError.
	GetByEmailKey(ctx context.Context, key string) (Customer, error)

	// List returns at most q.Limit customers whose id is greater than
	// q.AfterID, ordered by id, only those in q.State unless it is
	// StateUnspecified.
	List(ctx context.Context, q ListQuery) ([]Customer, error)

	// Update reads the customer with the id, calls change on it and stores
	// the result, atomically: no other Update of the same customer happens
	// between the read and the write. If change returns an error, nothing is
	// stored and Update returns that error.
	Update(ctx context.Context, id string, change func(*Customer) error) (Customer, error)
}

// ListQuery selects a page of customers.
type ListQuery struct {
	AfterID string // "" for the first page
	State   State  // StateUnspecified for every state
	Limit   int
}
