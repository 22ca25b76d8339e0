package access

import (
	"context"
	"time"
)

// Store keeps principals, their roles and their API keys. Backends
// implement it; every implementation must pass accesstest.Run.
//
// A Store keeps principal names unique (*NameTakenError) and key prefixes
// unique (*PrefixTakenError). Methods that name a principal or key that
// does not exist return the error of PrincipalNotFound(id) or
// KeyNotFound(id); a duplicate id is a *domainerr.AlreadyExistsError. A
// backend that cannot reach what it stores in returns a
// *domainerr.UnavailableError; one that lost a race it cannot wait out
// returns a domain error of domainerr.KindAborted, and the caller may
// retry.
//
// A Store keeps what it is given: it never sees a key's secret, only
// APIKey.SecretHash, and must return that as it was stored. Principals
// come back with their Roles sorted and without duplicates; values
// returned never share memory with what the store holds.
type Store interface {
	// CreatePrincipal stores a new principal with its roles.
	CreatePrincipal(ctx context.Context, p Principal) error

	// GetPrincipal returns the principal with the id.
	GetPrincipal(ctx context.Context, id string) (Principal, error)

	// ListPrincipals returns at most q.Limit principals whose id is
	// greater than q.AfterID, ordered by id.
	ListPrincipals(ctx context.Context, q PrincipalQuery) ([]Principal, error)

	// GrantRole adds role to a principal's roles and returns the principal
	// as it is then. Granting a role the principal holds changes nothing.
	GrantRole(ctx context.Context, principalID, role string) (Principal, error)

	// RevokeRole removes role from a principal's roles and returns the
	// principal as it is then. Revoking a role it does not hold changes
	// nothing.
	RevokeRole(ctx context.Context, principalID, role string) (Principal, error)

	// CreateFirstPrincipal stores p with its roles and k (a key of p)
	// together, if and only if the store holds no principal at all, and
	// reports whether it did. Of concurrent calls on an empty store,
	// exactly one stores anything.
	CreateFirstPrincipal(ctx context.Context, p Principal, k APIKey) (bool, error)

	// CreateKey stores a new key of an existing principal.
	CreateKey(ctx context.Context, k APIKey) error

	// GetKey returns the key with the id.
	GetKey(ctx context.Context, id string) (APIKey, error)

	// LookupKey returns the key with the prefix and the principal it
	// belongs to, or the error of PrefixNotFound().
	LookupKey(ctx context.Context, prefix string) (APIKey, Principal, error)

	// ListKeys returns at most q.Limit keys of principal q.PrincipalID
	// whose id is greater than q.AfterID, ordered by id. The principal
	// must exist.
	ListKeys(ctx context.Context, q KeyQuery) ([]APIKey, error)

	// UpdateKey reads the key with the id, calls change on it and stores
	// its new ExpiresAt, RevokedAt and LastUsedAt, atomically: no other
	// change of the key happens between the read and the write. If change
	// returns an error, nothing is stored and UpdateKey returns that error.
	UpdateKey(ctx context.Context, id string, change func(*APIKey) error) (APIKey, error)

	// RotateKey is UpdateKey that also stores a new key: it reads the key
	// with the id, calls rotate on it, and stores the key's changes and
	// the successor rotate returns, atomically (both or neither). It
	// returns the key as changed and the successor.
	RotateKey(ctx context.Context, id string, rotate func(*APIKey) (APIKey, error)) (APIKey, APIKey, error)

	// RecordKeyUse sets the LastUsedAt of the key with the id to at,
	// unless it is already at or after notBefore: of concurrent callers
	// within one interval, at most one writes. A key that does not exist
	// is no error; there is nothing to record.
	RecordKeyUse(ctx context.Context, id string, at, notBefore time.Time) error
}

// PrincipalQuery selects a page of principals.
type PrincipalQuery struct {
	AfterID string // "" for the first page
	Limit   int
}

// KeyQuery selects a page of a principal's keys.
type KeyQuery struct {
	PrincipalID string
	AfterID     string // "" for the first page
	Limit       int
}
