package access

import (
	"context"
	"crypto/subtle"
	"fmt"
	"strings"
	"time"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/ids"
)

// Authenticate returns the principal a presented key belongs to, with its
// roles as they are now, or ErrUnauthenticated: one error for every
// failure (malformed, unknown prefix, wrong secret, revoked, expired), which
// never says which part was wrong. Any other error means the store could
// not answer (a *domainerr.UnavailableError when it is unreachable), not
// that the key is bad.
//
// A wrong key costs what a right one does: Authenticate hashes what was
// presented, and compares it in constant time with the stored hash, or
// with a dummy when no key has the prefix (or the key is malformed), so
// the time it takes does not tell a known prefix from an unknown one. It
// checks whether the key is revoked or expired only after that comparison.
//
//	presented ─> well-formed? ─> hash ─> look up by prefix ─> compare hashes ─> active? ─> principal
//	                  │ no                      │ none            (constant time)
//	                  └──── hash and compare a dummy ───> ErrUnauthenticated
//
// It records when the key was used (APIKey.LastUsedAt) at most once per
// UseRecordInterval, so a busy key does not write on every call.
func (s *Service) Authenticate(ctx context.Context, presented string) (Principal, error) {
	prefix, wellFormed := prefixOf(presented)
	if !wellFormed {
		presented = dummyKey
	}
	got := hashKey(presented)
	if !wellFormed {
		subtle.ConstantTimeCompare(got[:], dummyHash[:])
		return Principal{}, ErrUnauthenticated
	}
	k, p, err := s.store.LookupKey(ctx, prefix)
	if kind, ok := domainerr.KindOf(err); ok && kind == domainerr.KindNotFound {
		subtle.ConstantTimeCompare(got[:], dummyHash[:])
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, err
	}
	now := s.timestamp()
	if subtle.ConstantTimeCompare(got[:], k.SecretHash) != 1 || k.StateAt(now) != KeyActive {
		return Principal{}, ErrUnauthenticated
	}
	if notBefore := now.Add(-UseRecordInterval); k.LastUsedAt.IsZero() || k.LastUsedAt.Before(notBefore) {
		// The call is authenticated; failing to record it fails the call
		// only when the store is down, which the call would find anyway.
		if err := s.store.RecordKeyUse(ctx, k.ID, now, notBefore); err != nil {
			return Principal{}, err
		}
	}
	return p, nil
}

// dummyKey is a well-formed key that is never issued (its prefix is not
// hex), hashed in place of a malformed one; dummyHash is what it is
// compared with when no key matches, a hash that no key has.
var (
	dummyKey  = keyScheme + "dummyxyz_" + strings.Repeat("0", secretLen)
	dummyHash = hashKey("plinth access: no key has this hash")
)

// Bootstrap gives a new deployment its first principal: if the store holds
// no principal yet, it creates one named BootstrapPrincipalName with role
// BootstrapRole, issues it a key that never expires, and returns the key's
// secret, which is shown this once. If the store holds a principal
// already, it changes nothing and returns "". Concurrent calls on an empty
// store bootstrap it once: exactly one of them gets the secret.
//
// It fails with an *UnknownRoleError if the role check (WithRoleCheck)
// does not know BootstrapRole: a principal with a role that grants nothing
// would lock the deployment out.
func (s *Service) Bootstrap(ctx context.Context) (secret string, err error) {
	if !s.roleExists(BootstrapRole) {
		return "", &UnknownRoleError{Role: BootstrapRole}
	}
	now := s.timestamp()
	p := Principal{
		ID:          ids.New("prn"),
		Name:        BootstrapPrincipalName,
		Description: "the first principal, created by bootstrap",
		Roles:       []string{BootstrapRole},
		CreatedAt:   now,
	}
	var (
		created bool
		cr      credential
	)
	err = retryOnPrefixTaken(func() (err error) {
		var k APIKey
		k, cr = s.newKey(p.ID, "issued by bootstrap", now, time.Time{})
		created, err = s.store.CreateFirstPrincipal(ctx, p, k)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("access: bootstrap: %w", err)
	}
	if !created {
		return "", nil
	}
	return cr.presented, nil
}
