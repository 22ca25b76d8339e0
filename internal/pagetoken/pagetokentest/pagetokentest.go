// Package pagetokentest helps the domains' conformance suites prove that a
// listing refuses every page token it did not issue.
package pagetokentest

import (
	"encoding/base64"
	"slices"
)

// Key is a fixed page-token key for tests: two Codecs made from it stand
// for two gateways of one deployment.
var Key = []byte("plinth test page-token key 32 b.")

// OtherKey is another deployment's key.
var OtherKey = []byte("another deployment's key, 32 b..")

// Altered returns tokens that differ from token in one place each: every
// byte of the decoded token with one bit flipped (the version, the filter
// digest, the key and the MAC alike), the token cut short and lengthened,
// and every character of the text replaced. None of them is token, and a
// listing must refuse each one.
func Altered(token string) []string {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return []string{token + "x"}
	}
	var out []string
	for i := range raw {
		for _, bit := range []byte{0x01, 0x80} {
			b := slices.Clone(raw)
			b[i] ^= bit
			out = append(out, base64.RawURLEncoding.EncodeToString(b))
		}
	}
	out = append(out,
		base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1]),
		base64.RawURLEncoding.EncodeToString(raw[1:]),
		base64.RawURLEncoding.EncodeToString(append(slices.Clone(raw), 0)),
		token[:len(token)-1],
		token+"A",
		token+"\n",
	)
	for i := range len(token) {
		c := byte('A')
		if token[i] == 'A' {
			c = 'B'
		}
		out = append(out, token[:i]+string(c)+token[i+1:])
	}
	return out
}
