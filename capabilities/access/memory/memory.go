// Package memory is the in-memory access backend: the embedded default,
// what `plinth dev` runs on. It keeps the same invariants and returns the
// same errors as the PostgreSQL backend (both pass accesstest.Run); what it
// does not do is survive a restart, so every key it issued dies with it.
package memory

import (
	"context"
	"slices"
	"sync"
	"time"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/registry"
)

// Store keeps principals and keys in memory. Its zero value is not usable;
// call New.
type Store struct {
	mu                sync.RWMutex
	principals        map[string]access.Principal // by id
	principalByName   map[string]string           // name -> id
	principalIDs      []string                    // every principal id, sorted, for listing
	keys              map[string]access.APIKey    // by id
	keyByPrefix       map[string]string           // prefix -> id
	keyIDsByPrincipal map[string][]string         // principal id -> its key ids, sorted
}

var _ access.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{
		principals:        map[string]access.Principal{},
		principalByName:   map[string]string{},
		keys:              map[string]access.APIKey{},
		keyByPrefix:       map[string]string{},
		keyIDsByPrincipal: map[string][]string{},
	}
}

// CreatePrincipal stores a new principal with its roles.
func (s *Store) CreatePrincipal(_ context.Context, p access.Principal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createPrincipal(p)
}

func (s *Store) createPrincipal(p access.Principal) error {
	if _, exists := s.principals[p.ID]; exists {
		return &domainerr.AlreadyExistsError{Resource: "principal", ID: p.ID}
	}
	if _, taken := s.principalByName[p.Name]; taken {
		return &access.NameTakenError{Name: p.Name}
	}
	p = clonePrincipal(p)
	p.Roles = normalizeRoles(p.Roles)
	s.principals[p.ID] = p
	s.principalByName[p.Name] = p.ID
	s.principalIDs = insertSorted(s.principalIDs, p.ID)
	return nil
}

// GetPrincipal returns the principal with the id.
func (s *Store) GetPrincipal(_ context.Context, id string) (access.Principal, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.principals[id]
	if !ok {
		return access.Principal{}, access.PrincipalNotFound(id)
	}
	return clonePrincipal(p), nil
}

// ListPrincipals returns a page of principals ordered by id.
func (s *Store) ListPrincipals(_ context.Context, q access.PrincipalQuery) ([]access.Principal, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var page []access.Principal
	for _, id := range after(s.principalIDs, q.AfterID) {
		if len(page) >= q.Limit {
			break
		}
		page = append(page, clonePrincipal(s.principals[id]))
	}
	return page, nil
}

// GrantRole adds a role to a principal's roles.
func (s *Store) GrantRole(_ context.Context, principalID, role string) (access.Principal, error) {
	return s.changeRoles(principalID, func(roles []string) []string {
		return normalizeRoles(append(roles, role))
	})
}

// RevokeRole removes a role from a principal's roles.
func (s *Store) RevokeRole(_ context.Context, principalID, role string) (access.Principal, error) {
	return s.changeRoles(principalID, func(roles []string) []string {
		return normalizeRoles(slices.DeleteFunc(roles, func(r string) bool { return r == role }))
	})
}

func (s *Store) changeRoles(principalID string, change func([]string) []string) (access.Principal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.principals[principalID]
	if !ok {
		return access.Principal{}, access.PrincipalNotFound(principalID)
	}
	p.Roles = change(slices.Clone(p.Roles))
	s.principals[principalID] = p
	return clonePrincipal(p), nil
}

// CreateFirstPrincipal stores p and k if the store holds no principal.
func (s *Store) CreateFirstPrincipal(_ context.Context, p access.Principal, k access.APIKey) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.principals) > 0 {
		return false, nil
	}
	if k.PrincipalID != p.ID {
		// The service always passes a key of p; anything else is a bug.
		panic("access/memory: CreateFirstPrincipal given a key of another principal")
	}
	if _, taken := s.keyByPrefix[k.Prefix]; taken {
		return false, &access.PrefixTakenError{Prefix: k.Prefix}
	}
	if err := s.createPrincipal(p); err != nil {
		return false, err
	}
	if err := s.createKey(k); err != nil {
		panic("access/memory: CreateFirstPrincipal: " + err.Error()) // checked above
	}
	return true, nil
}

// CreateKey stores a new key of an existing principal.
func (s *Store) CreateKey(_ context.Context, k access.APIKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createKey(k)
}

// createKey checks what PostgreSQL checks, in the order it does: the
// unique id and prefix, then the principal.
func (s *Store) createKey(k access.APIKey) error {
	if _, exists := s.keys[k.ID]; exists {
		return &domainerr.AlreadyExistsError{Resource: "API key", ID: k.ID}
	}
	if _, taken := s.keyByPrefix[k.Prefix]; taken {
		return &access.PrefixTakenError{Prefix: k.Prefix}
	}
	if _, ok := s.principals[k.PrincipalID]; !ok {
		return access.PrincipalNotFound(k.PrincipalID)
	}
	s.keys[k.ID] = cloneKey(k)
	s.keyByPrefix[k.Prefix] = k.ID
	s.keyIDsByPrincipal[k.PrincipalID] = insertSorted(s.keyIDsByPrincipal[k.PrincipalID], k.ID)
	return nil
}

// GetKey returns the key with the id.
func (s *Store) GetKey(_ context.Context, id string) (access.APIKey, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[id]
	if !ok {
		return access.APIKey{}, access.KeyNotFound(id)
	}
	return cloneKey(k), nil
}

// LookupKey returns the key with the prefix and its principal.
func (s *Store) LookupKey(_ context.Context, prefix string) (access.APIKey, access.Principal, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.keyByPrefix[prefix]
	if !ok {
		return access.APIKey{}, access.Principal{}, access.PrefixNotFound()
	}
	k := s.keys[id]
	return cloneKey(k), clonePrincipal(s.principals[k.PrincipalID]), nil
}

// ListKeys returns a page of a principal's keys ordered by id.
func (s *Store) ListKeys(_ context.Context, q access.KeyQuery) ([]access.APIKey, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.principals[q.PrincipalID]; !ok {
		return nil, access.PrincipalNotFound(q.PrincipalID)
	}
	var page []access.APIKey
	for _, id := range after(s.keyIDsByPrincipal[q.PrincipalID], q.AfterID) {
		if len(page) >= q.Limit {
			break
		}
		page = append(page, cloneKey(s.keys[id]))
	}
	return page, nil
}

// UpdateKey changes one key atomically.
func (s *Store) UpdateKey(_ context.Context, id string, change func(*access.APIKey) error) (access.APIKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.changeKey(id, change)
	if err != nil {
		return access.APIKey{}, err
	}
	return cloneKey(k), nil
}

// RotateKey changes one key and stores its successor atomically.
func (s *Store) RotateKey(_ context.Context, id string, rotate func(*access.APIKey) (access.APIKey, error)) (access.APIKey, access.APIKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.keys[id]
	if !ok {
		return access.APIKey{}, access.APIKey{}, access.KeyNotFound(id)
	}
	var successor access.APIKey
	changed, err := s.changeKey(id, func(k *access.APIKey) (err error) {
		successor, err = rotate(k)
		return err
	})
	if err != nil {
		return access.APIKey{}, access.APIKey{}, err
	}
	if err := s.createKey(successor); err != nil {
		s.keys[id] = old // both or neither
		return access.APIKey{}, access.APIKey{}, err
	}
	return cloneKey(changed), cloneKey(successor), nil
}

// changeKey calls change on a copy of the key with the id and keeps what
// a Store may change of it. The caller holds the write lock.
func (s *Store) changeKey(id string, change func(*access.APIKey) error) (access.APIKey, error) {
	old, ok := s.keys[id]
	if !ok {
		return access.APIKey{}, access.KeyNotFound(id)
	}
	k := cloneKey(old)
	if err := change(&k); err != nil {
		return access.APIKey{}, err
	}
	// Only the times change; the rest of a key is fixed when it is issued.
	updated := old
	updated.ExpiresAt, updated.RevokedAt, updated.LastUsedAt = k.ExpiresAt, k.RevokedAt, k.LastUsedAt
	s.keys[id] = updated
	return updated, nil
}

// RecordKeyUse sets a key's LastUsedAt unless it is recent enough.
func (s *Store) RecordKeyUse(_ context.Context, id string, at, notBefore time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok || (!k.LastUsedAt.IsZero() && !k.LastUsedAt.Before(notBefore)) {
		return nil
	}
	k.LastUsedAt = at
	s.keys[id] = k
	return nil
}

// after returns the part of sorted ids after id.
func after(sorted []string, id string) []string {
	i, found := slices.BinarySearch(sorted, id)
	if found {
		i++
	}
	return sorted[i:]
}

func insertSorted(sorted []string, id string) []string {
	i, _ := slices.BinarySearch(sorted, id)
	return slices.Insert(sorted, i, id)
}

// normalizeRoles sorts roles and drops duplicates; no roles is nil.
func normalizeRoles(roles []string) []string {
	if len(roles) == 0 {
		return nil
	}
	slices.Sort(roles)
	return slices.Compact(roles)
}

// clonePrincipal and cloneKey copy what a caller could change under the
// store's feet: the slices.
func clonePrincipal(p access.Principal) access.Principal {
	p.Roles = slices.Clone(p.Roles)
	return p
}

func cloneKey(k access.APIKey) access.APIKey {
	k.SecretHash = slices.Clone(k.SecretHash)
	return k
}

func init() {
	registry.RegisterBackend(registry.Backend{
		Domain: "access",
		Name:   "memory",
		Open: func(context.Context, registry.Env) (any, error) {
			return access.Store(New()), nil
		},
	})
}
