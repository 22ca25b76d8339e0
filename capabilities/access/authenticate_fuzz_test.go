package access_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/access/memory"
)

// The keys FuzzAuthenticate's store holds, fixed so that the seed corpus
// can name them and the fuzzer mutate them: one active, one revoked, one
// expired, all of one principal.
const (
	fuzzActiveKey  = "plk_0123abcd_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	fuzzRevokedKey = "plk_0123abce_fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	fuzzExpiredKey = "plk_ffffffff_00000000000000000000000000000000000000000000000000000000000000ff"
)

// FuzzAuthenticate presents arbitrary keys to Authenticate over the memory
// store. It never panics; it authenticates the principal for the active
// key, byte for byte, and answers ErrUnauthenticated, the one error for
// every failure, for anything else: a malformed key, an unknown prefix, a
// wrong secret, a revoked or an expired key.
func FuzzAuthenticate(f *testing.F) {
	for _, s := range []string{
		fuzzActiveKey, fuzzRevokedKey, fuzzExpiredKey,
		fuzzActiveKey[:len(fuzzActiveKey)-1] + "e", // right prefix, wrong secret
		strings.ToUpper(fuzzActiveKey), fuzzActiveKey + " ", " " + fuzzActiveKey, "Bearer " + fuzzActiveKey,
		"", "plk_", "plk_dummyxyz_" + strings.Repeat("0", 64),
	} {
		f.Add(s)
	}
	ctx := context.Background()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	store := memory.New()
	p := access.Principal{ID: "prn_01ARZ3NDEKTSV4RRFFQ69G5FAV", Name: "fuzz", Roles: []string{"admin"}, CreatedAt: now}
	if err := store.CreatePrincipal(ctx, p); err != nil {
		f.Fatal(err)
	}
	for i, k := range []struct {
		presented          string
		expires, revokedAt time.Time
	}{
		{fuzzActiveKey, time.Time{}, time.Time{}},
		{fuzzRevokedKey, time.Time{}, now.Add(-time.Hour)},
		{fuzzExpiredKey, now.Add(-time.Minute), time.Time{}},
	} {
		hash := sha256.Sum256([]byte(k.presented))
		err := store.CreateKey(ctx, access.APIKey{
			ID: "key_01ARZ3NDEKTSV4RRFFQ69G5FA" + string(rune('0'+i)), PrincipalID: p.ID, Prefix: k.presented[4:12],
			SecretHash: hash[:], CreatedAt: now.Add(-24 * time.Hour), ExpiresAt: k.expires, RevokedAt: k.revokedAt,
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	svc := access.NewService(store, access.WithClock(func() time.Time { return now }))
	if got, err := svc.Authenticate(ctx, fuzzActiveKey); err != nil || got.ID != p.ID {
		f.Fatalf("the active key does not authenticate: %v, %v", got, err)
	}
	f.Fuzz(func(t *testing.T, presented string) {
		got, err := svc.Authenticate(ctx, presented)
		if presented == fuzzActiveKey {
			if err != nil || got.ID != p.ID {
				t.Fatalf("Authenticate(the active key) = %v, %v", got, err)
			}
			return
		}
		if !errors.Is(err, access.ErrUnauthenticated) || got.ID != "" {
			t.Fatalf("Authenticate(%q) = %v, %v; want ErrUnauthenticated", presented, got, err)
		}
	})
}
