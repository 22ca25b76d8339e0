// Package access is the access domain: who may call the platform's
// capabilities, and how a call proves who it comes from.
//
// A Principal is a calling service ("payroll-app", "support-console"). It
// authenticates with API keys and is authorized by the roles granted to it;
// roles are names the gateway's configuration defines, so this domain only
// records grants and asks the gateway (WithRoleCheck) whether a role exists
// before granting it.
//
// An API key is presented as
//
//	plk_<prefix>_<secret>      e.g. plk_1f0c9a7e_5be2...(64 hex characters)
//	    │        └─ 32 random bytes, hex: shown once, never stored
//	    └─ 8 hex characters: identify the key, stored and shown in listings
//
// and stored as its prefix and the SHA-256 of the whole presented key (a
// secret of 256 random bits needs no slow hash: nobody can guess it, and a
// stolen hash does not give it back). Service.Authenticate finds the key by
// its prefix, compares hashes in constant time, and answers every failure
// with the one error ErrUnauthenticated.
//
// The package holds the domain model, the capabilities (Service, one method
// per rpc of plinth.access.v1, plus Authenticate and Bootstrap, which the
// gateway calls), the Store interface that backends implement, and the
// domain's typed errors. Backends live in access/memory and access/postgres;
// both pass the conformance suite in access/accesstest.
package access

import (
	"plinth.dev/plinth/internal/pagetoken"

	"fmt"
	"time"
)

// Principal is a service that calls the platform.
type Principal struct {
	ID          string // "prn_" and a ULID
	Name        string // unique, e.g. "payroll-app"
	Description string
	// Roles are the names of the roles granted to the principal, sorted,
	// without duplicates; empty (nil) when it holds none. What a role
	// grants is the gateway's configuration.
	Roles     []string
	CreatedAt time.Time
}

// APIKey is an API key as stored: never its secret, only a hash of it.
type APIKey struct {
	ID          string // "key_" and a ULID
	PrincipalID string
	// Prefix is the 8 lowercase hex characters after "plk_" in the
	// presented key; unique among keys, how Authenticate finds a key.
	Prefix string
	// SecretHash is the SHA-256 of the whole presented key: 32 bytes.
	SecretHash  []byte
	Description string
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never expires
	RevokedAt   time.Time // zero: not revoked
	LastUsedAt  time.Time // zero: never used; else to within UseRecordInterval
}

// KeyState is whether a key works at some instant.
type KeyState uint8

// The states of a key. Only KeyActive authenticates.
const (
	KeyStateUnspecified KeyState = iota
	KeyActive
	KeyExpired
	KeyRevoked
)

var keyStateNames = [...]string{"unspecified", "active", "expired", "revoked"}

// String returns the state's name in lower case.
func (s KeyState) String() string {
	if int(s) < len(keyStateNames) {
		return keyStateNames[s]
	}
	return fmt.Sprintf("KeyState(%d)", s)
}

// StateAt returns the key's state at now: revoked once revoked, whatever
// its expiry; else expired from its ExpiresAt on (a key that expires at t
// works before t and is refused at t); else active.
func (k APIKey) StateAt(now time.Time) KeyState {
	switch {
	case !k.RevokedAt.IsZero():
		return KeyRevoked
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return KeyExpired
	default:
		return KeyActive
	}
}

// Limits of the domain.
const (
	// DefaultPageSize is the page size of the list capabilities when the
	// request gives none.
	DefaultPageSize = pagetoken.DefaultPageSize
	// MaxPageSize is the largest page a list capability returns; the
	// contract refuses larger requests.
	MaxPageSize = pagetoken.MaxPageSize
	// MaxRotationOverlap is the longest a rotated key may keep working.
	MaxRotationOverlap = 7 * 24 * time.Hour
	// UseRecordInterval is how often, at most, Authenticate records that a
	// key was used: LastUsedAt is right to within it, and a key used
	// continuously costs one write per interval rather than one per call.
	UseRecordInterval = time.Minute
)

// Bootstrap's principal and the role it gets.
const (
	// BootstrapPrincipalName is the name of the principal Bootstrap
	// creates.
	BootstrapPrincipalName = "admin"
	// BootstrapRole is the role Bootstrap grants it; the gateway defines
	// it as granting everything.
	BootstrapRole = "admin"
)
