// These tests are in package access, not access_test, because the key
// format and the proto conversions they check are unexported. The
// capabilities themselves are tested through the exported conformance
// suite, accesstest, which every backend runs.
package access

import (
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"
	"time"

	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
)

var presentedPattern = regexp.MustCompile(`^plk_[0-9a-f]{8}_[0-9a-f]{64}$`)

func TestNewCredential(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		c := newCredential()
		if !presentedPattern.MatchString(c.presented) || len(c.presented) != presentedLen {
			t.Fatalf("presented key of %d characters does not match %s", len(c.presented), presentedPattern)
		}
		prefix, ok := prefixOf(c.presented)
		if !ok || prefix != c.prefix || c.presented[4:12] != prefix {
			t.Fatalf("prefixOf = %q, %v; want %q", prefix, ok, c.prefix)
		}
		if want := sha256.Sum256([]byte(c.presented)); string(c.hash) != string(want[:]) {
			t.Fatal("hash is not the SHA-256 of the presented key")
		}
		if seen[c.presented] {
			t.Fatal("newCredential repeated a key")
		}
		seen[c.presented] = true
	}
}

func TestPrefixOfRefusesMalformedKeys(t *testing.T) {
	good := newCredential().presented
	for name, presented := range map[string]string{
		"empty":            "",
		"scheme only":      "plk_",
		"upper case hex":   "plk_" + strings.ToUpper(good[4:]),
		"upper case all":   strings.ToUpper(good),
		"short":            good[:len(good)-1],
		"long":             good + "0",
		"wrong separator":  good[:12] + "-" + good[13:],
		"not hex prefix":   "plk_0123456g" + good[12:],
		"not hex secret":   good[:len(good)-1] + "g",
		"another scheme":   "plx_" + good[4:],
		"space":            good[:20] + " " + good[21:],
		"multibyte filler": "plk_" + strings.Repeat("é", 4) + good[12:],
		"dummy":            dummyKey,
	} {
		if prefix, ok := prefixOf(presented); ok {
			t.Errorf("%s: prefixOf accepted it (prefix %q)", name, prefix)
		}
	}
	if len(dummyKey) != presentedLen {
		t.Errorf("dummyKey has %d characters, want %d: hashing it must cost what hashing a key does", len(dummyKey), presentedLen)
	}
}

func TestKeyStateAt(t *testing.T) {
	t0 := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	for _, tc := range []struct {
		name string
		key  APIKey
		at   time.Time
		want KeyState
	}{
		{"never expires", APIKey{}, t0.AddDate(100, 0, 0), KeyActive},
		{"before expiry", APIKey{ExpiresAt: t0}, t0.Add(-time.Nanosecond), KeyActive},
		{"at expiry", APIKey{ExpiresAt: t0}, t0, KeyExpired},
		{"after expiry", APIKey{ExpiresAt: t0}, t0.Add(time.Hour), KeyExpired},
		{"revoked", APIKey{RevokedAt: t0}, t0.Add(-time.Hour), KeyRevoked},
		{"revoked and expired", APIKey{RevokedAt: t0, ExpiresAt: t0}, t0.Add(time.Hour), KeyRevoked},
	} {
		if got := tc.key.StateAt(tc.at); got != tc.want {
			t.Errorf("%s: StateAt = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// The domain's key states and the contract's enum are in the same order.
func TestKeyStatesMatchTheContract(t *testing.T) {
	for _, s := range []KeyState{KeyStateUnspecified, KeyActive, KeyExpired, KeyRevoked} {
		want := "API_KEY_STATE_" + strings.ToUpper(s.String())
		if got := keyStateToProto(s).String(); got != want {
			t.Errorf("keyStateToProto(%s) = %s, want %s", s, got, want)
		}
	}
	if n := accessv1.ApiKeyState(0).Descriptor().Values().Len(); n != 4 {
		t.Errorf("the contract has %d key states, the domain 4", n)
	}
}
