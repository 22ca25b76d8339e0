package accesstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/ids"
)

// at is the suite's epoch as stores keep time: microseconds, UTC.
var at = epoch.Truncate(time.Microsecond)

// storedPrincipal returns a principal as the Service would store it.
func (h *harness) storedPrincipal(t *testing.T, roles ...string) access.Principal {
	t.Helper()
	p := access.Principal{ID: ids.New("prn"), Name: h.name(), Description: "stored directly", Roles: roles, CreatedAt: at}
	if err := h.store.CreatePrincipal(t.Context(), p); err != nil {
		t.Fatalf("Store.CreatePrincipal: %v", err)
	}
	return p
}

// newStoredKey returns a key of a principal, with a random prefix and hash,
// as the Service would make it; it is not stored.
func newStoredKey(principalID string) access.APIKey {
	var p [4]byte
	hash := make([]byte, 32)
	rand.Read(p[:])
	rand.Read(hash)
	return access.APIKey{
		ID:          ids.New("key"),
		PrincipalID: principalID,
		Prefix:      hex.EncodeToString(p[:]),
		SecretHash:  hash,
		Description: "stored directly",
		CreatedAt:   at,
	}
}

func (h *harness) storedKey(t *testing.T, principalID string) access.APIKey {
	t.Helper()
	k := newStoredKey(principalID)
	if err := h.store.CreateKey(t.Context(), k); err != nil {
		t.Fatalf("Store.CreateKey: %v", err)
	}
	return k
}

// wantStoredKey fails the test unless got and want are the same key, field
// for field.
func wantStoredKey(t *testing.T, what string, got, want access.APIKey) {
	t.Helper()
	same := got.ID == want.ID && got.PrincipalID == want.PrincipalID && got.Prefix == want.Prefix &&
		bytes.Equal(got.SecretHash, want.SecretHash) && got.Description == want.Description &&
		got.CreatedAt.Equal(want.CreatedAt) && got.ExpiresAt.Equal(want.ExpiresAt) &&
		got.RevokedAt.Equal(want.RevokedAt) && got.LastUsedAt.Equal(want.LastUsedAt)
	if !same {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func (h *harness) wantKeyStored(t *testing.T, what string, want access.APIKey) {
	t.Helper()
	got, err := h.store.GetKey(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("%s: Store.GetKey: %v", what, err)
	}
	wantStoredKey(t, what, got, want)
}

func testStoreDuplicateIDs(t *testing.T, h *harness) {
	ctx := t.Context()
	p := h.storedPrincipal(t)
	dup := p
	dup.Name = h.name()
	err := h.store.CreatePrincipal(ctx, dup)
	ae := errorAs[*domainerr.AlreadyExistsError](t, err)
	if ae.Resource != "principal" || ae.ID != p.ID {
		t.Fatalf("AlreadyExistsError{%q, %q}, want {principal, %s}", ae.Resource, ae.ID, p.ID)
	}
	got, err := h.store.GetPrincipal(ctx, p.ID)
	if err != nil || got.Name != p.Name {
		t.Fatalf("Store.GetPrincipal after a duplicate id: %q, %v; want the first principal", got.Name, err)
	}

	k := h.storedKey(t, p.ID)
	dupKey := newStoredKey(p.ID)
	dupKey.ID = k.ID
	err = h.store.CreateKey(ctx, dupKey)
	ae = errorAs[*domainerr.AlreadyExistsError](t, err)
	if ae.Resource != "API key" || ae.ID != k.ID {
		t.Fatalf("AlreadyExistsError{%q, %q}, want {API key, %s}", ae.Resource, ae.ID, k.ID)
	}
	h.wantKeyStored(t, "the first key", k)
	if _, _, err := h.store.LookupKey(ctx, dupKey.Prefix); err == nil {
		t.Fatal("the refused key's prefix finds a key")
	}
}

func testStorePrefixUnique(t *testing.T, h *harness) {
	p, q := h.storedPrincipal(t), h.storedPrincipal(t)
	k := h.storedKey(t, p.ID)
	clash := newStoredKey(q.ID)
	clash.Prefix = k.Prefix
	err := h.store.CreateKey(t.Context(), clash)
	pt := errorAs[*access.PrefixTakenError](t, err)
	if pt.Prefix != k.Prefix {
		t.Fatalf("PrefixTakenError.Prefix = %q, want %q", pt.Prefix, k.Prefix)
	}
	wantKind(t, err, domainerr.KindAlreadyExists)
	_, err = h.store.GetKey(t.Context(), clash.ID)
	wantNotFound(t, err, "API key", clash.ID)
	got, owner, err := h.store.LookupKey(t.Context(), k.Prefix)
	if err != nil || owner.ID != p.ID {
		t.Fatalf("Store.LookupKey: principal %s, %v; want %s", owner.ID, err, p.ID)
	}
	wantStoredKey(t, "Store.LookupKey", got, k)
}

func testStoreKeyOfUnknownPrincipal(t *testing.T, h *harness) {
	const id = "prn_00000000000000000000000000"
	h.storedPrincipal(t)
	k := newStoredKey(id)
	wantNotFound(t, h.store.CreateKey(t.Context(), k), "principal", id)
	_, err := h.store.GetKey(t.Context(), k.ID)
	wantNotFound(t, err, "API key", k.ID)
	_, err = h.store.ListKeys(t.Context(), access.KeyQuery{PrincipalID: id, Limit: 10})
	wantNotFound(t, err, "principal", id)
}

func testStoreUnknownKey(t *testing.T, h *harness) {
	const id = "key_00000000000000000000000000"
	ctx := t.Context()
	p := h.storedPrincipal(t)
	h.storedKey(t, p.ID)
	_, err := h.store.GetKey(ctx, id)
	wantNotFound(t, err, "API key", id)
	called := false
	_, err = h.store.UpdateKey(ctx, id, func(*access.APIKey) error { called = true; return nil })
	wantNotFound(t, err, "API key", id)
	_, _, err = h.store.RotateKey(ctx, id, func(*access.APIKey) (access.APIKey, error) {
		called = true
		return newStoredKey(p.ID), nil
	})
	wantNotFound(t, err, "API key", id)
	if called {
		t.Fatal("a change was called for a key that does not exist")
	}
	_, _, err = h.store.LookupKey(ctx, "00000000")
	wantKind(t, err, domainerr.KindNotFound)
}

func testStoreRolesSorted(t *testing.T, h *harness) {
	ctx := t.Context()
	p := h.storedPrincipal(t, "support", "admin", "support", "payroll.operator")
	want := []string{"admin", "payroll.operator", "support"}
	got, err := h.store.GetPrincipal(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Roles, want) {
		t.Fatalf("roles %q, want %q", got.Roles, want)
	}
	noRoles := h.storedPrincipal(t)
	for _, id := range []string{noRoles.ID} {
		got, err := h.store.GetPrincipal(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Roles != nil {
			t.Fatalf("a principal without roles has Roles %#v, want nil", got.Roles)
		}
	}
	k := h.storedKey(t, p.ID)
	_, owner, err := h.store.LookupKey(ctx, k.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(owner.Roles, want) || !owner.CreatedAt.Equal(p.CreatedAt) || owner.Name != p.Name {
		t.Fatalf("Store.LookupKey's principal %+v, want %+v with roles %q", owner, p, want)
	}
	list, err := h.store.ListPrincipals(ctx, access.PrincipalQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if l.ID == p.ID && !slices.Equal(l.Roles, want) {
			t.Fatalf("Store.ListPrincipals: roles %q, want %q", l.Roles, want)
		}
	}
}

func testStoreFailedChange(t *testing.T, h *harness) {
	ctx := t.Context()
	p := h.storedPrincipal(t)
	k := h.storedKey(t, p.ID)
	refusal := errors.New("refused by the test")
	_, err := h.store.UpdateKey(ctx, k.ID, func(k *access.APIKey) error {
		k.RevokedAt = at.Add(time.Second)
		return refusal
	})
	if err != refusal {
		t.Fatalf("UpdateKey returned %v, want change's own error", err)
	}
	_, _, err = h.store.RotateKey(ctx, k.ID, func(k *access.APIKey) (access.APIKey, error) {
		k.ExpiresAt = at.Add(time.Second)
		return newStoredKey(p.ID), refusal
	})
	if err != refusal {
		t.Fatalf("RotateKey returned %v, want rotate's own error", err)
	}
	h.wantKeyStored(t, "the key after refused changes", k)
	if keys, err := h.store.ListKeys(ctx, access.KeyQuery{PrincipalID: p.ID, Limit: 10}); err != nil || len(keys) != 1 {
		t.Fatalf("Store.ListKeys after a refused rotation: %d keys, %v; want 1", len(keys), err)
	}
}

func testStoreRotationBothOrNeither(t *testing.T, h *harness) {
	ctx := t.Context()
	p := h.storedPrincipal(t)
	k, other := h.storedKey(t, p.ID), h.storedKey(t, p.ID)
	successor := newStoredKey(p.ID)
	successor.Prefix = other.Prefix // clashes
	_, _, err := h.store.RotateKey(ctx, k.ID, func(k *access.APIKey) (access.APIKey, error) {
		k.ExpiresAt = at.Add(time.Hour)
		return successor, nil
	})
	errorAs[*access.PrefixTakenError](t, err)
	h.wantKeyStored(t, "the key whose successor was refused", k)
	_, err = h.store.GetKey(ctx, successor.ID)
	wantNotFound(t, err, "API key", successor.ID)

	successor = newStoredKey(p.ID)
	old, got, err := h.store.RotateKey(ctx, k.ID, func(k *access.APIKey) (access.APIKey, error) {
		k.ExpiresAt = at.Add(time.Hour)
		return successor, nil
	})
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	want := k
	want.ExpiresAt = at.Add(time.Hour)
	wantStoredKey(t, "RotateKey's old key", old, want)
	h.wantKeyStored(t, "the rotated key", want)
	wantStoredKey(t, "RotateKey's successor", got, successor)
	h.wantKeyStored(t, "the successor", successor)
}

func testStoreOnlyTimesChange(t *testing.T, h *harness) {
	p, q := h.storedPrincipal(t), h.storedPrincipal(t)
	k := h.storedKey(t, p.ID)
	got, err := h.store.UpdateKey(t.Context(), k.ID, func(k *access.APIKey) error {
		k.Description = "changed"
		k.PrincipalID = q.ID
		k.Prefix = "ffffffff"
		k.SecretHash = make([]byte, 32)
		k.CreatedAt = at.Add(-time.Hour)
		k.ExpiresAt = at.Add(time.Hour)
		k.RevokedAt = at.Add(time.Minute)
		k.LastUsedAt = at.Add(time.Second)
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	want := k
	want.ExpiresAt, want.RevokedAt, want.LastUsedAt = at.Add(time.Hour), at.Add(time.Minute), at.Add(time.Second)
	wantStoredKey(t, "UpdateKey's answer", got, want)
	h.wantKeyStored(t, "the updated key", want)

	// And back: zero times are stored as zero.
	got, err = h.store.UpdateKey(t.Context(), k.ID, func(k *access.APIKey) error {
		k.ExpiresAt, k.RevokedAt, k.LastUsedAt = time.Time{}, time.Time{}, time.Time{}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	wantStoredKey(t, "UpdateKey's answer", got, k)
	h.wantKeyStored(t, "the key with its times cleared", k)
}

func testStoreRecordKeyUse(t *testing.T, h *harness) {
	ctx := t.Context()
	p := h.storedPrincipal(t)
	k := h.storedKey(t, p.ID)
	if err := h.store.RecordKeyUse(ctx, "key_00000000000000000000000000", at, at); err != nil {
		t.Fatalf("RecordKeyUse of a key that does not exist: %v", err)
	}
	t1 := at.Add(time.Minute)
	steps := []struct {
		at, notBefore time.Time
		want          time.Time
	}{
		{t1, at, t1},                  // never used: recorded
		{t1.Add(time.Second), t1, t1}, // used at notBefore: not recorded
		{t1.Add(2 * time.Second), t1.Add(-time.Second), t1},                  // used after notBefore: not recorded
		{t1.Add(time.Minute), t1.Add(time.Microsecond), t1.Add(time.Minute)}, // used before notBefore: recorded
	}
	for i, s := range steps {
		if err := h.store.RecordKeyUse(ctx, k.ID, s.at, s.notBefore); err != nil {
			t.Fatalf("step %d: RecordKeyUse: %v", i, err)
		}
		k.LastUsedAt = s.want
		h.wantKeyStored(t, "after RecordKeyUse", k)
	}
}

func testStoreResultsNotShared(t *testing.T, h *harness) {
	ctx := t.Context()
	p := h.storedPrincipal(t, "admin", "support")
	k := h.storedKey(t, p.ID)

	got, err := h.store.GetPrincipal(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Roles[0] = "tampered"
	key, err := h.store.GetKey(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	key.SecretHash[0] ^= 0xff
	found, owner, err := h.store.LookupKey(ctx, k.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	found.SecretHash[1] ^= 0xff
	owner.Roles[1] = "tampered"
	list, err := h.store.ListKeys(ctx, access.KeyQuery{PrincipalID: p.ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	list[0].SecretHash[2] ^= 0xff
	principals, err := h.store.ListPrincipals(ctx, access.PrincipalQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	principals[0].Roles[0] = "tampered"

	// What the store was given is not shared either.
	p.Roles[0] = "tampered"
	given := k.SecretHash
	k.SecretHash = slices.Clone(given)
	given[3] ^= 0xff

	h.wantKeyStored(t, "the key after its copies were changed", k)
	again, err := h.store.GetPrincipal(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Roles, []string{"admin", "support"}) {
		t.Fatalf("roles %q after changing copies, want [admin support]", again.Roles)
	}
}
