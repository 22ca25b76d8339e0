package accesstest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/domainerr"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
)

// --- IssueApiKey --------------------------------------------------------------

func testIssueApiKey(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	k, err := h.issue(t.Context(), &accessv1.IssueApiKeyRequest{PrincipalId: p.GetId(), Description: "production"})
	if err != nil {
		t.Fatalf("IssueApiKey: %v", err)
	}
	m := secretPattern.FindStringSubmatch(k.secret)
	if m == nil {
		t.Fatalf("secret of %d characters does not match %s", len(k.secret), secretPattern)
	}
	if !keyIDPattern.MatchString(k.key.GetId()) {
		t.Errorf("key id %q does not match %s", k.key.GetId(), keyIDPattern)
	}
	want := &accessv1.ApiKey{
		Id:          k.key.GetId(),
		PrincipalId: p.GetId(),
		Prefix:      m[1], // the visible part of the secret
		Description: "production",
		State:       accessv1.ApiKeyState_API_KEY_STATE_ACTIVE,
		CreatedAt:   stamp(epoch),
	}
	wantSame(t, "IssueApiKey answered", k.key, want)
	wantSame(t, "ListApiKeys", h.keyByID(t, p.GetId(), k.key.GetId()), want)
	h.wantAuthenticates(t, "the new key", k.secret, p)
}

func testIssueDistinctKeys(t *testing.T, h *harness) {
	p, q := h.newPrincipal(t), h.newPrincipal(t)
	var (
		secrets, prefixes, ids = map[string]bool{}, map[string]bool{}, map[string]bool{}
		keys                   []issued
	)
	for i := range 20 {
		owner := p
		if i%2 == 1 {
			owner = q
		}
		k := h.mustIssue(t, owner.GetId())
		if secrets[k.secret] || prefixes[k.key.GetPrefix()] || ids[k.key.GetId()] {
			t.Fatalf("key %d repeats the secret, prefix or id of an earlier one", i)
		}
		secrets[k.secret], prefixes[k.key.GetPrefix()], ids[k.key.GetId()] = true, true, true
		keys = append(keys, k)
	}
	for i, k := range keys {
		owner := p
		if i%2 == 1 {
			owner = q
		}
		h.wantAuthenticates(t, fmt.Sprintf("key %d", i), k.secret, owner)
	}
}

func testIssueUnknownPrincipal(t *testing.T, h *harness) {
	const id = "prn_00000000000000000000000000"
	h.newPrincipal(t)
	_, err := h.issue(t.Context(), &accessv1.IssueApiKeyRequest{PrincipalId: id})
	wantNotFound(t, err, "principal", id)
}

func testIssueExpiresAt(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	expiry := epoch.Add(time.Hour)
	k, err := h.issue(t.Context(), &accessv1.IssueApiKeyRequest{PrincipalId: p.GetId(), ExpiresAt: timestamppb.New(expiry)})
	if err != nil {
		t.Fatalf("IssueApiKey: %v", err)
	}
	wantSame(t, "expires_at", k.key.GetExpiresAt(), stamp(expiry))
	h.wantAuthenticates(t, "at issue", k.secret, p)
	h.clock.Advance(time.Hour - time.Microsecond)
	h.wantAuthenticates(t, "a microsecond before expiry", k.secret, p)
	h.clock.Advance(time.Microsecond)
	h.wantRefused(t, "at expiry", k.secret)
	if st := h.keyByID(t, p.GetId(), k.key.GetId()).GetState(); st != accessv1.ApiKeyState_API_KEY_STATE_EXPIRED {
		t.Fatalf("state at expiry = %s, want EXPIRED", st)
	}
	h.clock.Advance(24 * time.Hour)
	h.wantRefused(t, "a day after expiry", k.secret)
}

func testIssueExpiresAtNotInFuture(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	for _, at := range []time.Time{epoch.Add(-time.Hour), epoch.Truncate(time.Microsecond)} {
		_, err := h.issue(t.Context(), &accessv1.IssueApiKeyRequest{PrincipalId: p.GetId(), ExpiresAt: timestamppb.New(at)})
		wantInvalidArgument(t, err, "expires_at")
	}
	if pages := h.listKeys(t, p.GetId(), 0); len(pages[0]) != 0 {
		t.Fatalf("refused issues stored keys: %v", pages[0])
	}
}

// --- Authenticate -------------------------------------------------------------

func testAuthenticateOneError(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	good := h.mustIssue(t, p.GetId())
	revoked := h.mustIssue(t, p.GetId())
	if _, err := h.revokeKey(t.Context(), revoked.key.GetId()); err != nil {
		t.Fatal(err)
	}
	expiring, err := h.issue(t.Context(), &accessv1.IssueApiKeyRequest{
		PrincipalId: p.GetId(), ExpiresAt: timestamppb.New(epoch.Add(time.Minute)),
	})
	if err != nil {
		t.Fatal(err)
	}
	rotatedAway := h.mustIssue(t, p.GetId())
	h.mustRotate(t, rotatedAway.key.GetId(), 30*time.Second)
	h.clock.Advance(time.Minute)

	prefix := good.key.GetPrefix()
	secretPart := good.secret[len("plk_")+len(prefix)+1:]
	flipped := []byte(good.secret)
	last := len(flipped) - 1
	if flipped[last] == '0' {
		flipped[last] = '1'
	} else {
		flipped[last] = '0'
	}
	otherPrefix := "00000000"
	if prefix == otherPrefix {
		otherPrefix = "11111111"
	}
	cases := map[string]string{
		"empty":                      "",
		"only the scheme":            "plk_",
		"garbage":                    "hello world",
		"without the scheme":         strings.TrimPrefix(good.secret, "plk_"),
		"another scheme":             "pk_" + good.secret[len("plk_"):],
		"upper case":                 strings.ToUpper(good.secret),
		"prefix only":                "plk_" + prefix,
		"prefix and separator":       "plk_" + prefix + "_",
		"secret cut short":           good.secret[:len(good.secret)-1],
		"one character too many":     good.secret + "0",
		"surrounded by spaces":       " " + good.secret + " ",
		"bearer scheme left in":      "Bearer " + good.secret,
		"not hex":                    "plk_" + prefix + "_" + strings.Repeat("z", len(secretPart)),
		"wrong separator":            "plk_" + prefix + "-" + secretPart,
		"known prefix, wrong secret": string(flipped),
		"known prefix, other secret": "plk_" + prefix + "_" + strings.Repeat("0", len(secretPart)),
		"unknown prefix":             "plk_" + otherPrefix + "_" + secretPart,
		"secret of another key":      "plk_" + revoked.key.GetPrefix() + "_" + secretPart,
		"revoked":                    revoked.secret,
		"expired":                    expiring.secret,
		"rotated, overlap over":      rotatedAway.secret,
	}
	for what, presented := range cases {
		h.wantRefused(t, what, presented)
	}
	h.wantAuthenticates(t, "the good key, after all that", good.secret, p)
}

func testAuthenticateRecordsUse(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	k := h.mustIssue(t, p.GetId())
	if got := h.keyByID(t, p.GetId(), k.key.GetId()).GetLastUsedAt(); got != nil {
		t.Fatalf("last_used_at = %v before any use, want absent", got)
	}
	before := h.uses.recordedUses.Load()
	first := h.clock.Advance(time.Second)
	h.wantAuthenticates(t, "first use", k.secret, p)
	wantSame(t, "last_used_at after the first use", h.keyByID(t, p.GetId(), k.key.GetId()).GetLastUsedAt(), stamp(first))
	for range 10 {
		h.clock.Advance(5 * time.Second)
		h.wantAuthenticates(t, "within the interval", k.secret, p)
	}
	h.clock.Advance(access.UseRecordInterval - 50*time.Second) // exactly one interval after the first use
	h.wantAuthenticates(t, "one interval after the first use", k.secret, p)
	if n := h.uses.recordedUses.Load() - before; n != 1 {
		t.Fatalf("12 uses within one interval asked the store to record a use %d times, want once", n)
	}
	wantSame(t, "last_used_at within the interval", h.keyByID(t, p.GetId(), k.key.GetId()).GetLastUsedAt(), stamp(first))

	later := h.clock.Advance(time.Microsecond)
	h.wantAuthenticates(t, "after the interval", k.secret, p)
	wantSame(t, "last_used_at after the interval", h.keyByID(t, p.GetId(), k.key.GetId()).GetLastUsedAt(), stamp(later))

	// A refused key is not recorded as used.
	if _, err := h.revokeKey(t.Context(), k.key.GetId()); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour)
	h.wantRefused(t, "revoked", k.secret)
	wantSame(t, "last_used_at after a refused use", h.keyByID(t, p.GetId(), k.key.GetId()).GetLastUsedAt(), stamp(later))
}

func testConcurrentAuthenticate(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	keys := []issued{h.mustIssue(t, p.GetId()), h.mustIssue(t, p.GetId())}
	revoked := h.mustIssue(t, p.GetId())
	if _, err := h.revokeKey(t.Context(), revoked.key.GetId()); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		got   = make([]access.Principal, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			secret := keys[i%2].secret
			if i%4 == 3 {
				secret = revoked.secret
			}
			got[i], errs[i] = h.svc.Authenticate(t.Context(), secret)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if i%4 == 3 {
			wantUnauthenticated(t, fmt.Sprintf("caller %d (revoked key)", i), got[i], errs[i], revoked.secret)
			continue
		}
		if errs[i] != nil || got[i].ID != p.GetId() {
			t.Fatalf("caller %d: Authenticate = %s, %v; want %s", i, got[i].ID, errs[i], p.GetId())
		}
	}
	for _, k := range keys {
		wantSame(t, "last_used_at", h.keyByID(t, p.GetId(), k.key.GetId()).GetLastUsedAt(), stamp(epoch))
	}
}

// --- RotateApiKey -------------------------------------------------------------

func testRotateOverlap(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	old := h.mustIssue(t, p.GetId())
	rotatedAt := h.clock.Advance(time.Minute)
	next, previous := h.mustRotate(t, old.key.GetId(), time.Hour)

	if !secretPattern.MatchString(next.secret) || next.secret == old.secret {
		t.Fatalf("rotation answered a secret that is malformed or the old one")
	}
	if next.key.GetId() == old.key.GetId() || next.key.GetPrefix() == old.key.GetPrefix() {
		t.Fatalf("rotation answered the old key's id or prefix")
	}
	wantSame(t, "the new key", next.key, &accessv1.ApiKey{
		Id: next.key.GetId(), PrincipalId: p.GetId(), Prefix: next.key.GetPrefix(), Description: old.key.GetDescription(),
		State: accessv1.ApiKeyState_API_KEY_STATE_ACTIVE, CreatedAt: stamp(rotatedAt),
	})
	wantPrevious := &accessv1.ApiKey{
		Id: old.key.GetId(), PrincipalId: p.GetId(), Prefix: old.key.GetPrefix(), Description: old.key.GetDescription(),
		State: accessv1.ApiKeyState_API_KEY_STATE_ACTIVE, CreatedAt: old.key.GetCreatedAt(), ExpiresAt: stamp(rotatedAt.Add(time.Hour)),
	}
	wantSame(t, "the previous key", previous, wantPrevious)
	wantSame(t, "ListApiKeys: the previous key", h.keyByID(t, p.GetId(), old.key.GetId()), wantPrevious)
	wantSame(t, "ListApiKeys: the new key", h.keyByID(t, p.GetId(), next.key.GetId()), next.key)

	h.wantAuthenticates(t, "old key, at rotation", old.secret, p)
	h.wantAuthenticates(t, "new key, at rotation", next.secret, p)
	h.clock.Advance(time.Hour - time.Microsecond)
	h.wantAuthenticates(t, "old key, a microsecond before the overlap ends", old.secret, p)
	h.wantAuthenticates(t, "new key, a microsecond before the overlap ends", next.secret, p)
	h.clock.Advance(time.Microsecond)
	h.wantRefused(t, "old key, when the overlap ends", old.secret)
	h.wantAuthenticates(t, "new key, when the overlap ends", next.secret, p)
	if st := h.keyByID(t, p.GetId(), old.key.GetId()).GetState(); st != accessv1.ApiKeyState_API_KEY_STATE_EXPIRED {
		t.Fatalf("old key's state after the overlap = %s, want EXPIRED", st)
	}
	h.clock.Advance(30 * 24 * time.Hour)
	h.wantRefused(t, "old key, a month later", old.secret)
	h.wantAuthenticates(t, "new key, a month later", next.secret, p)
}

func testRotateZeroOverlap(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	old := h.mustIssue(t, p.GetId())
	next, previous := h.mustRotate(t, old.key.GetId(), 0)
	wantSame(t, "the previous key's expires_at", previous.GetExpiresAt(), stamp(epoch))
	if previous.GetState() != accessv1.ApiKeyState_API_KEY_STATE_EXPIRED {
		t.Errorf("previous key's state = %s, want EXPIRED", previous.GetState())
	}
	h.wantRefused(t, "old key, right after a rotation without overlap", old.secret)
	h.wantAuthenticates(t, "new key", next.secret, p)
}

func testRotateNeverLengthens(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	expiry := epoch.Add(10 * time.Minute)
	old, err := h.issue(t.Context(), &accessv1.IssueApiKeyRequest{PrincipalId: p.GetId(), ExpiresAt: timestamppb.New(expiry)})
	if err != nil {
		t.Fatal(err)
	}
	_, previous := h.mustRotate(t, old.key.GetId(), time.Hour)
	wantSame(t, "the old key's expires_at after a long overlap", previous.GetExpiresAt(), stamp(expiry))
	h.clock.Advance(10 * time.Minute)
	h.wantRefused(t, "old key at its own expiry", old.secret)

	// A second rotation during the overlap can shorten it, not lengthen it.
	p2 := h.newPrincipal(t)
	k := h.mustIssue(t, p2.GetId())
	_, first := h.mustRotate(t, k.key.GetId(), time.Hour)
	_, second := h.mustRotate(t, k.key.GetId(), 2*time.Hour)
	wantSame(t, "expires_at after a longer second overlap", second.GetExpiresAt(), first.GetExpiresAt())
	_, third := h.mustRotate(t, k.key.GetId(), time.Minute)
	wantSame(t, "expires_at after a shorter third overlap", third.GetExpiresAt(), stamp(h.clock.Now().Add(time.Minute)))
}

func testRotateNewKeyExpiry(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	old := h.mustIssue(t, p.GetId())
	expiry := epoch.Add(30 * 24 * time.Hour)
	next, _, err := h.rotate(t.Context(), &accessv1.RotateApiKeyRequest{
		ApiKeyId: old.key.GetId(), Overlap: durationpb.New(time.Hour), ExpiresAt: timestamppb.New(expiry),
	})
	if err != nil {
		t.Fatalf("RotateApiKey: %v", err)
	}
	wantSame(t, "the new key's expires_at", next.key.GetExpiresAt(), stamp(expiry))
	_, _, err = h.rotate(t.Context(), &accessv1.RotateApiKeyRequest{
		ApiKeyId: next.key.GetId(), Overlap: durationpb.New(time.Hour), ExpiresAt: timestamppb.New(epoch.Add(-time.Second)),
	})
	wantInvalidArgument(t, err, "expires_at")
	h.wantAuthenticates(t, "the new key after a refused rotation", next.secret, p)
}

func testRotateNotActive(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	revoked := h.mustIssue(t, p.GetId())
	if _, err := h.revokeKey(t.Context(), revoked.key.GetId()); err != nil {
		t.Fatal(err)
	}
	expired, err := h.issue(t.Context(), &accessv1.IssueApiKeyRequest{PrincipalId: p.GetId(), ExpiresAt: timestamppb.New(epoch.Add(time.Second))})
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Second)
	for _, c := range []struct {
		key   issued
		state access.KeyState
	}{{revoked, access.KeyRevoked}, {expired, access.KeyExpired}} {
		_, _, err := h.rotate(t.Context(), &accessv1.RotateApiKeyRequest{ApiKeyId: c.key.key.GetId(), Overlap: durationpb.New(time.Hour)})
		na := errorAs[*access.KeyNotActiveError](t, err)
		if na.KeyID != c.key.key.GetId() || na.State != c.state {
			t.Fatalf("KeyNotActiveError{%s, %s}, want {%s, %s}", na.KeyID, na.State, c.key.key.GetId(), c.state)
		}
		wantKind(t, err, domainerr.KindFailedPrecondition)
		h.wantRefused(t, "a key whose rotation was refused", c.key.secret)
	}
	if n := len(h.listKeys(t, p.GetId(), 0)[0]); n != 2 {
		t.Fatalf("%d keys after refused rotations, want the 2 issued", n)
	}
}

func testRotateUnknown(t *testing.T, h *harness) {
	const id = "key_00000000000000000000000000"
	h.mustIssue(t, h.newPrincipal(t).GetId())
	_, _, err := h.rotate(t.Context(), &accessv1.RotateApiKeyRequest{ApiKeyId: id, Overlap: durationpb.New(time.Hour)})
	wantNotFound(t, err, "API key", id)
}

func testRotateOverlapOutOfRange(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	k := h.mustIssue(t, p.GetId())
	for what, overlap := range map[string]*durationpb.Duration{
		"absent":                    nil,
		"negative":                  durationpb.New(-time.Second),
		"a second more than 7 days": durationpb.New(access.MaxRotationOverlap + time.Second),
		"malformed":                 {Seconds: 1, Nanos: -1},
	} {
		_, _, err := h.rotate(t.Context(), &accessv1.RotateApiKeyRequest{ApiKeyId: k.key.GetId(), Overlap: overlap})
		if err == nil {
			t.Fatalf("overlap %s: RotateApiKey succeeded", what)
		}
		wantInvalidArgument(t, err, "overlap")
	}
	if n := len(h.listKeys(t, p.GetId(), 0)[0]); n != 1 {
		t.Fatalf("%d keys after refused rotations, want 1", n)
	}
	h.clock.Advance(365 * 24 * time.Hour)
	h.wantAuthenticates(t, "a key whose rotations were all refused", k.secret, p)
	_, previous := h.mustRotate(t, k.key.GetId(), access.MaxRotationOverlap)
	wantSame(t, "expires_at with the longest overlap", previous.GetExpiresAt(), stamp(h.clock.Now().Add(access.MaxRotationOverlap)))
}

func testConcurrentRotations(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	old := h.mustIssue(t, p.GetId())
	const n = 16
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		next  = make([]issued, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			next[i], _, errs[i] = h.rotate(t.Context(), &accessv1.RotateApiKeyRequest{
				ApiKeyId: old.key.GetId(), Overlap: durationpb.New(time.Duration(n-i) * time.Minute),
			})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	// Whatever the order, the shortest overlap wins: no rotation's change
	// was lost to another's.
	wantSame(t, "the old key's expires_at", h.keyByID(t, p.GetId(), old.key.GetId()).GetExpiresAt(), stamp(epoch.Add(time.Minute)))
	if got := len(h.listKeys(t, p.GetId(), 0)[0]); got != n+1 {
		t.Fatalf("%d keys after %d rotations of one key, want %d", got, n, n+1)
	}
	h.clock.Advance(time.Minute)
	h.wantRefused(t, "the old key after the shortest overlap", old.secret)
	for i, k := range next {
		h.wantAuthenticates(t, fmt.Sprintf("successor %d", i), k.secret, p)
	}
}

// --- RevokeApiKey -------------------------------------------------------------

func testRevokeImmediate(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	k, other := h.mustIssue(t, p.GetId()), h.mustIssue(t, p.GetId())
	h.wantAuthenticates(t, "before revocation", k.secret, p)
	revokedAt := h.clock.Now()
	got, err := h.revokeKey(t.Context(), k.key.GetId())
	if err != nil {
		t.Fatalf("RevokeApiKey: %v", err)
	}
	want := &accessv1.ApiKey{
		Id: k.key.GetId(), PrincipalId: p.GetId(), Prefix: k.key.GetPrefix(), Description: k.key.GetDescription(),
		State: accessv1.ApiKeyState_API_KEY_STATE_REVOKED, CreatedAt: k.key.GetCreatedAt(),
		RevokedAt: stamp(revokedAt), LastUsedAt: stamp(epoch),
	}
	wantSame(t, "RevokeApiKey answered", got, want)
	// The clock has not moved: the very next call is refused.
	h.wantRefused(t, "the next call after revocation", k.secret)
	h.wantAuthenticates(t, "another key of the principal", other.secret, p)

	h.clock.Advance(time.Hour)
	again, err := h.revokeKey(t.Context(), k.key.GetId())
	if err != nil {
		t.Fatalf("second RevokeApiKey: %v", err)
	}
	wantSame(t, "a second revocation's answer (the first one's time)", again, want)
	wantSame(t, "ListApiKeys", h.keyByID(t, p.GetId(), k.key.GetId()), want)
	h.wantRefused(t, "an hour after revocation", k.secret)
}

func testRevokeDuringOverlap(t *testing.T, h *harness) {
	p := h.newPrincipal(t)
	old := h.mustIssue(t, p.GetId())
	next, _ := h.mustRotate(t, old.key.GetId(), time.Hour)
	h.wantAuthenticates(t, "old key during the overlap", old.secret, p)
	if _, err := h.revokeKey(t.Context(), old.key.GetId()); err != nil {
		t.Fatal(err)
	}
	h.wantRefused(t, "old key revoked during the overlap", old.secret)
	h.wantAuthenticates(t, "new key", next.secret, p)
}

func testRevokeUnknown(t *testing.T, h *harness) {
	const id = "key_00000000000000000000000000"
	h.mustIssue(t, h.newPrincipal(t).GetId())
	_, err := h.revokeKey(t.Context(), id)
	wantNotFound(t, err, "API key", id)
}

// --- ListApiKeys --------------------------------------------------------------

func testListApiKeys(t *testing.T, h *harness) {
	p, other := h.newPrincipal(t), h.newPrincipal(t)
	var want []string
	for i := range 7 {
		want = append(want, h.mustIssue(t, p.GetId()).key.GetId())
		if i%2 == 0 {
			h.mustIssue(t, other.GetId())
		}
	}
	slices.Sort(want)
	if _, err := h.revokeKey(t.Context(), want[2]); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int32{1, 2, 3, 6, 7, 8, 0} {
		pages := h.listKeys(t, p.GetId(), size)
		var got []string
		for i, page := range pages {
			limit := int(size)
			if size == 0 {
				limit = access.DefaultPageSize
			}
			if len(page) > limit || (i < len(pages)-1 && len(page) != limit) {
				t.Fatalf("page size %d: page %d has %d keys", size, i, len(page))
			}
			for _, k := range page {
				if k.GetPrincipalId() != p.GetId() {
					t.Fatalf("page size %d: listed key %s of principal %s", size, k.GetId(), k.GetPrincipalId())
				}
				wantState := accessv1.ApiKeyState_API_KEY_STATE_ACTIVE
				if k.GetId() == want[2] {
					wantState = accessv1.ApiKeyState_API_KEY_STATE_REVOKED
				}
				if k.GetState() != wantState {
					t.Fatalf("key %s listed %s, want %s", k.GetId(), k.GetState(), wantState)
				}
				got = append(got, k.GetId())
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("page size %d: listed %v, want every key once in id order %v", size, got, want)
		}
	}
}

func testListApiKeysUnknownPrincipal(t *testing.T, h *harness) {
	const id = "prn_00000000000000000000000000"
	h.mustIssue(t, h.newPrincipal(t).GetId())
	_, err := h.svc.ListApiKeys(t.Context(), connect.NewRequest(&accessv1.ListApiKeysRequest{PrincipalId: id}))
	wantNotFound(t, err, "principal", id)

	// A principal without keys is no error.
	p := h.newPrincipal(t)
	if pages := h.listKeys(t, p.GetId(), 0); len(pages) != 1 || len(pages[0]) != 0 {
		t.Fatalf("ListApiKeys of a principal without keys: %v, want one empty page", pages)
	}
}

func testListApiKeysTokenOfAnotherPrincipal(t *testing.T, h *harness) {
	p, q := h.newPrincipal(t), h.newPrincipal(t)
	for range 3 {
		h.mustIssue(t, p.GetId())
		h.mustIssue(t, q.GetId())
	}
	res, err := h.svc.ListApiKeys(t.Context(), connect.NewRequest(&accessv1.ListApiKeysRequest{PrincipalId: p.GetId(), PageSize: 1}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.ListApiKeys(t.Context(), connect.NewRequest(&accessv1.ListApiKeysRequest{
		PrincipalId: q.GetId(), PageSize: 1, PageToken: res.Msg.GetNextPageToken(),
	}))
	wantInvalidArgument(t, err, "page_token")
}
