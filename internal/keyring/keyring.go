// Package keyring holds the keys that protect sensitive data at rest.
//
// Sensitive values are sealed (package seal) with envelope encryption: each
// value is encrypted under a data key, and the data key is stored next to it
// wrapped (encrypted) under the key of the value's sensitivity class. The
// class keys never leave the keyring; the keyring hands out fresh data keys
// with their wrapped form, and unwraps wrapped data keys it made.
//
//	class key "pii" v1, v2, ...        (in the keyring: Vault Transit, or local)
//	  └─ wraps ─ data key              (in memory while in use; stored wrapped)
//	               └─ encrypts ─ value (stored sealed)
//
// Rotating a class key makes a new version of it: new data keys are wrapped
// under the new version, old wrapped data keys still unwrap, and Rewrap moves
// a stored wrapped data key to the latest version without ever revealing it.
//
// The keyring also keeps the secret keys of blind indexes (IndexKey): a
// value that must be found by a sensitive field is indexed by a keyed hash of
// that field, never by the field itself.
//
// Two backends implement Keyring: NewVault (Vault Transit and KV, for
// production) and NewLocal (in memory or a key file, for dev and tests
// only). Errors that mean the key service cannot be reached wrap
// ErrUnavailable; a wrapped data key that does not unwrap wraps
// ErrCannotUnwrap. No error of a keyring contains key material.
package keyring

import (
	"context"
	"errors"
	"fmt"
)

// Class is a sensitivity class. Each class has a key of its own, so that a
// leak of one class key exposes only that class, and so that who may use
// each key can be granted apart.
type Class string

// The sensitivity classes, as the contracts mark fields.
const (
	PII Class = "pii" // personally identifiable information: names, emails, tax ids
	PCI Class = "pci" // payment card and bank account data
	PHI Class = "phi" // protected health information
)

// Classes lists every class, in a stable order.
var Classes = []Class{PII, PCI, PHI}

// Validate returns an error unless c is one of Classes. Every Keyring
// method refuses an invalid class, so that a typo cannot mint a class key.
func (c Class) Validate() error {
	switch c {
	case PII, PCI, PHI:
		return nil
	}
	return fmt.Errorf("keyring: unknown sensitivity class %q (want one of pii, pci, phi)", string(c))
}

// DataKeySize is the size of a data key in bytes: an AES-256 key.
const DataKeySize = 32

// IndexKeySize is the size of a blind index key in bytes.
const IndexKeySize = 32

// Keyring wraps data keys under a key per sensitivity class and keeps the
// keys of blind indexes. Implementations are safe for concurrent use.
type Keyring interface {
	// NewDataKey returns a fresh DataKeySize-byte data key for class and
	// its wrapped form (opaque bytes, safe to store).
	NewDataKey(ctx context.Context, class Class) (plaintext, wrapped []byte, err error)
	// UnwrapDataKey returns the plaintext of a wrapped data key of class.
	// A wrapped key that is damaged, of another class, or from another
	// keyring gives an error that wraps ErrCannotUnwrap.
	UnwrapDataKey(ctx context.Context, class Class, wrapped []byte) ([]byte, error)
	// Rewrap returns wrapped rewrapped under the class key's latest
	// version. The data key stays the same, so whatever it encrypted
	// stays readable.
	Rewrap(ctx context.Context, class Class, wrapped []byte) ([]byte, error)
	// RotateClassKey makes a new version of the class key: new data keys
	// are wrapped under it, and data keys wrapped under older versions
	// still unwrap.
	RotateClassKey(ctx context.Context, class Class) error
	// IndexKey returns the IndexKeySize-byte secret key for keyed blind
	// indexes of purpose (e.g. "customers.email"). It is made on first use
	// and stays the same across restarts and across processes that share
	// the keyring: a blind index is only as stable as its key.
	IndexKey(ctx context.Context, purpose string) ([]byte, error)
}

// ErrUnavailable is wrapped by the errors of a keyring that cannot reach
// its key service (connection refused, a server error, Vault sealed). The
// operation may succeed later; nothing was changed.
var ErrUnavailable = errors.New("keyring unavailable")

// ErrCannotUnwrap is wrapped by the errors of UnwrapDataKey and Rewrap for
// a wrapped data key that the keyring does not accept: damaged, wrapped for
// another class, or by another keyring (or by a Vault dev server that has
// been restarted since and so forgot its keys).
var ErrCannotUnwrap = errors.New("keyring: wrapped data key does not unwrap")

// ValidatePurpose returns an error unless purpose is a valid blind index
// purpose: 1 to 128 characters of a-z, 0-9, '.', '_' and '-', such as
// "customers.email". Purposes name keys (and, in Vault, KV paths), so they
// are kept plain.
func ValidatePurpose(purpose string) error {
	if purpose == "" || len(purpose) > 128 {
		return fmt.Errorf("keyring: index purpose %q: want 1 to 128 characters", purpose)
	}
	for _, r := range purpose {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("keyring: index purpose %q: want only a-z, 0-9, '.', '_' and '-'", purpose)
		}
	}
	return nil
}
