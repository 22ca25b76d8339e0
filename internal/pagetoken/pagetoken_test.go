package pagetoken_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/pagetoken"
	"plinth.dev/plinth/internal/pagetoken/pagetokentest"
	"plinth.dev/plinth/internal/seal"
)

var ctx = context.Background()

// enc is Encode under a Codec whose key is at hand, which cannot fail.
func enc(c *pagetoken.Codec, filter, key string) string {
	tok, err := c.Encode(ctx, filter, key)
	if err != nil {
		panic(err)
	}
	return tok
}

func codec(t testing.TB, key []byte) *pagetoken.Codec {
	t.Helper()
	c, err := pagetoken.NewCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantRefused fails unless err is an InvalidArgumentError on page_token
// whose description says want.
func wantRefused(t *testing.T, err error, want string) {
	t.Helper()
	var ia *domainerr.InvalidArgumentError
	if !errors.As(err, &ia) || ia.Field != "page_token" || !strings.Contains(ia.Description, want) {
		t.Fatalf("Decode = %v, want an InvalidArgumentError on page_token saying %q", err, want)
	}
}

func TestRoundTrip(t *testing.T) {
	c := codec(t, pagetokentest.Key)
	for _, key := range []string{"cus_01JD5Q0000000000000000000", "1", "9223372036854775807", strings.Repeat("k", pagetoken.MaxKeyLen), "\x00\xff"} {
		tok := enc(c, "state=pending", key)
		got, err := c.Decode(ctx, "page_token", "state=pending", tok)
		if err != nil || got != key {
			t.Fatalf("Decode(Encode(%q)) = %q, %v", key, got, err)
		}
	}
	if key, err := c.Decode(ctx, "page_token", "state=pending", ""); err != nil || key != "" {
		t.Fatalf("the empty token is the first page: %q, %v", key, err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	c := codec(t, pagetokentest.Key)
	valid := enc(c, "state=pending", "cus_1")
	raw, _ := base64.RawURLEncoding.DecodeString(valid)
	v1 := append([]byte{1}, raw[1:len(raw)-16]...) // the unsigned format of version 1
	for name, tc := range map[string]struct{ filter, token, want string }{
		"another filter":   {"state=closed", valid, "different filter"},
		"not base64":       {"state=pending", "%%%", "not a page token"},
		"too short":        {"state=pending", "AQ", "not a page token"},
		"wrong version":    {"state=pending", "Aw" + valid[2:], "not a page token"},
		"unsigned (v1)":    {"state=pending", base64.RawURLEncoding.EncodeToString(v1), "not a page token"},
		"too long":         {"state=pending", enc(c, "state=pending", strings.Repeat("x", pagetoken.MaxKeyLen+1)), "not a page token"},
		"empty key":        {"state=pending", enc(c, "state=pending", ""), "not a page token"},
		"line break":       {"state=pending", valid[:5] + "\n" + valid[5:], "not a page token"},
		"padded":           {"state=pending", padded(enc(c, "state=pending", "cus_12")), "not a page token"},
		"huge":             {"state=pending", strings.Repeat("A", 1<<20), "not a page token"},
		"std base64 chars": {"state=pending", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 40)), "not a page token"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.Decode(ctx, "page_token", tc.filter, tc.token)
			wantRefused(t, err, tc.want)
		})
	}
}

// padded returns token with the padding RawURLEncoding leaves off.
func padded(token string) string {
	raw, _ := base64.RawURLEncoding.DecodeString(token)
	if len(raw)%3 == 0 {
		panic("no padding to add")
	}
	return base64.URLEncoding.EncodeToString(raw)
}

func TestAlteredTokensAreRefused(t *testing.T) {
	c := codec(t, pagetokentest.Key)
	valid := enc(c, "state=pending", "cus_01JD5Q0000000000000000000")
	altered := pagetokentest.Altered(valid)
	if len(altered) < 100 {
		t.Fatalf("only %d altered tokens", len(altered))
	}
	for _, tok := range altered {
		if tok == valid {
			t.Fatalf("Altered returned the token itself")
		}
		if key, err := c.Decode(ctx, "page_token", "state=pending", tok); err == nil {
			t.Fatalf("altered token %q was accepted, resuming after %q", tok, key)
		} else {
			wantRefused(t, err, "not a page token")
		}
	}
}

// A forger who knows the format but not the key cannot make a token: one
// built with the right layout and a MAC under a guessed key is refused.
func TestForgedTokensAreRefused(t *testing.T) {
	c := codec(t, pagetokentest.Key)
	digest := sha256.Sum256([]byte("state=pending"))
	body := append(append([]byte{2}, digest[:8]...), "cus_0"...)
	for _, guess := range [][]byte{nil, make([]byte, 32), []byte("state=pending")} {
		m := hmac.New(sha256.New, guess)
		m.Write(body)
		tok := base64.RawURLEncoding.EncodeToString(append(body, m.Sum(nil)[:16]...))
		_, err := c.Decode(ctx, "page_token", "state=pending", tok)
		wantRefused(t, err, "not a page token")
	}
}

func TestTokenOfAnotherKeyIsRefused(t *testing.T) {
	ours, theirs := codec(t, pagetokentest.Key), codec(t, pagetokentest.OtherKey)
	tok := enc(theirs, "state=pending", "cus_1")
	_, err := ours.Decode(ctx, "page_token", "state=pending", tok)
	wantRefused(t, err, "not a page token")

	a, b := pagetoken.NewEphemeralCodec(), pagetoken.NewEphemeralCodec()
	_, err = b.Decode(ctx, "page_token", "f", enc(a, "f", "k"))
	wantRefused(t, err, "not a page token")
	if key, err := a.Decode(ctx, "page_token", "f", enc(a, "f", "k")); err != nil || key != "k" {
		t.Fatalf("an ephemeral codec refuses its own token: %q, %v", key, err)
	}
}

func TestNewCodecNeedsAFullKey(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := pagetoken.NewCodec(make([]byte, n)); err == nil {
			t.Errorf("NewCodec accepted a %d-byte key", n)
		}
	}
}

// Two gateways of one deployment share its keyring: each derives its Codec
// from the keyring, and a token from one is good on the other, before and
// after a restart. Another deployment's keyring derives another key.
func TestDeriveCodecSharedByGatewaysOfADeployment(t *testing.T) {
	file := t.TempDir() + "/keys.json"
	open := func() *pagetoken.Codec {
		t.Helper()
		kr, err := keyring.NewLocal(file)
		if err != nil {
			t.Fatal(err)
		}
		return pagetoken.DeriveCodec(seal.New(kr))
	}
	gatewayA, gatewayB := open(), open()
	tok := enc(gatewayA, "ListCustomers state=pending", "cus_7")
	if key, err := gatewayB.Decode(ctx, "page_token", "ListCustomers state=pending", tok); err != nil || key != "cus_7" {
		t.Fatalf("gateway B refused gateway A's token: %q, %v", key, err)
	}
	restarted := open()
	if key, err := restarted.Decode(ctx, "page_token", "ListCustomers state=pending", tok); err != nil || key != "cus_7" {
		t.Fatalf("a restarted gateway refused the token: %q, %v", key, err)
	}

	otherKr, err := keyring.NewLocal(t.TempDir() + "/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	other := pagetoken.DeriveCodec(seal.New(otherKr))
	_, err = other.Decode(ctx, "page_token", "ListCustomers state=pending", tok)
	wantRefused(t, err, "not a page token")
}

// flakyIndexer is a keyring that is out of reach until up is set.
type flakyIndexer struct {
	up    atomic.Bool
	calls atomic.Int32
	fail  error
}

func (f *flakyIndexer) BlindIndex(_ context.Context, purpose string, value []byte) ([]byte, error) {
	f.calls.Add(1)
	if !f.up.Load() {
		return nil, f.fail
	}
	m := hmac.New(sha256.New, []byte("index key of "+purpose))
	m.Write(value)
	return m.Sum(nil), nil
}

// A gateway starts while the keyring is out of reach: its listings are
// Unavailable (the first page's token cannot be made), never served with
// another key, and work once the keyring is back, without a restart. The
// key is derived once.
func TestDeriveCodecWhileTheKeyringIsDown(t *testing.T) {
	ix := &flakyIndexer{fail: fmt.Errorf("vault: %w", keyring.ErrUnavailable)}
	c := pagetoken.DeriveCodec(ix)
	if key, err := c.Decode(ctx, "page_token", "f", ""); err != nil || key != "" {
		t.Fatalf("the first page needs no key: %q, %v", key, err)
	}
	_, err := c.Encode(ctx, "f", "k")
	if k, _ := domainerr.KindOf(err); k != domainerr.KindUnavailable {
		t.Fatalf("Encode with the keyring down = %v, want Unavailable", err)
	}
	_, err = c.Decode(ctx, "page_token", "f", enc(codec(t, pagetokentest.Key), "f", "k"))
	if k, _ := domainerr.KindOf(err); k != domainerr.KindUnavailable {
		t.Fatalf("Decode with the keyring down = %v, want Unavailable", err)
	}

	ix.up.Store(true)
	tok := enc(c, "f", "k")
	if key, err := pagetoken.DeriveCodec(ix).Decode(ctx, "page_token", "f", tok); err != nil || key != "k" {
		t.Fatalf("once the keyring is back: %q, %v", key, err)
	}
	before := ix.calls.Load()
	for range 10 {
		enc(c, "f", "k")
	}
	if ix.calls.Load() != before {
		t.Fatalf("the key was derived again: %d keyring calls", ix.calls.Load()-before)
	}

	other := pagetoken.DeriveCodec(&flakyIndexer{fail: errors.New("permission denied")})
	if _, err := other.Encode(ctx, "f", "k"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Encode with a keyring that refuses = %v", err)
	} else if k, _ := domainerr.KindOf(err); k == domainerr.KindUnavailable {
		t.Fatalf("a keyring's refusal is not an outage: %v", err)
	}
}

func TestZeroCodecRefusesToWork(t *testing.T) {
	var c pagetoken.Codec
	if _, err := c.Encode(ctx, "f", "k"); err == nil {
		t.Fatal("a Codec without a key made a token")
	}
}

// FuzzDecode feeds Decode arbitrary tokens and filters. It must never
// panic, and it accepts a token only if it is exactly what Encode makes
// for the key it returns and the filter it was given: nothing forged or
// altered gets through. Tokens made by Encode (under the fuzz codec) are
// the seeds, so the fuzzer mutates real tokens as well as noise.
func FuzzDecode(f *testing.F) {
	c := codec(f, pagetokentest.Key)
	other := codec(f, pagetokentest.OtherKey)
	f.Add(enc(c, "ListCustomers state=pending", "cus_01JD5Q0000000000000000000"), "ListCustomers state=pending")
	f.Add(enc(c, "ListCustomers state=pending", "cus_1"), "ListCustomers state=closed")
	f.Add(enc(c, "ListAccountEntries account=lac_1", "42"), "ListAccountEntries account=lac_1")
	f.Add(enc(c, "f", strings.Repeat("k", pagetoken.MaxKeyLen)), "f")
	f.Add(enc(other, "f", "k"), "f")
	f.Add("", "f")
	f.Add("garbage", "")
	f.Add("AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "")
	f.Fuzz(func(t *testing.T, token, filter string) {
		key, err := c.Decode(ctx, "page_token", filter, token)
		if err != nil {
			var ia *domainerr.InvalidArgumentError
			if !errors.As(err, &ia) || ia.Field != "page_token" {
				t.Fatalf("Decode(%q) = %v, want an InvalidArgumentError on page_token", token, err)
			}
			if key != "" {
				t.Fatalf("Decode refused %q but returned key %q", token, key)
			}
			return
		}
		if token == "" {
			if key != "" {
				t.Fatalf("the empty token gave key %q", key)
			}
			return
		}
		if again := enc(c, filter, key); again != token {
			t.Fatalf("Decode accepted %q (key %q) but Encode makes %q for it", token, key, again)
		}
		if _, err := other.Decode(ctx, "page_token", filter, token); err == nil {
			t.Fatalf("a codec with another key accepted %q", token)
		}
	})
}
