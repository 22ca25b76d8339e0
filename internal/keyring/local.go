package keyring

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// NewLocal returns a keyring that keeps its class keys and index keys
// itself. It is NOT FOR PRODUCTION: the keys sit in the process's memory
// and, with a key file, in a plain file next to the data they protect, with
// no access control, audit or rotation policy. It is for `plinth dev` and
// tests; a caller that uses it should say so in its log.
//
// With keyFile "", the keys are random and live in memory only: whatever
// was sealed under them cannot be opened after the process exits. Otherwise
// the keys are kept in keyFile, a JSON file that NewLocal creates (mode
// 0600) with fresh keys if it does not exist; NewLocal refuses a key file
// that others than its owner may read. Rotating a class key and making an
// index key write the file again (to a temporary file renamed over it),
// merging with what is on disk, so that two processes sharing a key file
// agree on its keys; they must not rotate at the same moment.
//
// A data key is wrapped with AES-256-GCM under the class key's latest
// version, with the class as associated data, and prefixed by that version:
// "local:v<version>:" + base64(nonce || ciphertext).
func NewLocal(keyFile string) (Keyring, error) {
	k := &localKeyring{path: keyFile}
	if keyFile == "" {
		k.keys = &localKeys{}
		if _, err := k.keys.fill(); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err := k.loadOrCreate(); err != nil {
		return nil, err
	}
	return k, nil
}

// localKeyring is the Keyring of NewLocal.
type localKeyring struct {
	path string // the key file, or "" for keys in memory only

	mu   sync.Mutex
	keys *localKeys
}

var _ Keyring = (*localKeyring)(nil)

// localKeys is the content of a key file.
type localKeys struct {
	// Warning is written into the file for whoever opens it.
	Warning string `json:"warning"`
	// Classes holds the versions of each class key, version 1 first.
	Classes map[Class][][]byte `json:"classes"`
	// IndexKeys holds the blind index key of each purpose.
	IndexKeys map[string][]byte `json:"index_keys"`
}

const localWarning = "Plinth local keyring: NOT FOR PRODUCTION. These keys open every sealed value; keep this file out of version control and backups."

// fill adds a version 1 key for every class that has none, and reports
// whether it added any.
func (ks *localKeys) fill() (bool, error) {
	ks.Warning = localWarning
	if ks.Classes == nil {
		ks.Classes = map[Class][][]byte{}
	}
	if ks.IndexKeys == nil {
		ks.IndexKeys = map[string][]byte{}
	}
	added := false
	for _, c := range Classes {
		if len(ks.Classes[c]) > 0 {
			continue
		}
		key, err := randomKey(DataKeySize)
		if err != nil {
			return false, err
		}
		ks.Classes[c] = [][]byte{key}
		added = true
	}
	return added, nil
}

// complete reports whether ks has a key for every class.
func (ks *localKeys) complete() bool {
	for _, c := range Classes {
		if len(ks.Classes[c]) == 0 {
			return false
		}
	}
	return true
}

// validate checks the sizes of the keys of a key file.
func (ks *localKeys) validate() error {
	for c, versions := range ks.Classes {
		if err := c.Validate(); err != nil {
			return err
		}
		for i, key := range versions {
			if len(key) != DataKeySize {
				return fmt.Errorf("class %s key version %d is %d bytes, want %d", c, i+1, len(key), DataKeySize)
			}
		}
	}
	for purpose, key := range ks.IndexKeys {
		if err := ValidatePurpose(purpose); err != nil {
			return err
		}
		if len(key) != IndexKeySize {
			return fmt.Errorf("index key %q is %d bytes, want %d", purpose, len(key), IndexKeySize)
		}
	}
	return nil
}

func (k *localKeyring) NewDataKey(ctx context.Context, class Class) (plaintext, wrapped []byte, err error) {
	if err := class.Validate(); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	dataKey, err := randomKey(DataKeySize)
	if err != nil {
		return nil, nil, err
	}
	k.mu.Lock()
	versions := k.keys.Classes[class]
	version, classKey := len(versions), versions[len(versions)-1]
	k.mu.Unlock()
	wrapped, err = wrapLocal(class, version, classKey, dataKey)
	if err != nil {
		return nil, nil, err
	}
	return dataKey, wrapped, nil
}

func (k *localKeyring) UnwrapDataKey(ctx context.Context, class Class, wrapped []byte) ([]byte, error) {
	if err := class.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	version, sealed, err := parseLocal(wrapped)
	if err != nil {
		return nil, err
	}
	classKey, err := k.classKey(class, version)
	if err != nil {
		return nil, err
	}
	return unwrapLocal(class, classKey, sealed)
}

func (k *localKeyring) Rewrap(ctx context.Context, class Class, wrapped []byte) ([]byte, error) {
	dataKey, err := k.UnwrapDataKey(ctx, class, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	k.mu.Lock()
	versions := k.keys.Classes[class]
	version, classKey := len(versions), versions[len(versions)-1]
	k.mu.Unlock()
	return wrapLocal(class, version, classKey, dataKey)
}

func (k *localKeyring) RotateClassKey(ctx context.Context, class Class) error {
	if err := class.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	key, err := randomKey(DataKeySize)
	if err != nil {
		return err
	}
	return k.update(func(ks *localKeys) {
		ks.Classes[class] = append(ks.Classes[class], key)
	})
}

func (k *localKeyring) IndexKey(ctx context.Context, purpose string) ([]byte, error) {
	if err := ValidatePurpose(purpose); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	key, ok := k.keys.IndexKeys[purpose]
	k.mu.Unlock()
	if ok {
		return bytes.Clone(key), nil
	}
	fresh, err := randomKey(IndexKeySize)
	if err != nil {
		return nil, err
	}
	// update reloads the file first: if another process made this index
	// key meanwhile, its key wins, or the two would index apart.
	err = k.update(func(ks *localKeys) {
		if _, ok := ks.IndexKeys[purpose]; !ok {
			ks.IndexKeys[purpose] = fresh
		}
	})
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return bytes.Clone(k.keys.IndexKeys[purpose]), nil
}

// classKey returns version of the class key. A version this keyring does
// not know may have been made by another process sharing the key file: the
// file is read again once before giving up.
func (k *localKeyring) classKey(class Class, version int) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if version > len(k.keys.Classes[class]) && k.path != "" {
		if ks, err := k.readFile(); err == nil && ks.complete() {
			k.keys = ks
		}
	}
	versions := k.keys.Classes[class]
	if version < 1 || version > len(versions) {
		return nil, fmt.Errorf("%w: class %s has no key version %d", ErrCannotUnwrap, class, version)
	}
	return versions[version-1], nil
}

// update applies change to the keys, after reading the key file again (so
// as not to undo another process's change), and writes the file.
func (k *localKeyring) update(change func(*localKeys)) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.path == "" {
		change(k.keys)
		return nil
	}
	ks, err := k.readFile()
	if err != nil {
		return err
	}
	if _, err := ks.fill(); err != nil { // a file edited by hand may lack a class
		return err
	}
	change(ks)
	if err := k.writeFile(ks); err != nil {
		return err
	}
	k.keys = ks
	return nil
}

// loadOrCreate reads the key file, creating it with fresh keys if it does
// not exist. A class key missing from the file is made and written at once,
// so that every process sharing the file uses the same one.
func (k *localKeyring) loadOrCreate() error {
	ks, err := k.readFile()
	if errors.Is(err, fs.ErrNotExist) {
		ks, err = &localKeys{}, nil
	}
	if err != nil {
		return err
	}
	added, err := ks.fill()
	if err != nil {
		return err
	}
	if added {
		if err := k.writeFile(ks); err != nil {
			return err
		}
	}
	k.keys = ks
	return nil
}

// readFile reads and checks the key file.
func (k *localKeyring) readFile() (*localKeys, error) {
	fi, err := os.Stat(k.path)
	if err != nil {
		return nil, fmt.Errorf("keyring: local key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keyring: local key file %s may be read by others than its owner (mode %#o): chmod 600 it", k.path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(k.path)
	if err != nil {
		return nil, fmt.Errorf("keyring: local key file: %w", err)
	}
	ks := &localKeys{}
	if err := json.Unmarshal(b, ks); err != nil {
		// Not the JSON error itself: it could quote key material.
		return nil, fmt.Errorf("keyring: local key file %s is not a valid key file", k.path)
	}
	if err := ks.validate(); err != nil {
		return nil, fmt.Errorf("keyring: local key file %s: %w", k.path, err)
	}
	if ks.Classes == nil {
		ks.Classes = map[Class][][]byte{}
	}
	if ks.IndexKeys == nil {
		ks.IndexKeys = map[string][]byte{}
	}
	return ks, nil
}

// writeFile writes ks to the key file: to a temporary file in the same
// directory, created 0600, then renamed over the key file, so that a crash
// never leaves half a key file.
func (k *localKeyring) writeFile(ks *localKeys) error {
	b, err := json.MarshalIndent(ks, "", "  ")
	if err != nil {
		return fmt.Errorf("keyring: local key file: %w", err)
	}
	dir := filepath.Dir(k.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keyring: local key file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(k.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("keyring: local key file: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("keyring: local key file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("keyring: local key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keyring: local key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keyring: local key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), k.path); err != nil {
		return fmt.Errorf("keyring: local key file: %w", err)
	}
	return nil
}

// localPrefix starts every data key wrapped by a local keyring.
const localPrefix = "local:v"

// wrapLocal wraps dataKey under version of the class key.
func wrapLocal(class Class, version int, classKey, dataKey []byte) ([]byte, error) {
	aead, err := newGCM(classKey)
	if err != nil {
		return nil, err
	}
	sealed := make([]byte, aead.NonceSize(), aead.NonceSize()+len(dataKey)+aead.Overhead())
	if _, err := rand.Read(sealed); err != nil {
		return nil, err
	}
	sealed = aead.Seal(sealed, sealed, dataKey, []byte(class))
	out := localPrefix + strconv.Itoa(version) + ":" + base64.RawStdEncoding.EncodeToString(sealed)
	return []byte(out), nil
}

// parseLocal splits a wrapped data key into its class key version and its
// sealed data key (nonce || ciphertext).
func parseLocal(wrapped []byte) (int, []byte, error) {
	rest, ok := strings.CutPrefix(string(wrapped), localPrefix)
	if !ok {
		return 0, nil, fmt.Errorf("%w: not wrapped by a local keyring", ErrCannotUnwrap)
	}
	v, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, nil, fmt.Errorf("%w: malformed", ErrCannotUnwrap)
	}
	version, err := strconv.Atoi(v)
	if err != nil || version < 1 || v != strconv.Itoa(version) { // one spelling per version
		return 0, nil, fmt.Errorf("%w: malformed version", ErrCannotUnwrap)
	}
	sealed, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: malformed", ErrCannotUnwrap)
	}
	return version, sealed, nil
}

func unwrapLocal(class Class, classKey, sealed []byte) ([]byte, error) {
	aead, err := newGCM(classKey)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: too short", ErrCannotUnwrap)
	}
	nonce, ciphertext := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	dataKey, err := aead.Open(nil, nonce, ciphertext, []byte(class))
	if err != nil {
		return nil, fmt.Errorf("%w: class %s key does not open it", ErrCannotUnwrap, class)
	}
	if len(dataKey) != DataKeySize {
		return nil, fmt.Errorf("%w: data key is %d bytes", ErrCannotUnwrap, len(dataKey))
	}
	return dataKey, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func randomKey(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("keyring: random key: %w", err)
	}
	return b, nil
}
