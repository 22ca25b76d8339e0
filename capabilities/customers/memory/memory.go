// Package memory is the in-memory customers backend: the embedded default,
// what `plinth dev` runs on. It keeps the same invariants and returns the
// same errors as the PostgreSQL backend (both pass customerstest.Run); what
// it does not do is survive a restart.
package memory

import (
	"context"
	"slices"
	"sync"

	"plinth.dev/plinth/capabilities/customers"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/registry"
)

// Store keeps customers in memory. Its zero value is not usable; call New.
type Store struct {
	mu         sync.RWMutex
	byID       map[string]customers.Customer
	idByEmail  map[string]string // EmailKey -> id
	orderedIDs []string          // every id, sorted, for listing
}

var _ customers.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{byID: map[string]customers.Customer{}, idByEmail: map[string]string{}}
}

// Create stores a new customer.
func (s *Store) Create(_ context.Context, c customers.Customer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.idByEmail[c.EmailKey]; taken {
		return &customers.EmailTakenError{}
	}
	if _, exists := s.byID[c.ID]; exists {
		return &domainerr.AlreadyExistsError{Resource: "customer", ID: c.ID}
	}
	s.byID[c.ID] = clone(c)
	s.idByEmail[c.EmailKey] = c.ID
	i, _ := slices.BinarySearch(s.orderedIDs, c.ID)
	s.orderedIDs = slices.Insert(s.orderedIDs, i, c.ID)
	return nil
}

// Get returns the customer with the id.
func (s *Store) Get(_ context.Context, id string) (customers.Customer, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.byID[id]
	if !ok {
		return customers.Customer{}, customers.NotFound(id)
	}
	return clone(c), nil
}

// GetByEmailKey returns the customer whose EmailKey is key.
func (s *Store) GetByEmailKey(_ context.Context, key string) (customers.Customer, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.idByEmail[key]
	if !ok {
		return customers.Customer{}, &domainerr.NotFoundError{Resource: "customer with this email"}
	}
	return clone(s.byID[id]), nil
}

// List returns a page of customers ordered by id.
func (s *Store) List(_ context.Context, q customers.ListQuery) ([]customers.Customer, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	start, found := slices.BinarySearch(s.orderedIDs, q.AfterID)
	if found {
		start++
	}
	var page []customers.Customer
	for _, id := range s.orderedIDs[start:] {
		if len(page) >= q.Limit {
			break
		}
		c := s.byID[id]
		if q.State != customers.StateUnspecified && c.State != q.State {
			continue
		}
		page = append(page, clone(c))
	}
	return page, nil
}

// Update changes one customer atomically.
func (s *Store) Update(_ context.Context, id string, change func(*customers.Customer) error) (customers.Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.byID[id]
	if !ok {
		return customers.Customer{}, customers.NotFound(id)
	}
	c := clone(old)
	if err := change(&c); err != nil {
		return customers.Customer{}, err
	}
	if c.ID != old.ID {
		// A change must not re-key the customer; that would be a bug in the
		// service, not something a caller can ask for.
		panic("customers/memory: Update changed a customer's id")
	}
	if c.EmailKey != old.EmailKey {
		if other, taken := s.idByEmail[c.EmailKey]; taken && other != id {
			return customers.Customer{}, &customers.EmailTakenError{}
		}
		delete(s.idByEmail, old.EmailKey)
		s.idByEmail[c.EmailKey] = id
	}
	s.byID[id] = clone(c)
	return c, nil
}

// clone copies a customer so that callers never share the Address pointer
// with what the store holds.
func clone(c customers.Customer) customers.Customer {
	if c.Profile.Address != nil {
		a := *c.Profile.Address
		c.Profile.Address = &a
	}
	return c
}

func init() {
	registry.RegisterBackend(registry.Backend{
		Domain: "customers",
		Name:   "memory",
		Open: func(context.Context, registry.Env) (any, error) {
			return customers.Store(New()), nil
		},
	})
}
