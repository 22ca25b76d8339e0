// Package pagetoken makes the opaque page tokens of list capabilities.
//
// A token holds the sort key of the last item of a page and a digest of the
// filter the page was read with. Listing resumes strictly after that key
// (keyset pagination), so an item that existed when the first page was read
// is returned exactly once, whatever is added meanwhile; and a token replayed
// with another filter is refused rather than silently skipping items.
//
//	token = base64url( version(1) | sha256(filter)[:8] | last key )
//
// Tokens are opaque to callers but not secret, and they are not signed: an
// edited token can only move the listing to another position the caller could
// have reached by paging. Signing them is part of issue 6 (hostile input).
package pagetoken

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"

	"plinth.dev/plinth/capabilities/domainerr"
)

const version = 1

// MaxKeyLen bounds the sort key a token may carry.
const MaxKeyLen = 256

// Encode returns the token for resuming a listing with filter after key.
func Encode(filter, key string) string {
	b := make([]byte, 0, 1+8+len(key))
	b = append(b, version)
	b = append(b, filterDigest(filter)...)
	b = append(b, key...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode returns the key a token resumes after. An empty token is the first
// page and gives an empty key. A token that is malformed, or that was issued
// for another filter, gives a *domainerr.InvalidArgumentError for field.
func Decode(field, filter, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 1+8+1 || len(b) > 1+8+MaxKeyLen || b[0] != version {
		return "", &domainerr.InvalidArgumentError{Field: field,
			Description: "is not a page token this listing issued; pass the next_page_token of the previous page, or an empty one to start again"}
	}
	if !bytes.Equal(b[1:9], filterDigest(filter)) {
		return "", &domainerr.InvalidArgumentError{Field: field,
			Description: "was issued for a different filter; repeat the filter of the first page, or start again with an empty page_token"}
	}
	return string(b[9:]), nil
}

func filterDigest(filter string) []byte {
	sum := sha256.Sum256([]byte(filter))
	return sum[:8]
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
