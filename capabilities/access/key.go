package access

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// The shape of a presented key: "plk_", the prefix, "_", the secret.
const (
	keyScheme    = "plk_"
	prefixBytes  = 4               // random bytes of a prefix
	prefixLen    = 2 * prefixBytes // hex characters of a prefix
	secretBytes  = 32              // random bytes of a secret
	secretLen    = 2 * secretBytes // hex characters of a secret
	presentedLen = len(keyScheme) + prefixLen + 1 + secretLen
)

// credential is a new key as its holder gets it, and what the store keeps
// of it.
type credential struct {
	prefix    string
	presented string // the whole key, shown once
	hash      []byte // what the store keeps
}

// newCredential draws a new prefix and secret.
func newCredential() credential {
	var p [prefixBytes]byte
	var s [secretBytes]byte
	rand.Read(p[:]) // never fails (crypto/rand.Read crashes the program rather than return an error)
	rand.Read(s[:])
	prefix := hex.EncodeToString(p[:])
	presented := keyScheme + prefix + "_" + hex.EncodeToString(s[:])
	h := hashKey(presented)
	return credential{prefix: prefix, presented: presented, hash: h[:]}
}

// hashKey returns what a store keeps of a presented key: the SHA-256 of
// the whole of it, so the hash is bound to the prefix as well as to the
// secret.
func hashKey(presented string) [sha256.Size]byte {
	// Every call hashes its key: a well-formed one fits the buffer on the
	// stack, and costs no allocation.
	var buf [128]byte
	return sha256.Sum256(append(buf[:0], presented...))
}

// prefixOf returns the prefix of a well-formed presented key, and false if
// presented is not one: "plk_", 8 lowercase hex characters, "_", 64
// lowercase hex characters, nothing else. Whether a key is well-formed is
// no secret (the format is public), so the check need not take constant
// time.
func prefixOf(presented string) (string, bool) {
	if len(presented) != presentedLen || presented[:len(keyScheme)] != keyScheme {
		return "", false
	}
	rest := presented[len(keyScheme):]
	prefix, sep, secret := rest[:prefixLen], rest[prefixLen], rest[prefixLen+1:]
	if sep != '_' || !isLowerHex(prefix) || !isLowerHex(secret) {
		return "", false
	}
	return prefix, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
