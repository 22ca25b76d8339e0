package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/vaulttest"
)

func TestMain(m *testing.M) { os.Exit(vaulttest.Main(m)) }

// backend is a Keyring under test, with what the tests need to know of it.
type backend struct {
	name string
	new  func(t *testing.T) keyring.Keyring
	// versionPrefix is how a data key wrapped under version v of a class
	// key starts.
	versionPrefix func(v int) string
}

func localPrefix(v int) string { return "local:v" + itoa(v) + ":" }
func vaultPrefix(v int) string { return "vault:v" + itoa(v) + ":" }

func itoa(v int) string { return string(rune('0' + v)) } // versions in these tests are 1 to 9

var backends = []backend{
	{"local-memory", func(t *testing.T) keyring.Keyring {
		kr, err := keyring.NewLocal("")
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}, localPrefix},
	{"local-file", func(t *testing.T) keyring.Keyring {
		kr, err := keyring.NewLocal(filepath.Join(t.TempDir(), "keys.json"))
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}, localPrefix},
	{"vault", func(t *testing.T) keyring.Keyring {
		s := vaulttest.Start(t)
		return keyring.NewVault(s.Client(t), s.EnableTransit(t, ""), s.EnableKV(t, ""))
	}, vaultPrefix},
}

// TestKeyring holds every backend to the same behaviour.
func TestKeyring(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			kr := b.new(t)
			ctx := t.Context()

			t.Run("data key round trip", func(t *testing.T) {
				for _, class := range keyring.Classes {
					plaintext, wrapped, err := kr.NewDataKey(ctx, class)
					if err != nil {
						t.Fatalf("NewDataKey(%s): %v", class, err)
					}
					if len(plaintext) != keyring.DataKeySize {
						t.Errorf("data key is %d bytes, want %d", len(plaintext), keyring.DataKeySize)
					}
					if bytes.Contains(wrapped, plaintext) {
						t.Error("the wrapped data key contains the data key")
					}
					got, err := kr.UnwrapDataKey(ctx, class, wrapped)
					if err != nil {
						t.Fatalf("UnwrapDataKey(%s): %v", class, err)
					}
					if !bytes.Equal(got, plaintext) {
						t.Errorf("UnwrapDataKey(%s) returned another key", class)
					}
				}
			})

			t.Run("data keys differ", func(t *testing.T) {
				a, _, err := kr.NewDataKey(ctx, keyring.PII)
				if err != nil {
					t.Fatal(err)
				}
				b, _, err := kr.NewDataKey(ctx, keyring.PII)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Equal(a, b) {
					t.Error("two NewDataKey calls returned the same key")
				}
			})

			t.Run("another class does not unwrap", func(t *testing.T) {
				_, wrapped, err := kr.NewDataKey(ctx, keyring.PII)
				if err != nil {
					t.Fatal(err)
				}
				_, err = kr.UnwrapDataKey(ctx, keyring.PCI, wrapped)
				if !errors.Is(err, keyring.ErrCannotUnwrap) {
					t.Errorf("unwrap a PII data key as PCI: got %v, want ErrCannotUnwrap", err)
				}
			})

			t.Run("tampered does not unwrap", func(t *testing.T) {
				_, wrapped, err := kr.NewDataKey(ctx, keyring.PHI)
				if err != nil {
					t.Fatal(err)
				}
				for _, bad := range [][]byte{
					nil,
					[]byte("garbage"),
					wrapped[:len(wrapped)-4],
					flipLastChar(wrapped),
					// Another spelling of version 1 is a change too.
					bytes.Replace(wrapped, []byte(":v1:"), []byte(":v0:"), 1),
					bytes.Replace(wrapped, []byte(":v1:"), []byte(":v01:"), 1),
				} {
					_, err := kr.UnwrapDataKey(ctx, keyring.PHI, bad)
					if !errors.Is(err, keyring.ErrCannotUnwrap) {
						t.Errorf("unwrap %q: got %v, want ErrCannotUnwrap", bad, err)
					}
				}
			})

			t.Run("invalid class and purpose are refused", func(t *testing.T) {
				if _, _, err := kr.NewDataKey(ctx, "secret"); err == nil {
					t.Error("NewDataKey of class \"secret\" succeeded")
				}
				if err := kr.RotateClassKey(ctx, ""); err == nil {
					t.Error("RotateClassKey of class \"\" succeeded")
				}
				for _, purpose := range []string{"", "Customers.Email", "a/b", "../x", strings.Repeat("a", 129)} {
					if _, err := kr.IndexKey(ctx, purpose); err == nil {
						t.Errorf("IndexKey(%q) succeeded", purpose)
					}
				}
			})

			t.Run("index keys", func(t *testing.T) {
				email1, err := kr.IndexKey(ctx, "customers.email")
				if err != nil {
					t.Fatal(err)
				}
				email2, err := kr.IndexKey(ctx, "customers.email")
				if err != nil {
					t.Fatal(err)
				}
				phone, err := kr.IndexKey(ctx, "customers.phone")
				if err != nil {
					t.Fatal(err)
				}
				if len(email1) != keyring.IndexKeySize {
					t.Errorf("index key is %d bytes, want %d", len(email1), keyring.IndexKeySize)
				}
				if !bytes.Equal(email1, email2) {
					t.Error("IndexKey changed between two calls")
				}
				if bytes.Equal(email1, phone) {
					t.Error("two purposes share an index key")
				}
				email1[0] ^= 0xff // the caller's copy: the keyring's must not change
				if again, _ := kr.IndexKey(ctx, "customers.email"); !bytes.Equal(again, email2) {
					t.Error("changing a returned index key changed the keyring's")
				}
			})
		})
	}
}

// TestRotateAndRewrap runs on a keyring of its own per backend: it rotates.
func TestRotateAndRewrap(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			kr := b.new(t)
			ctx := t.Context()

			before, wrapped1, err := kr.NewDataKey(ctx, keyring.PCI)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(wrapped1), b.versionPrefix(1)) {
				t.Errorf("wrapped data key %.12q..., want it on version 1", wrapped1)
			}
			if err := kr.RotateClassKey(ctx, keyring.PCI); err != nil {
				t.Fatalf("RotateClassKey: %v", err)
			}

			// The old wrapping still unwraps.
			got, err := kr.UnwrapDataKey(ctx, keyring.PCI, wrapped1)
			if err != nil || !bytes.Equal(got, before) {
				t.Fatalf("unwrap a version 1 data key after rotation: %v", err)
			}
			// Rewrap moves it to version 2, same data key.
			wrapped2, err := kr.Rewrap(ctx, keyring.PCI, wrapped1)
			if err != nil {
				t.Fatalf("Rewrap: %v", err)
			}
			if !strings.HasPrefix(string(wrapped2), b.versionPrefix(2)) {
				t.Errorf("rewrapped data key %.12q..., want it on version 2", wrapped2)
			}
			got, err = kr.UnwrapDataKey(ctx, keyring.PCI, wrapped2)
			if err != nil || !bytes.Equal(got, before) {
				t.Fatalf("unwrap the rewrapped data key: %v", err)
			}
			// New data keys are on version 2; other classes did not rotate.
			_, fresh, err := kr.NewDataKey(ctx, keyring.PCI)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(fresh), b.versionPrefix(2)) {
				t.Errorf("new data key after rotation %.12q..., want version 2", fresh)
			}
			_, other, err := kr.NewDataKey(ctx, keyring.PII)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(other), b.versionPrefix(1)) {
				t.Errorf("PII data key %.12q... after rotating PCI, want version 1", other)
			}
			// Rewrap refuses what does not unwrap.
			if _, err := kr.Rewrap(ctx, keyring.PII, wrapped1); !errors.Is(err, keyring.ErrCannotUnwrap) {
				t.Errorf("Rewrap a PCI key as PII: got %v, want ErrCannotUnwrap", err)
			}
		})
	}
}

func flipLastChar(b []byte) []byte {
	out := bytes.Clone(b)
	if out[len(out)-1] == 'A' {
		out[len(out)-1] = 'B'
	} else {
		out[len(out)-1] = 'A'
	}
	return out
}

func TestLocalKeyFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sub", "keys.json")

	a, err := keyring.NewLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("NewLocal did not create the key file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %#o, want 0600", fi.Mode().Perm())
	}
	b, err := keyring.NewLocal(path)
	if err != nil {
		t.Fatal(err)
	}

	// Data keys wrapped by one open with the other: the class keys are the file's.
	plaintext, wrapped, err := a.NewDataKey(ctx, keyring.PII)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.UnwrapDataKey(ctx, keyring.PII, wrapped); err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("a data key of one keyring does not unwrap with another on the same file: %v", err)
	}

	// An index key made by a after b loaded is the one b uses too.
	ka, err := a.IndexKey(ctx, "customers.email")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.IndexKey(ctx, "customers.email")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ka, kb) {
		t.Error("two keyrings on one key file made different index keys")
	}

	// A rotation by a is seen by b, and survives a reload.
	if err := a.RotateClassKey(ctx, keyring.PII); err != nil {
		t.Fatal(err)
	}
	plaintext2, wrapped2, err := a.NewDataKey(ctx, keyring.PII)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.UnwrapDataKey(ctx, keyring.PII, wrapped2); err != nil || !bytes.Equal(got, plaintext2) {
		t.Fatalf("a data key on the rotated version does not unwrap with the other keyring: %v", err)
	}
	c, err := keyring.NewLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range [][]byte{wrapped, wrapped2} {
		if _, err := c.UnwrapDataKey(ctx, keyring.PII, w); err != nil {
			t.Errorf("after reload: %v", err)
		}
	}
	if kc, _ := c.IndexKey(ctx, "customers.email"); !bytes.Equal(kc, ka) {
		t.Error("the index key changed across a reload")
	}
	if _, fresh, _ := c.NewDataKey(ctx, keyring.PII); !strings.HasPrefix(string(fresh), "local:v2:") {
		t.Errorf("after reload, a new data key is %.10q..., want version 2", fresh)
	}

	// The file says what it is.
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(content), "NOT FOR PRODUCTION") {
		t.Error("the key file does not say it is not for production")
	}
}

func TestLocalKeyFileRefusesOthersReadable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.json")
	if _, err := keyring.NewLocal(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := keyring.NewLocal(path)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("NewLocal of a world-readable key file: got %v, want a refusal", err)
	}
}

func TestLocalKeyFileRefusesGarbage(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.json")
	secretish := `{"classes": {"pii": ["c2hvcnQ="]}}`
	if err := os.WriteFile(path, []byte(secretish), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.NewLocal(path); err == nil {
		t.Error("NewLocal accepted a key file with a 5-byte class key")
	}
	if err := os.WriteFile(path, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.NewLocal(path); err == nil {
		t.Error("NewLocal accepted a key file that is not JSON")
	}
}

func TestLocalMemoryKeyringsAreApart(t *testing.T) {
	t.Parallel()
	a, _ := keyring.NewLocal("")
	b, _ := keyring.NewLocal("")
	_, wrapped, err := a.NewDataKey(t.Context(), keyring.PII)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UnwrapDataKey(t.Context(), keyring.PII, wrapped); !errors.Is(err, keyring.ErrCannotUnwrap) {
		t.Errorf("a data key of one in-memory keyring unwrapped with another: %v", err)
	}
}

func TestContextDone(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			kr := b.new(t)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, _, err := kr.NewDataKey(ctx, keyring.PII)
			if !errors.Is(err, context.Canceled) || errors.Is(err, keyring.ErrUnavailable) {
				t.Errorf("NewDataKey with a canceled context: got %v, want context.Canceled (and not ErrUnavailable)", err)
			}
		})
	}
}

func TestVaultIndexKeySharedByInstances(t *testing.T) {
	t.Parallel()
	s := vaulttest.Start(t)
	transit, kv := s.EnableTransit(t, ""), s.EnableKV(t, "")

	// Many instances asking at once for a key nobody made yet all get the
	// one that was written first.
	const n = 8
	keys := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			kr := keyring.NewVault(s.Client(t), transit, kv)
			k, err := kr.IndexKey(t.Context(), "customers.email")
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("instance %d got another index key than instance 0", i)
		}
	}
	// And a later instance reads it.
	later, err := keyring.NewVault(s.Client(t), transit, kv).IndexKey(t.Context(), "customers.email")
	if err != nil || !bytes.Equal(later, keys[0]) {
		t.Errorf("a later instance: %v, same key %t", err, bytes.Equal(later, keys[0]))
	}
}

func TestVaultUnavailable(t *testing.T) {
	t.Parallel()
	s := vaulttest.NewServer(t)
	transit := s.EnableTransit(t, "")
	kr := keyring.NewVault(s.Client(t), transit, "secret")
	ctx := t.Context()

	_, wrapped, err := kr.NewDataKey(ctx, keyring.PII)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.IndexKey(ctx, "customers.email"); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	_, _, err = kr.NewDataKey(ctx, keyring.PII)
	checkUnavailable(t, "NewDataKey", err)
	_, err = kr.UnwrapDataKey(ctx, keyring.PII, wrapped)
	checkUnavailable(t, "UnwrapDataKey", err)
	_, err = kr.Rewrap(ctx, keyring.PII, wrapped)
	checkUnavailable(t, "Rewrap", err)
	checkUnavailable(t, "RotateClassKey", kr.RotateClassKey(ctx, keyring.PII))
	_, err = kr.IndexKey(ctx, "customers.phone")
	checkUnavailable(t, "IndexKey", err)
	// An index key already read is kept in memory.
	if _, err := kr.IndexKey(ctx, "customers.email"); err != nil {
		t.Errorf("IndexKey of a purpose read before the outage: %v", err)
	}

	// A restarted dev server is empty: the transit mount comes back by
	// hand, the class key by itself, and data keys of the old server are
	// gone for good.
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	s.EnableTransit(t, transit)
	plaintext, wrapped2, err := kr.NewDataKey(ctx, keyring.PII)
	if err != nil {
		t.Fatalf("NewDataKey after Vault came back: %v", err)
	}
	if got, err := kr.UnwrapDataKey(ctx, keyring.PII, wrapped2); err != nil || !bytes.Equal(got, plaintext) {
		t.Errorf("UnwrapDataKey after Vault came back: %v", err)
	}
	if _, err := kr.UnwrapDataKey(ctx, keyring.PII, wrapped); !errors.Is(err, keyring.ErrCannotUnwrap) {
		t.Errorf("UnwrapDataKey of a key of the forgotten server: got %v, want ErrCannotUnwrap", err)
	}
}

func checkUnavailable(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, keyring.ErrUnavailable) {
		t.Errorf("%s with Vault down: got %v, want ErrUnavailable", op, err)
		return
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("%s with Vault down: error of several lines: %q", op, err)
	}
	t.Logf("%s with Vault down: %v", op, err)
}

func TestVaultForbiddenIsNotUnavailable(t *testing.T) {
	t.Parallel()
	s := vaulttest.Start(t)
	transit := s.EnableTransit(t, "")
	c := s.Client(t)
	c.SetToken("not-a-token")
	_, _, err := keyring.NewVault(c, transit, "secret").NewDataKey(t.Context(), keyring.PII)
	if err == nil || errors.Is(err, keyring.ErrUnavailable) {
		t.Errorf("NewDataKey with a bad token: got %v, want an error that is not ErrUnavailable", err)
	}
}

func TestVaultSealedIsUnavailable(t *testing.T) {
	t.Parallel()
	s := vaulttest.NewServer(t)
	transit := s.EnableTransit(t, "")
	c := s.Client(t)
	kr := keyring.NewVault(c, transit, "secret")
	if err := c.Sys().SealWithContext(t.Context()); err != nil {
		t.Fatalf("seal Vault: %v", err)
	}
	_, _, err := kr.NewDataKey(t.Context(), keyring.PII)
	checkUnavailable(t, "NewDataKey", err)
}
