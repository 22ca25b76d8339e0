package access

import (
	"errors"
	"fmt"
	"strings"

	"plinth.dev/plinth/capabilities/domainerr"
)

// ErrUnauthenticated is Authenticate's one answer to a key that does not
// authenticate, whatever the reason: malformed, unknown prefix, wrong
// secret, revoked or expired. It never says which, so that a caller
// probing keys learns nothing; the gateway answers it as Unauthenticated.
// Compare with errors.Is.
var ErrUnauthenticated = errors.New("access: the API key is not valid")

// NameTakenError refuses a principal whose name another principal has.
type NameTakenError struct {
	Name string
}

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("a principal named %q exists already; principal names are unique", e.Name)
}

// Kind returns domainerr.KindAlreadyExists.
func (e *NameTakenError) Kind() domainerr.Kind { return domainerr.KindAlreadyExists }

// Reason returns "PRINCIPAL_NAME_TAKEN".
func (e *NameTakenError) Reason() string { return "PRINCIPAL_NAME_TAKEN" }

// Metadata names the name.
func (e *NameTakenError) Metadata() map[string]string { return map[string]string{"name": e.Name} }

// UnknownRoleError refuses to grant a role that the gateway's
// configuration does not define (see WithRoleCheck).
type UnknownRoleError struct {
	Role string
}

func (e *UnknownRoleError) Error() string {
	return fmt.Sprintf("role: %q is not a role this deployment defines; roles are defined in the gateway's configuration", e.Role)
}

// Kind returns domainerr.KindInvalidArgument.
func (e *UnknownRoleError) Kind() domainerr.Kind { return domainerr.KindInvalidArgument }

// Reason returns "UNKNOWN_ROLE".
func (e *UnknownRoleError) Reason() string { return "UNKNOWN_ROLE" }

// Metadata names the role.
func (e *UnknownRoleError) Metadata() map[string]string { return map[string]string{"role": e.Role} }

// KeyNotActiveError refuses to rotate a key that no longer works: a
// revoked or expired key has nothing left to hand over. Issue a new key
// instead.
type KeyNotActiveError struct {
	KeyID string
	State KeyState // KeyRevoked or KeyExpired
}

func (e *KeyNotActiveError) Error() string {
	return fmt.Sprintf("API key %s is %s, so it cannot be rotated; issue a new key instead", e.KeyID, e.State)
}

// Kind returns domainerr.KindFailedPrecondition.
func (e *KeyNotActiveError) Kind() domainerr.Kind { return domainerr.KindFailedPrecondition }

// Reason returns "API_KEY_NOT_ACTIVE".
func (e *KeyNotActiveError) Reason() string { return "API_KEY_NOT_ACTIVE" }

// Metadata names the key and its state.
func (e *KeyNotActiveError) Metadata() map[string]string {
	return map[string]string{"api_key_id": e.KeyID, "state": "API_KEY_STATE_" + strings.ToUpper(e.State.String())}
}

// PrefixTakenError is what a Store returns for a new key whose prefix
// another key has. Prefixes are 32 random bits, so it happens about once in
// four billion keys per key already issued; the Service then draws a new
// key and tries again, and callers never see it.
type PrefixTakenError struct {
	Prefix string
}

func (e *PrefixTakenError) Error() string {
	return fmt.Sprintf("an API key with prefix %s exists already", e.Prefix)
}

// Kind returns domainerr.KindAlreadyExists.
func (e *PrefixTakenError) Kind() domainerr.Kind { return domainerr.KindAlreadyExists }

// PrincipalNotFound returns the error for a principal id that does not
// exist.
func PrincipalNotFound(id string) error {
	return &domainerr.NotFoundError{Resource: "principal", ID: id}
}

// KeyNotFound returns the error for an API key id that does not exist.
func KeyNotFound(id string) error {
	return &domainerr.NotFoundError{Resource: "API key", ID: id}
}

// PrefixNotFound returns the error of Store.LookupKey for a prefix no key
// has. (Authenticate answers ErrUnauthenticated instead.)
func PrefixNotFound() error {
	return &domainerr.NotFoundError{Resource: "API key with this prefix"}
}

var (
	_ domainerr.Error    = (*NameTakenError)(nil)
	_ domainerr.Detailed = (*NameTakenError)(nil)
	_ domainerr.Error    = (*UnknownRoleError)(nil)
	_ domainerr.Detailed = (*UnknownRoleError)(nil)
	_ domainerr.Error    = (*KeyNotActiveError)(nil)
	_ domainerr.Detailed = (*KeyNotActiveError)(nil)
	_ domainerr.Error    = (*PrefixTakenError)(nil)
)
