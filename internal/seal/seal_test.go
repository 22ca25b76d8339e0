package seal_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/seal"
	"plinth.dev/plinth/internal/testclock"
	"plinth.dev/plinth/internal/vaulttest"
)

func TestMain(m *testing.M) { os.Exit(vaulttest.Main(m)) }

func localKeyring(t testing.TB) keyring.Keyring {
	t.Helper()
	kr, err := keyring.NewLocal("")
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func vaultKeyring(t testing.TB) keyring.Keyring {
	t.Helper()
	s := vaulttest.Start(t)
	return keyring.NewVault(s.Client(t), s.EnableTransit(t, ""), s.EnableKV(t, ""))
}

var keyrings = []struct {
	name string
	new  func(testing.TB) keyring.Keyring
}{
	{"local", localKeyring},
	{"vault", vaultKeyring},
}

var (
	email   = []byte("ada@example.com")
	here    = seal.Place{Table: "customers", Column: "email", Row: "cus_1"}
	taxID   = []byte("123-45-6789")
	taxHere = seal.Place{Table: "customers", Column: "tax_id", Row: "cus_1"}
)

func TestSealOpen(t *testing.T) {
	for _, k := range keyrings {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			kr := k.new(t)
			s := seal.New(kr)
			ctx := t.Context()

			sealed, err := s.Seal(ctx, keyring.PII, here, email)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if bytes.Contains(sealed, email) {
				t.Error("the sealed value contains the value")
			}
			got, err := s.Open(ctx, keyring.PII, here, sealed)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, email) {
				t.Errorf("Open = %q, want %q", got, email)
			}
			// Another Sealer on the same keyring (another process) opens it.
			got, err = seal.New(kr).Open(ctx, keyring.PII, here, sealed)
			if err != nil || !bytes.Equal(got, email) {
				t.Errorf("Open by another Sealer: %q, %v", got, err)
			}

			// Sealing twice gives two different sealed values.
			again, err := s.Seal(ctx, keyring.PII, here, email)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(again, sealed) {
				t.Error("sealing a value twice gave the same bytes")
			}
			// The empty value seals too.
			empty, err := s.Seal(ctx, keyring.PHI, here, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.Open(ctx, keyring.PHI, here, empty); err != nil || len(got) != 0 {
				t.Errorf("Open of a sealed empty value: %q, %v", got, err)
			}
		})
	}
}

func TestOpenElsewhereFails(t *testing.T) {
	for _, k := range keyrings {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			s := seal.New(k.new(t))
			ctx := t.Context()
			sealed, err := s.Seal(ctx, keyring.PII, here, email)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name  string
				class keyring.Class
				place seal.Place
			}{
				{"another row", keyring.PII, seal.Place{Table: "customers", Column: "email", Row: "cus_2"}},
				{"another column", keyring.PII, seal.Place{Table: "customers", Column: "name", Row: "cus_1"}},
				{"another table", keyring.PII, seal.Place{Table: "employees", Column: "email", Row: "cus_1"}},
				{"another class", keyring.PCI, here},
				{"fields shifted", keyring.PII, seal.Place{Table: "customerse", Column: "mail", Row: "cus_1"}},
			} {
				got, err := s.Open(ctx, tc.class, tc.place, sealed)
				if !errors.Is(err, seal.ErrCannotOpen) {
					t.Errorf("%s: Open = %q, %v; want ErrCannotOpen", tc.name, got, err)
				}
			}
		})
	}
}

func TestPlaceFieldsAreLengthPrefixed(t *testing.T) {
	t.Parallel()
	s := seal.New(localKeyring(t))
	ctx := t.Context()
	sealed, err := s.Seal(ctx, keyring.PII, seal.Place{Table: "a", Column: "bc", Row: "r"}, email)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Open(ctx, keyring.PII, seal.Place{Table: "ab", Column: "c", Row: "r"}, sealed)
	if !errors.Is(err, seal.ErrCannotOpen) {
		t.Errorf("a value sealed at (a, bc) opens at (ab, c): %v", err)
	}
}

func TestPlaceMustBeComplete(t *testing.T) {
	t.Parallel()
	s := seal.New(localKeyring(t))
	for _, p := range []seal.Place{
		{Column: "email", Row: "cus_1"},
		{Table: "customers", Row: "cus_1"},
		{Table: "customers", Column: "email"},
	} {
		if _, err := s.Seal(t.Context(), keyring.PII, p, email); err == nil {
			t.Errorf("Seal at %+v succeeded", p)
		}
	}
	if _, err := s.Seal(t.Context(), "secret", here, email); err == nil {
		t.Error("Seal as class \"secret\" succeeded")
	}
}

func TestTamperedFails(t *testing.T) {
	for _, k := range keyrings {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			s := seal.New(k.new(t))
			ctx := t.Context()
			sealed, err := s.Seal(ctx, keyring.PII, here, email)
			if err != nil {
				t.Fatal(err)
			}
			// Every byte of it, each flipped in turn (with Vault, the
			// flips in the wrapped key are each a decrypt call).
			for i := range sealed {
				bad := bytes.Clone(sealed)
				bad[i] ^= 0x01
				got, err := s.Open(ctx, keyring.PII, here, bad)
				if !errors.Is(err, seal.ErrCannotOpen) {
					t.Fatalf("byte %d flipped: Open = %q, %v; want ErrCannotOpen", i, got, err)
				}
			}
			for _, bad := range [][]byte{nil, {}, {0x02}, sealed[:1], sealed[:len(sealed)-1], append(bytes.Clone(sealed), 0)} {
				if _, err := s.Open(ctx, keyring.PII, here, bad); !errors.Is(err, seal.ErrCannotOpen) {
					t.Errorf("Open of %d damaged bytes: %v; want ErrCannotOpen", len(bad), err)
				}
			}
		})
	}
}

func TestErrorsDoNotHoldTheValue(t *testing.T) {
	t.Parallel()
	s := seal.New(localKeyring(t))
	ctx := t.Context()
	sealed, err := s.Seal(ctx, keyring.PII, here, email)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Open(ctx, keyring.PII, seal.Place{Table: "customers", Column: "email", Row: "cus_2"}, sealed)
	if err == nil {
		t.Fatal("opened elsewhere")
	}
	if strings.Contains(err.Error(), string(email)) || strings.Contains(err.Error(), fmt.Sprintf("%x", email)) {
		t.Errorf("error holds the value: %v", err)
	}
}

// wrappedKeyOf returns the wrapped data key in a sealed value, as the
// package doc draws the format.
func wrappedKeyOf(t *testing.T, sealed []byte) string {
	t.Helper()
	if len(sealed) == 0 || sealed[0] != 0x01 {
		t.Fatalf("sealed value does not start with format 0x01")
	}
	n, size := binary.Uvarint(sealed[1:])
	if size <= 0 || int(n) > len(sealed)-1-size {
		t.Fatalf("sealed value has a bad wrapped key length")
	}
	return string(sealed[1+size : 1+size+int(n)])
}

func TestRotateAndRewrap(t *testing.T) {
	prefix := map[string]string{"local": "local:v", "vault": "vault:v"}
	for _, k := range keyrings {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			kr := k.new(t)
			s := seal.New(kr)
			ctx := t.Context()

			const n = 20
			places := make([]seal.Place, n)
			sealed := make([][]byte, n)
			for i := range n {
				places[i] = seal.Place{Table: "customers", Column: "tax_id", Row: fmt.Sprintf("cus_%d", i)}
				var err error
				if sealed[i], err = s.Seal(ctx, keyring.PII, places[i], taxID); err != nil {
					t.Fatal(err)
				}
			}
			if w := wrappedKeyOf(t, sealed[0]); !strings.HasPrefix(w, prefix[k.name]+"1:") {
				t.Fatalf("wrapped key %.10q..., want version 1", w)
			}

			if err := kr.RotateClassKey(ctx, keyring.PII); err != nil {
				t.Fatal(err)
			}
			// Half rewrapped one by one, half at once.
			rewrapped := make([][]byte, n)
			for i := range n / 2 {
				var err error
				if rewrapped[i], err = s.Rewrap(ctx, keyring.PII, sealed[i]); err != nil {
					t.Fatalf("Rewrap: %v", err)
				}
			}
			rest, err := s.RewrapAll(ctx, keyring.PII, sealed[n/2:])
			if err != nil {
				t.Fatalf("RewrapAll: %v", err)
			}
			copy(rewrapped[n/2:], rest)

			// Every value reads, from a fresh Sealer (no cache), on version 2.
			fresh := seal.New(kr)
			for i := range n {
				if w := wrappedKeyOf(t, rewrapped[i]); !strings.HasPrefix(w, prefix[k.name]+"2:") {
					t.Errorf("value %d: rewrapped key %.10q..., want version 2", i, w)
				}
				got, err := fresh.Open(ctx, keyring.PII, places[i], rewrapped[i])
				if err != nil || !bytes.Equal(got, taxID) {
					t.Errorf("value %d after rewrap: %q, %v", i, got, err)
				}
				// Still bound to its place.
				other := places[(i+1)%n]
				if _, err := fresh.Open(ctx, keyring.PII, other, rewrapped[i]); !errors.Is(err, seal.ErrCannotOpen) {
					t.Errorf("value %d after rewrap opens in row %s: %v", i, other.Row, err)
				}
			}
			// RewrapAll kept the values that shared a data key sharing it.
			if wrappedKeyOf(t, rewrapped[n/2]) != wrappedKeyOf(t, rewrapped[n-1]) {
				t.Error("RewrapAll gave values that shared a data key different wrappings")
			}
			// The old sealed values still read too.
			if got, err := fresh.Open(ctx, keyring.PII, places[0], sealed[0]); err != nil || !bytes.Equal(got, taxID) {
				t.Errorf("a value not rewrapped, after rotation: %v", err)
			}
			// New values use version 2 once the current data key is
			// replaced (here: by a new Sealer).
			v2, err := seal.New(kr).Seal(ctx, keyring.PII, here, email)
			if err != nil {
				t.Fatal(err)
			}
			if w := wrappedKeyOf(t, v2); !strings.HasPrefix(w, prefix[k.name]+"2:") {
				t.Errorf("a value sealed after rotation has key %.10q..., want version 2", w)
			}
			// Rewrap refuses damage, and another class.
			if _, err := s.Rewrap(ctx, keyring.PCI, sealed[0]); !errors.Is(err, seal.ErrCannotOpen) {
				t.Errorf("Rewrap as another class: %v; want ErrCannotOpen", err)
			}
			if _, err := s.Rewrap(ctx, keyring.PII, sealed[0][:5]); !errors.Is(err, seal.ErrCannotOpen) {
				t.Errorf("Rewrap of a truncated value: %v; want ErrCannotOpen", err)
			}
		})
	}
}

// countingKeyring counts the calls that reach a keyring, and can fail them.
type countingKeyring struct {
	keyring.Keyring
	newKeys, unwraps, rewraps, indexKeys atomic.Int64
	unavailable                          atomic.Bool
	unwrapDelay                          time.Duration
}

var errDown = fmt.Errorf("test keyring down: %w", keyring.ErrUnavailable)

func (c *countingKeyring) NewDataKey(ctx context.Context, class keyring.Class) ([]byte, []byte, error) {
	c.newKeys.Add(1)
	if c.unavailable.Load() {
		return nil, nil, errDown
	}
	return c.Keyring.NewDataKey(ctx, class)
}

func (c *countingKeyring) UnwrapDataKey(ctx context.Context, class keyring.Class, wrapped []byte) ([]byte, error) {
	c.unwraps.Add(1)
	time.Sleep(c.unwrapDelay)
	if c.unavailable.Load() {
		return nil, errDown
	}
	return c.Keyring.UnwrapDataKey(ctx, class, wrapped)
}

func (c *countingKeyring) Rewrap(ctx context.Context, class keyring.Class, wrapped []byte) ([]byte, error) {
	c.rewraps.Add(1)
	return c.Keyring.Rewrap(ctx, class, wrapped)
}

func (c *countingKeyring) IndexKey(ctx context.Context, purpose string) ([]byte, error) {
	c.indexKeys.Add(1)
	if c.unavailable.Load() {
		return nil, errDown
	}
	return c.Keyring.IndexKey(ctx, purpose)
}

func counting(t testing.TB) *countingKeyring {
	return &countingKeyring{Keyring: localKeyring(t)}
}

// sealMany seals n values of class, one per row, and returns them with
// their places.
func sealMany(t *testing.T, s *seal.Sealer, class keyring.Class, n int) ([]seal.Place, [][]byte) {
	t.Helper()
	places := make([]seal.Place, n)
	sealed := make([][]byte, n)
	for i := range n {
		places[i] = seal.Place{Table: "customers", Column: "email", Row: fmt.Sprintf("cus_%d", i)}
		var err error
		if sealed[i], err = s.Seal(t.Context(), class, places[i], fmt.Appendf(nil, "user%d@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	return places, sealed
}

func openAll(t *testing.T, s *seal.Sealer, class keyring.Class, places []seal.Place, sealed [][]byte) {
	t.Helper()
	for i := range sealed {
		got, err := s.Open(t.Context(), class, places[i], sealed[i])
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		if want := fmt.Sprintf("user%d@example.com", i); string(got) != want {
			t.Fatalf("Open %d = %q, want %q", i, got, want)
		}
	}
}

func TestOneKeyringCallForManySealsAndOpens(t *testing.T) {
	t.Parallel()
	kr := counting(t)
	s := seal.New(kr)

	places, sealed := sealMany(t, s, keyring.PII, 1000)
	if got := kr.newKeys.Load(); got != 1 {
		t.Errorf("1000 Seals made %d NewDataKey calls, want 1", got)
	}
	// The Sealer that sealed them opens them without asking.
	openAll(t, s, keyring.PII, places, sealed)
	if got := kr.unwraps.Load(); got != 0 {
		t.Errorf("opening values the Sealer sealed itself made %d unwrap calls, want 0", got)
	}
	// Another Sealer (another process) unwraps once.
	other := seal.New(kr)
	openAll(t, other, keyring.PII, places, sealed)
	if got := kr.unwraps.Load(); got != 1 {
		t.Errorf("another Sealer opening 1000 values under one data key made %d unwrap calls, want 1", got)
	}
	// Each class has its own data key.
	sealMany(t, s, keyring.PCI, 10)
	if got := kr.newKeys.Load(); got != 2 {
		t.Errorf("after sealing a second class: %d NewDataKey calls, want 2", got)
	}
}

func TestConcurrentOpensShareOneUnwrap(t *testing.T) {
	t.Parallel()
	kr := counting(t)
	places, sealed := sealMany(t, seal.New(kr), keyring.PII, 50)
	kr.unwrapDelay = 20 * time.Millisecond // so that the Opens overlap

	s := seal.New(kr)
	var wg sync.WaitGroup
	for i := range sealed {
		wg.Go(func() {
			if _, err := s.Open(t.Context(), keyring.PII, places[i], sealed[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := kr.unwraps.Load(); got != 1 {
		t.Errorf("50 concurrent Opens of values under one data key made %d unwrap calls, want 1", got)
	}
}

func TestConcurrentSealsShareOneDataKey(t *testing.T) {
	t.Parallel()
	kr := counting(t)
	s := seal.New(kr)
	var wg sync.WaitGroup
	results := make([][]byte, 100)
	for i := range results {
		wg.Go(func() {
			var err error
			results[i], err = s.Seal(t.Context(), keyring.PHI, seal.Place{Table: "t", Column: "c", Row: fmt.Sprint(i)}, []byte("x"))
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := kr.newKeys.Load(); got != 1 {
		t.Errorf("100 concurrent Seals made %d NewDataKey calls, want 1", got)
	}
	for i, r := range results {
		if got, err := s.Open(t.Context(), keyring.PHI, seal.Place{Table: "t", Column: "c", Row: fmt.Sprint(i)}, r); err != nil || string(got) != "x" {
			t.Errorf("value %d: %q, %v", i, got, err)
		}
	}
}

func TestDataKeyMaxUses(t *testing.T) {
	t.Parallel()
	kr := counting(t)
	s := seal.New(kr, seal.WithDataKeyMaxUses(3))
	places, sealed := sealMany(t, s, keyring.PII, 7)
	if got := kr.newKeys.Load(); got != 3 { // 3 + 3 + 1
		t.Errorf("7 Seals with at most 3 uses per data key made %d NewDataKey calls, want 3", got)
	}
	if wrappedKeyOf(t, sealed[0]) == wrappedKeyOf(t, sealed[3]) {
		t.Error("the 4th value shares the data key of the 1st")
	}

	// Opening: a cached key serves 3 opens, then leaves the cache.
	opener := seal.New(kr, seal.WithDataKeyMaxUses(3))
	for range 7 {
		if _, err := opener.Open(t.Context(), keyring.PII, places[0], sealed[0]); err != nil {
			t.Fatal(err)
		}
	}
	if got := kr.unwraps.Load(); got != 3 { // opens 1-3, 4-6, 7
		t.Errorf("7 Opens with at most 3 uses per cached key made %d unwrap calls, want 3", got)
	}
}

func TestDataKeyMaxAge(t *testing.T) {
	t.Parallel()
	kr := counting(t)
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := seal.New(kr, seal.WithDataKeyMaxAge(time.Minute), seal.WithClock(clock.Now))

	p1, v1 := sealMany(t, s, keyring.PII, 2)
	clock.Advance(59 * time.Second)
	sealMany(t, s, keyring.PII, 2)
	if got := kr.newKeys.Load(); got != 1 {
		t.Fatalf("Seals within the max age made %d NewDataKey calls, want 1", got)
	}
	clock.Advance(time.Second)
	sealMany(t, s, keyring.PII, 2)
	if got := kr.newKeys.Load(); got != 2 {
		t.Errorf("a Seal at the max age made %d NewDataKey calls in all, want 2", got)
	}

	// Opening: the cached key expires a max age after it was unwrapped.
	opener := seal.New(kr, seal.WithDataKeyMaxAge(time.Minute), seal.WithClock(clock.Now))
	openAll(t, opener, keyring.PII, p1, v1)
	clock.Advance(30 * time.Second)
	openAll(t, opener, keyring.PII, p1, v1)
	if got := kr.unwraps.Load(); got != 1 {
		t.Fatalf("Opens within the max age made %d unwrap calls, want 1", got)
	}
	clock.Advance(30 * time.Second)
	openAll(t, opener, keyring.PII, p1, v1)
	if got := kr.unwraps.Load(); got != 2 {
		t.Errorf("an Open at the max age made %d unwrap calls in all, want 2", got)
	}
}

func TestMaxCachedKeys(t *testing.T) {
	t.Parallel()
	kr := counting(t)
	// Three values under three data keys.
	writer := seal.New(kr, seal.WithDataKeyMaxUses(1))
	places, sealed := sealMany(t, writer, keyring.PII, 3)

	s := seal.New(kr, seal.WithMaxCachedKeys(2))
	open := func(i int) {
		t.Helper()
		if _, err := s.Open(t.Context(), keyring.PII, places[i], sealed[i]); err != nil {
			t.Fatal(err)
		}
	}
	open(0)
	open(1)
	open(2) // the cache is full: key 0, the oldest, leaves
	if got := kr.unwraps.Load(); got != 3 {
		t.Fatalf("3 keys: %d unwraps, want 3", got)
	}
	open(2)
	open(1)
	if got := kr.unwraps.Load(); got != 3 {
		t.Errorf("keys 1 and 2 should be cached: %d unwraps, want 3", got)
	}
	open(0)
	if got := kr.unwraps.Load(); got != 4 {
		t.Errorf("key 0 should have left the cache: %d unwraps, want 4", got)
	}
}

func TestKeyringUnavailable(t *testing.T) {
	t.Parallel()
	kr := counting(t)
	writer := seal.New(kr)
	places, sealed := sealMany(t, writer, keyring.PII, 1)

	kr.unavailable.Store(true)
	s := seal.New(kr)
	_, err := s.Seal(t.Context(), keyring.PII, here, email)
	if !errors.Is(err, keyring.ErrUnavailable) || errors.Is(err, seal.ErrCannotOpen) {
		t.Errorf("Seal with the keyring down: %v; want ErrUnavailable", err)
	}
	_, err = s.Open(t.Context(), keyring.PII, places[0], sealed[0])
	if !errors.Is(err, keyring.ErrUnavailable) || errors.Is(err, seal.ErrCannotOpen) {
		t.Errorf("Open with the keyring down: %v; want ErrUnavailable", err)
	}
	_, err = s.BlindIndex(t.Context(), "customers.email", email)
	if !errors.Is(err, keyring.ErrUnavailable) {
		t.Errorf("BlindIndex with the keyring down: %v; want ErrUnavailable", err)
	}
	// What is cached keeps working through an outage.
	if _, err := writer.Seal(t.Context(), keyring.PII, here, email); err != nil {
		t.Errorf("Seal with a current data key, keyring down: %v", err)
	}
	if _, err := writer.Open(t.Context(), keyring.PII, places[0], sealed[0]); err != nil {
		t.Errorf("Open with a cached data key, keyring down: %v", err)
	}
	// And it all works again when the keyring is back.
	kr.unavailable.Store(false)
	if _, err := s.Seal(t.Context(), keyring.PII, here, email); err != nil {
		t.Errorf("Seal with the keyring back: %v", err)
	}
	if _, err := s.Open(t.Context(), keyring.PII, places[0], sealed[0]); err != nil {
		t.Errorf("Open with the keyring back: %v", err)
	}
}

func TestContextDone(t *testing.T) {
	t.Parallel()
	s := seal.New(localKeyring(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Seal(ctx, keyring.PII, here, email); !errors.Is(err, context.Canceled) {
		t.Errorf("Seal with a canceled context: %v", err)
	}
}

func TestBlindIndex(t *testing.T) {
	for _, k := range keyrings {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			s := seal.New(k.new(t))
			ctx := t.Context()
			index := func(purpose, value string) []byte {
				t.Helper()
				b, err := s.BlindIndex(ctx, purpose, []byte(value))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			a := index("customers.email", "ada@example.com")
			if len(a) != 32 {
				t.Errorf("blind index is %d bytes, want 32", len(a))
			}
			if !bytes.Equal(a, index("customers.email", "ada@example.com")) {
				t.Error("the blind index of a value changed")
			}
			if bytes.Equal(a, index("customers.email", "bob@example.com")) {
				t.Error("two values have the same blind index")
			}
			if bytes.Equal(a, index("employees.email", "ada@example.com")) {
				t.Error("two purposes give a value the same blind index")
			}
			if bytes.Contains(a, []byte("ada")) {
				t.Error("the blind index holds the value")
			}
			if _, err := s.BlindIndex(ctx, "Bad Purpose", nil); err == nil {
				t.Error("BlindIndex of an invalid purpose succeeded")
			}
		})
	}
}

func TestBlindIndexCachesTheKey(t *testing.T) {
	t.Parallel()
	kr := counting(t)
	s := seal.New(kr)
	for i := range 100 {
		if _, err := s.BlindIndex(t.Context(), "customers.email", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := kr.indexKeys.Load(); got != 1 {
		t.Errorf("100 blind indexes made %d IndexKey calls, want 1", got)
	}
}

func TestBlindIndexStableAcrossVaultKeyrings(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	transit, kv := srv.EnableTransit(t, ""), srv.EnableKV(t, "")
	first := seal.New(keyring.NewVault(srv.Client(t), transit, kv))
	second := seal.New(keyring.NewVault(srv.Client(t), transit, kv))
	a, err := first.BlindIndex(t.Context(), "customers.email", email)
	if err != nil {
		t.Fatal(err)
	}
	b, err := second.BlindIndex(t.Context(), "customers.email", email)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two Vault keyrings on one KV mount give a value different blind indexes")
	}
}

func TestBlindIndexStableAcrossLocalKeyFileReload(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/keys.json"
	index := func() []byte {
		kr, err := keyring.NewLocal(path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := seal.New(kr).BlindIndex(t.Context(), "customers.email", email)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(index(), index()) {
		t.Error("a blind index changed across a reload of the key file")
	}
}

// TestVaultOutage stops Vault under a Sealer: calls that need Vault fail
// with ErrUnavailable, cleanly, and work again once it is back. A dev
// server comes back empty, so values sealed before the outage under keys
// that were not cached are lost with it (they would not be with a real,
// persistent Vault).
func TestVaultOutage(t *testing.T) {
	t.Parallel()
	srv := vaulttest.NewServer(t)
	transit := srv.EnableTransit(t, "")
	kr := keyring.NewVault(srv.Client(t), transit, "secret")
	s := seal.New(kr)
	ctx := t.Context()

	cached, err := s.Seal(ctx, keyring.PII, here, email)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	// The current data key of PII is cached: sealing and opening PII
	// needs no Vault.
	if _, err := s.Seal(ctx, keyring.PII, here, email); err != nil {
		t.Errorf("Seal with a current data key, Vault down: %v", err)
	}
	if _, err := s.Open(ctx, keyring.PII, here, cached); err != nil {
		t.Errorf("Open with a cached data key, Vault down: %v", err)
	}
	// PCI has no data key yet; a fresh Sealer has nothing cached.
	_, err = s.Seal(ctx, keyring.PCI, taxHere, taxID)
	checkUnavailable(t, "Seal", err)
	_, err = seal.New(kr).Open(ctx, keyring.PII, here, cached)
	checkUnavailable(t, "Open", err)
	_, err = s.BlindIndex(ctx, "customers.tax_id", taxID)
	checkUnavailable(t, "BlindIndex", err)

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	srv.EnableTransit(t, transit) // the restarted dev server is empty
	sealed, err := s.Seal(ctx, keyring.PCI, taxHere, taxID)
	if err != nil {
		t.Fatalf("Seal after Vault came back: %v", err)
	}
	if got, err := seal.New(kr).Open(ctx, keyring.PCI, taxHere, sealed); err != nil || !bytes.Equal(got, taxID) {
		t.Errorf("Open after Vault came back: %v", err)
	}
	if _, err := s.BlindIndex(ctx, "customers.tax_id", taxID); err != nil {
		t.Errorf("BlindIndex after Vault came back: %v", err)
	}
}

func checkUnavailable(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, keyring.ErrUnavailable) || errors.Is(err, seal.ErrCannotOpen) {
		t.Errorf("%s with Vault down: %v; want ErrUnavailable", op, err)
		return
	}
	for _, secret := range [][]byte{email, taxID} {
		if strings.Contains(err.Error(), string(secret)) {
			t.Errorf("%s: error holds a value: %v", op, err)
		}
	}
	t.Logf("%s with Vault down: %v", op, err)
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	kr := counting(t)
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := seal.New(kr, seal.WithDataKeyMaxUses(7), seal.WithMaxCachedKeys(3), seal.WithClock(clock.Now), seal.WithDataKeyMaxAge(time.Second))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				p := seal.Place{Table: "t", Column: "c", Row: fmt.Sprintf("%d-%d", g, i)}
				class := keyring.Classes[i%len(keyring.Classes)]
				value := fmt.Appendf(nil, "v%d-%d", g, i)
				sealed, err := s.Seal(t.Context(), class, p, value)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := s.Open(t.Context(), class, p, sealed)
				if err != nil || !bytes.Equal(got, value) {
					t.Errorf("%s: %q, %v", p, got, err)
					return
				}
				if i%50 == 0 {
					clock.Advance(300 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkSeal compares sealing with the local keyring and with Vault in
// one run: with the data key cached, both should cost the same.
func BenchmarkSeal(b *testing.B) {
	for _, k := range keyrings {
		b.Run(k.name, func(b *testing.B) {
			s := seal.New(k.new(b))
			ctx := b.Context()
			value := []byte("ada.lovelace@example.com")
			p := seal.Place{Table: "customers", Column: "email", Row: "cus_01JD5Q0000000000000000000"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Seal(ctx, keyring.PII, p, value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen is BenchmarkSeal's counterpart for reading back.
func BenchmarkOpen(b *testing.B) {
	for _, k := range keyrings {
		b.Run(k.name, func(b *testing.B) {
			s := seal.New(k.new(b))
			ctx := b.Context()
			p := seal.Place{Table: "customers", Column: "email", Row: "cus_01JD5Q0000000000000000000"}
			sealed, err := s.Seal(ctx, keyring.PII, p, []byte("ada.lovelace@example.com"))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Open(ctx, keyring.PII, p, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
