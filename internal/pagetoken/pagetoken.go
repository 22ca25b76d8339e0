// Package pagetoken makes the opaque page tokens of list capabilities.
//
// A token holds the sort key of the last item of a page and a digest of the
// filter the page was read with. Listing resumes strictly after that key
// (keyset pagination), so an item that existed when the first page was read
// is returned exactly once, whatever is added meanwhile; and a token replayed
// with another filter is refused rather than silently skipping items.
//
//	token = base64url( version | sha256(filter)[:8] | last key | mac )
//	mac   = HMAC-SHA256(codec key, version | sha256(filter)[:8] | last key)[:16]
//
// where version is one byte, 2 (version 1 tokens were the same without the
// mac), and base64url is without padding.
//
// Tokens are opaque to callers but not secret (the key inside is an id or a
// sequence number the caller was just shown). They are authenticated: a
// Codec accepts only tokens made by a Codec with the same key, so a token
// that was forged, or altered in any byte, is refused with the same
// *domainerr.InvalidArgumentError as a malformed one, and never trusted as a
// position to resume from. Each filter names its listing (e.g.
// "ListTransfers account=lac_..."), so a token of one listing is refused by
// another.
//
// Every gateway of a deployment must use the same key, and the key must
// survive restarts, so that a token from one gateway works on another and
// after a restart: the gateway derives it from the deployment's keyring
// (DeriveCodec over seal.Sealer.BlindIndex), on first use, so that a
// gateway starts while the keyring is out of reach (its listings are then
// Unavailable until it is back). A Codec is safe for concurrent use; there
// is no package-level key.
package pagetoken

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync/atomic"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/keyring"
)

// version is the format of the tokens this package makes. Version 1 tokens
// (unsigned) are no longer accepted: a caller holding one starts again.
const version = 2

const (
	// KeySize is the size of a Codec's key in bytes.
	KeySize = 32
	// MaxKeyLen bounds the sort key a token may carry.
	MaxKeyLen = 256

	digestLen = 8
	macLen    = 16
	minRaw    = 1 + digestLen + 1 + macLen
	maxRaw    = 1 + digestLen + MaxKeyLen + macLen
)

// maxTokenLen is the longest token Decode reads: the base64url form of the
// longest token Encode can make. Longer input is refused before decoding.
var maxTokenLen = base64.RawURLEncoding.EncodedLen(maxRaw)

// KeyPurpose is the purpose of the keyring's index key from which
// DeriveCodec derives the page-token key.
const KeyPurpose = "pagetoken"

// derivationLabel is what DeriveCodec MACs under the keyring's index key;
// changing it changes every deployment's key.
const derivationLabel = "plinth page tokens v2"

// Codec makes and checks page tokens under one key.
type Codec struct {
	key atomic.Pointer[[KeySize]byte] // nil until derived
	// derive, if not nil, returns the key; it is called until it succeeds.
	derive func(ctx context.Context) (*[KeySize]byte, error)
}

// NewCodec returns a Codec with key, which must be KeySize bytes of secret,
// random material that every gateway of a deployment shares.
func NewCodec(key []byte) (*Codec, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("pagetoken: the key must be %d bytes, got %d", KeySize, len(key))
	}
	k := new([KeySize]byte)
	copy(k[:], key)
	c := &Codec{}
	c.key.Store(k)
	return c, nil
}

// NewEphemeralCodec returns a Codec with a random key of its own: its
// tokens are refused by every other Codec, in this process or another, and
// after a restart. That suits what lives no longer than the process: the
// gateway's pure dev mode (every backend in memory, no keyring), whose data
// does not survive a restart either, and tests.
func NewEphemeralCodec() *Codec {
	k := new([KeySize]byte)
	if _, err := rand.Read(k[:]); err != nil {
		panic("pagetoken: no randomness: " + err.Error()) // crypto/rand does not fail on supported platforms
	}
	c := &Codec{}
	c.key.Store(k)
	return c
}

// Indexer computes keyed blind indexes under keys of a keyring;
// *seal.Sealer is one.
type Indexer interface {
	BlindIndex(ctx context.Context, purpose string, value []byte) ([]byte, error)
}

// DeriveCodec returns the Codec of a deployment: its key is the blind
// index of a fixed label under the keyring's index key for KeyPurpose, so
// every gateway sharing the keyring derives the same key, before and after
// a restart, and nobody without the keyring can. The key is derived on the
// Codec's first use and kept; until that succeeds, Encode and Decode fail
// (a *domainerr.UnavailableError while the keyring is out of reach).
func DeriveCodec(ix Indexer) *Codec {
	return &Codec{derive: func(ctx context.Context) (*[KeySize]byte, error) {
		sum, err := ix.BlindIndex(ctx, KeyPurpose, []byte(derivationLabel))
		if err != nil {
			err = fmt.Errorf("pagetoken: deriving the key: %w", err)
			if errors.Is(err, keyring.ErrUnavailable) {
				return nil, &domainerr.UnavailableError{Dependency: "key service", Err: err}
			}
			return nil, err
		}
		if len(sum) < KeySize {
			return nil, errors.New("pagetoken: deriving the key: the index is too short")
		}
		k := new([KeySize]byte)
		copy(k[:], sum)
		return k, nil
	}}
}

// keyFor returns the Codec's key, deriving it if need be.
func (c *Codec) keyFor(ctx context.Context) (*[KeySize]byte, error) {
	if k := c.key.Load(); k != nil {
		return k, nil
	}
	if c.derive == nil {
		return nil, errors.New("pagetoken: a Codec needs a key: make it with NewCodec, NewEphemeralCodec or DeriveCodec")
	}
	// Concurrent first uses may each derive: they get the same key.
	k, err := c.derive(ctx)
	if err != nil {
		return nil, err
	}
	c.key.Store(k)
	return k, nil
}

// Encode returns the token for resuming a listing with filter after key.
// key must not be empty nor longer than MaxKeyLen: listings resume after
// ids and sequence numbers, far shorter. It fails only if the Codec's key
// cannot be derived (see DeriveCodec).
func (c *Codec) Encode(ctx context.Context, filter, key string) (string, error) {
	k, err := c.keyFor(ctx)
	if err != nil {
		return "", err
	}
	b := make([]byte, 0, 1+digestLen+len(key)+macLen)
	b = append(b, version)
	b = append(b, filterDigest(filter)...)
	b = append(b, key...)
	b = append(b, mac(k, b)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Decode returns the key a token resumes after. An empty token is the first
// page and gives an empty key. A token that is malformed, or that no Codec
// with this key made (forged, altered, or from another deployment), gives a
// *domainerr.InvalidArgumentError for field; so does one that was issued
// for another filter. It fails otherwise only if the Codec's key cannot be
// derived (see DeriveCodec).
func (c *Codec) Decode(ctx context.Context, field, filter, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	notOurs := &domainerr.InvalidArgumentError{Field: field,
		Description: "is not a page token this listing issued; pass the next_page_token of the previous page, or an empty one to start again"}
	if len(token) > maxTokenLen {
		return "", notOurs
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) < minRaw || len(b) > maxRaw || b[0] != version {
		return "", notOurs
	}
	// The decoder skips line breaks: only the one spelling Encode makes is
	// a token, so that a token is accepted exactly as it was issued.
	if base64.RawURLEncoding.EncodeToString(b) != token {
		return "", notOurs
	}
	k, err := c.keyFor(ctx)
	if err != nil {
		return "", err
	}
	body, sum := b[:len(b)-macLen], b[len(b)-macLen:]
	if !hmac.Equal(sum, mac(k, body)) {
		return "", notOurs
	}
	if !hmac.Equal(body[1:1+digestLen], filterDigest(filter)) {
		return "", &domainerr.InvalidArgumentError{Field: field,
			Description: "was issued for a different filter; repeat the filter of the first page, or start again with an empty page_token"}
	}
	return string(body[1+digestLen:]), nil
}

func mac(key *[KeySize]byte, body []byte) []byte {
	m := hmac.New(sha256.New, key[:])
	m.Write(body)
	return m.Sum(nil)[:macLen]
}

func filterDigest(filter string) []byte {
	sum := sha256.Sum256([]byte(filter))
	return sum[:digestLen]
}

// Page sizes every listing shares.
const (
	// DefaultPageSize is a page's size when the request gives none.
	DefaultPageSize = 50
	// MaxPageSize is the largest page a listing returns; the contracts
	// refuse larger requests.
	MaxPageSize = 200
)

// Size returns the page size for a requested one: DefaultPageSize for 0 (or
// less), at most MaxPageSize.
func Size(requested int32) int {
	if requested <= 0 {
		return DefaultPageSize
	}
	return min(int(requested), MaxPageSize)
}
