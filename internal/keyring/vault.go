package keyring

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"

	vaultapi "github.com/hashicorp/vault/api"
)

// NewVault returns a keyring on Vault: class keys in the transit secrets
// engine at transitMount, blind index keys in the KV version 2 secrets
// engine at kvMount. The client brings the address and the token; the
// keyring uses it as it is and does not change it.
//
// Each class has a transit key named "plinth-<class>" (type aes256-gcm96,
// not exportable), made on first use if missing:
//
//	NewDataKey      POST <transit>/datakey/plaintext/plinth-<class>
//	UnwrapDataKey   POST <transit>/decrypt/plinth-<class>
//	Rewrap          POST <transit>/rewrap/plinth-<class>
//	RotateClassKey  POST <transit>/keys/plinth-<class>/rotate
//
// A wrapped data key is transit's ciphertext, "vault:v<version>:<base64>".
// The class keys never leave Vault.
//
// Each blind index purpose has a random IndexKeySize-byte key at
// <kv>/data/plinth/index-keys/<purpose>, made on first use with
// check-and-set 0 (so two processes making it at once agree on the one
// that was written first) and kept in memory once read. The token needs
// create, read and update on those paths.
//
// Errors that mean Vault cannot be reached or cannot serve (connection
// refused, a timeout of the client, a 5xx status, Vault sealed) wrap
// ErrUnavailable; the done ctx of a caller gives ctx.Err(), wrapped.
func NewVault(client *vaultapi.Client, transitMount, kvMount string) Keyring {
	return &vaultKeyring{
		client:    client,
		transit:   strings.Trim(transitMount, "/"),
		kv:        strings.Trim(kvMount, "/"),
		indexKeys: map[string][]byte{},
	}
}

// vaultKeyring is the Keyring of NewVault.
type vaultKeyring struct {
	client  *vaultapi.Client
	transit string // mount of the transit engine
	kv      string // mount of the KV v2 engine

	mu        sync.Mutex
	indexKeys map[string][]byte // by purpose; never change once made
}

var _ Keyring = (*vaultKeyring)(nil)

// transitKeyName returns the name of the transit key of class.
func transitKeyName(class Class) string { return "plinth-" + string(class) }

// indexKeyPath returns the KV path (under the mount) of purpose's key.
func indexKeyPath(purpose string) string { return "plinth/index-keys/" + purpose }

func (k *vaultKeyring) NewDataKey(ctx context.Context, class Class) (plaintext, wrapped []byte, err error) {
	if err := class.Validate(); err != nil {
		return nil, nil, err
	}
	path := k.transit + "/datakey/plaintext/" + transitKeyName(class)
	var secret *vaultapi.Secret
	err = k.withClassKey(ctx, class, func() error {
		var err error
		secret, err = k.client.Logical().WriteWithContext(ctx, path, map[string]any{"bits": DataKeySize * 8})
		return err
	})
	if err != nil {
		return nil, nil, k.fail(ctx, "new data key", path, err)
	}
	ciphertext, err := stringField(secret, "ciphertext")
	if err != nil {
		return nil, nil, fmt.Errorf("keyring: vault %s: %w", path, err)
	}
	plaintext, err = base64Field(secret, "plaintext")
	if err != nil {
		return nil, nil, fmt.Errorf("keyring: vault %s: %w", path, err)
	}
	if len(plaintext) != DataKeySize {
		return nil, nil, fmt.Errorf("keyring: vault %s: data key is %d bytes, want %d", path, len(plaintext), DataKeySize)
	}
	return plaintext, []byte(ciphertext), nil
}

func (k *vaultKeyring) UnwrapDataKey(ctx context.Context, class Class, wrapped []byte) ([]byte, error) {
	if err := class.Validate(); err != nil {
		return nil, err
	}
	if err := checkTransitCiphertext(wrapped); err != nil {
		return nil, err
	}
	path := k.transit + "/decrypt/" + transitKeyName(class)
	secret, err := k.client.Logical().WriteWithContext(ctx, path, map[string]any{"ciphertext": string(wrapped)})
	if err != nil {
		return nil, k.fail(ctx, opUnwrap, path, err)
	}
	plaintext, err := base64Field(secret, "plaintext")
	if err != nil {
		return nil, fmt.Errorf("keyring: vault %s: %w", path, err)
	}
	if len(plaintext) != DataKeySize {
		return nil, fmt.Errorf("%w: vault %s: data key is %d bytes, want %d", ErrCannotUnwrap, path, len(plaintext), DataKeySize)
	}
	return plaintext, nil
}

func (k *vaultKeyring) Rewrap(ctx context.Context, class Class, wrapped []byte) ([]byte, error) {
	if err := class.Validate(); err != nil {
		return nil, err
	}
	if err := checkTransitCiphertext(wrapped); err != nil {
		return nil, err
	}
	path := k.transit + "/rewrap/" + transitKeyName(class)
	secret, err := k.client.Logical().WriteWithContext(ctx, path, map[string]any{"ciphertext": string(wrapped)})
	if err != nil {
		return nil, k.fail(ctx, opRewrap, path, err)
	}
	ciphertext, err := stringField(secret, "ciphertext")
	if err != nil {
		return nil, fmt.Errorf("keyring: vault %s: %w", path, err)
	}
	return []byte(ciphertext), nil
}

func (k *vaultKeyring) RotateClassKey(ctx context.Context, class Class) error {
	if err := class.Validate(); err != nil {
		return err
	}
	path := k.transit + "/keys/" + transitKeyName(class) + "/rotate"
	err := k.withClassKey(ctx, class, func() error {
		_, err := k.client.Logical().WriteWithContext(ctx, path, nil)
		return err
	})
	if err != nil {
		return k.fail(ctx, "rotate class key", path, err)
	}
	return nil
}

func (k *vaultKeyring) IndexKey(ctx context.Context, purpose string) ([]byte, error) {
	if err := ValidatePurpose(purpose); err != nil {
		return nil, err
	}
	k.mu.Lock()
	key, ok := k.indexKeys[purpose]
	k.mu.Unlock()
	if ok {
		return bytes.Clone(key), nil
	}

	key, err := k.loadIndexKey(ctx, purpose)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if cached, ok := k.indexKeys[purpose]; ok {
		return bytes.Clone(cached), nil // a concurrent call got there first; same key
	}
	k.indexKeys[purpose] = key
	return bytes.Clone(key), nil
}

// loadIndexKey reads purpose's key from KV, making it if it is missing.
func (k *vaultKeyring) loadIndexKey(ctx context.Context, purpose string) ([]byte, error) {
	kv := k.client.KVv2(k.kv)
	path := k.kv + "/data/" + indexKeyPath(purpose)
	key, err := k.readIndexKey(ctx, purpose)
	if err == nil || !errors.Is(err, vaultapi.ErrSecretNotFound) {
		return key, err
	}
	fresh, err := randomKey(IndexKeySize)
	if err != nil {
		return nil, err
	}
	_, err = kv.Put(ctx, indexKeyPath(purpose),
		map[string]any{"key": base64.StdEncoding.EncodeToString(fresh)},
		vaultapi.WithCheckAndSet(0))
	if err == nil {
		return fresh, nil
	}
	var respErr *vaultapi.ResponseError
	if errors.As(err, &respErr) && respErr.StatusCode == 400 {
		// Check-and-set 0 refused: another process wrote the key since we
		// looked. Its key is the one.
		return k.readIndexKey(ctx, purpose)
	}
	return nil, k.fail(ctx, "write index key", path, err)
}

// readIndexKey reads purpose's key from KV. A missing key gives an error
// that wraps vaultapi.ErrSecretNotFound.
func (k *vaultKeyring) readIndexKey(ctx context.Context, purpose string) ([]byte, error) {
	path := k.kv + "/data/" + indexKeyPath(purpose)
	secret, err := k.client.KVv2(k.kv).Get(ctx, indexKeyPath(purpose))
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, k.fail(ctx, "read index key", path, err)
	}
	s, _ := secret.Data["key"].(string)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(key) != IndexKeySize {
		// Not the value: it is a key, however damaged.
		return nil, fmt.Errorf("keyring: vault %s does not hold a %d-byte base64 key", path, IndexKeySize)
	}
	return key, nil
}

// withClassKey runs call, which uses class's transit key; if transit
// refuses it (400) because the key does not exist yet, it makes the key
// and runs call again. Making the key on demand costs nothing on the normal
// path and also recovers from a key deleted, or a dev server restarted,
// under a running process.
func (k *vaultKeyring) withClassKey(ctx context.Context, class Class, call func() error) error {
	err := call()
	var respErr *vaultapi.ResponseError
	if err == nil || !errors.As(err, &respErr) || respErr.StatusCode != 400 {
		return err
	}
	keyPath := k.transit + "/keys/" + transitKeyName(class)
	existing, readErr := k.client.Logical().ReadWithContext(ctx, keyPath)
	if readErr != nil || existing != nil {
		return err // the key exists: the 400 was about something else
	}
	if _, err := k.client.Logical().WriteWithContext(ctx, keyPath, map[string]any{"type": "aes256-gcm96"}); err != nil {
		return err
	}
	return call()
}

// checkTransitCiphertext refuses, without asking Vault, what is not
// transit's ciphertext "vault:v<version>:<base64>" with a version of 1 or
// more. Transit itself takes "vault:v0:" for "vault:v1:" (a compatibility
// mode of its first release): refusing it here keeps every changed byte of
// a wrapped key an error, as a tampered wrapped key should be.
func checkTransitCiphertext(wrapped []byte) error {
	rest, ok := bytes.CutPrefix(wrapped, []byte("vault:v"))
	if !ok {
		return fmt.Errorf("%w: not wrapped by Vault transit", ErrCannotUnwrap)
	}
	version, _, ok := bytes.Cut(rest, []byte(":"))
	if !ok {
		return fmt.Errorf("%w: malformed", ErrCannotUnwrap)
	}
	if v, err := strconv.Atoi(string(version)); err != nil || v < 1 || string(version) != strconv.Itoa(v) {
		return fmt.Errorf("%w: malformed key version", ErrCannotUnwrap)
	}
	return nil
}

// The operations whose 400 means a wrapped key that does not unwrap.
const (
	opUnwrap = "unwrap data key"
	opRewrap = "rewrap data key"
)

// fail turns the error of a Vault call into the keyring's: the caller's
// context error if ctx is done, ErrUnavailable if Vault could not be
// reached or could not serve, ErrCannotUnwrap if transit refused a wrapped
// data key, and a plain error otherwise (a 403 of a token without the
// rights, say: a configuration error, which waiting will not fix).
func (k *vaultKeyring) fail(ctx context.Context, op, path string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("keyring: vault %s: %w", op, ctxErr)
	}
	e := &vaultError{op: op, path: path, cause: err}
	var respErr *vaultapi.ResponseError
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &respErr):
		e.status = respErr.StatusCode
		e.detail = strings.Join(respErr.Errors, "; ")
		switch {
		case respErr.StatusCode >= 500 || respErr.StatusCode == 429:
			// 503: sealed, or standby without an active node; 429: rate
			// limited, or a performance standby.
			e.kind = ErrUnavailable
		case respErr.StatusCode == 400 && (op == opUnwrap || op == opRewrap):
			// Transit's "invalid ciphertext", "message authentication
			// failed", "encryption key not found".
			e.kind = ErrCannotUnwrap
		}
	case errors.As(err, &urlErr), errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// Connection refused or reset, DNS, or the client's own timeout
		// (ctx, the caller's, is not done: checked above).
		e.kind = ErrUnavailable
		e.detail = transportDetail(err)
	}
	return e
}

// vaultError is an error of a Vault call: one line that says what was done
// where and what Vault answered, and that wraps a kind (ErrUnavailable,
// ErrCannotUnwrap, or none) and the cause.
type vaultError struct {
	op, path string
	status   int    // HTTP status, or 0 if there was no response
	detail   string // Vault's error messages, or the transport error
	kind     error  // ErrUnavailable, ErrCannotUnwrap, or nil
	cause    error
}

func (e *vaultError) Error() string {
	var b strings.Builder
	b.WriteString("keyring: vault ")
	b.WriteString(e.op)
	b.WriteString(" (")
	b.WriteString(e.path)
	b.WriteString(")")
	if e.kind != nil {
		b.WriteString(": ")
		b.WriteString(e.kind.Error())
	}
	if e.status != 0 {
		fmt.Fprintf(&b, ": status %d", e.status)
	}
	if e.detail != "" {
		b.WriteString(": ")
		b.WriteString(e.detail)
	} else if e.status == 0 {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	return b.String()
}

func (e *vaultError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.cause}
	}
	return []error{e.kind, e.cause}
}

// transportDetail returns the gist of a transport error, without the
// request URL that *url.Error repeats.
func transportDetail(err error) string {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err.Error()
	}
	return err.Error()
}

func stringField(secret *vaultapi.Secret, name string) (string, error) {
	if secret == nil || secret.Data == nil {
		return "", errors.New("empty response")
	}
	s, ok := secret.Data[name].(string)
	if !ok || s == "" {
		return "", fmt.Errorf("response has no %s", name)
	}
	return s, nil
}

func base64Field(secret *vaultapi.Secret, name string) ([]byte, error) {
	s, err := stringField(secret, name)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// Not the error itself: it could quote key material.
		return nil, fmt.Errorf("response's %s is not base64", name)
	}
	return b, nil
}
