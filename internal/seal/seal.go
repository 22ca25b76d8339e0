// Package seal encrypts sensitive values for storage: envelope encryption
// with AES-256-GCM under data keys from a keyring, each value bound to the
// place it is stored in.
//
// A sealed value carries its data key, wrapped by the keyring under the key
// of the value's sensitivity class, so it opens with nothing but the keyring:
//
//	+------+------------------+---------------+----------+------------------------+
//	| 0x01 | uvarint len(wk)  | wrapped key   | nonce    | AES-256-GCM ciphertext |
//	|      |                  | (wk, opaque)  | 12 bytes | and 16-byte tag        |
//	+------+------------------+---------------+----------+------------------------+
//
// The associated data of the encryption is the format byte, the class and the
// Place (table, column, row), each length-prefixed so that ("a", "bc") and
// ("ab", "c") differ. A value copied to another row or column, or opened as
// another class, does not open: ErrCannotOpen.
//
// Keyring round trips are what would make sealing slow (Vault is a network
// call away), so a Sealer keeps data keys in memory, within bounds:
//
//   - Seal uses one current data key per class for many values, until it is
//     DataKeyMaxAge old or has sealed DataKeyMaxUses values; then it asks
//     the keyring for a new one. A normal request makes no round trip.
//   - Open keeps unwrapped data keys in a cache, by a hash of the class and
//     the wrapped key, for up to DataKeyMaxAge and DataKeyMaxUses opens,
//     and at most MaxCachedKeys of them (the oldest leaves first). Many
//     values sealed under one data key cost one unwrap. Concurrent Opens
//     that miss the cache for the same key share one unwrap.
//
// Blind indexes (BlindIndex) let a capability find a row by a sensitive
// value without storing or comparing the value: an HMAC-SHA256 of it under
// a secret key of the keyring, one key per purpose.
//
// No error of this package contains a sensitive value or key material.
package seal

import (
	"container/list"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"plinth.dev/plinth/internal/keyring"
)

// ErrCannotOpen is wrapped by the errors of Open (and Rewrap) for a sealed
// value that does not open: damaged or tampered with, sealed at another
// Place or as another class, or sealed under a key the keyring does not
// know. Retrying does not help.
var ErrCannotOpen = errors.New("seal: value does not open")

// Place is where a sealed value is stored. It is the associated data of the
// encryption: a value opens only at the Place it was sealed for. All three
// fields must be set.
type Place struct {
	Table  string // e.g. "customers"
	Column string // e.g. "email"
	Row    string // the row's id, e.g. "cus_01JD5Q..."
}

func (p Place) validate() error {
	if p.Table == "" || p.Column == "" || p.Row == "" {
		return fmt.Errorf("seal: place %s.%s row %q: table, column and row must all be set", p.Table, p.Column, p.Row)
	}
	return nil
}

func (p Place) String() string { return p.Table + "." + p.Column + " row " + p.Row }

// formatV1 is the first byte of a value sealed in the format of the package
// doc.
const formatV1 byte = 0x01

const (
	nonceSize = 12
	tagSize   = 16
	// maxWrappedKeySize bounds the wrapped key a sealed value may claim,
	// so that a damaged length does not make Open allocate or hash much.
	maxWrappedKeySize = 4096
)

// Sealer seals and opens values with data keys from a keyring. It is safe
// for concurrent use; make one per process and share it, so that its caches
// serve every request.
type Sealer struct {
	kr        keyring.Keyring
	maxAge    time.Duration
	maxUses   int64
	maxCached int
	now       func() time.Time

	sealing map[keyring.Class]*sealingKey // one per class; the map never changes

	cacheMu  sync.Mutex
	cache    map[cacheKey]*list.Element // of *cachedKey
	order    *list.List                 // of *cachedKey, oldest first
	inflight map[cacheKey]*unwrapCall   // unwraps under way

	indexMu   sync.Mutex
	indexKeys map[string][]byte // by purpose
}

// New returns a Sealer over kr.
func New(kr keyring.Keyring, opts ...Option) *Sealer {
	s := &Sealer{
		kr:        kr,
		maxAge:    DefaultDataKeyMaxAge,
		maxUses:   DefaultDataKeyMaxUses,
		maxCached: DefaultMaxCachedKeys,
		now:       time.Now,
		sealing:   map[keyring.Class]*sealingKey{},
		cache:     map[cacheKey]*list.Element{},
		order:     list.New(),
		inflight:  map[cacheKey]*unwrapCall{},
		indexKeys: map[string][]byte{},
	}
	for _, opt := range opts {
		opt.apply(s)
	}
	for _, c := range keyring.Classes {
		s.sealing[c] = &sealingKey{refill: make(chan struct{}, 1)}
	}
	return s
}

// dataKey is a data key ready for use.
type dataKey struct {
	aead    cipher.AEAD
	wrapped []byte
	born    time.Time // when it was made or unwrapped
	uses    int64     // guarded by the mutex of whoever holds it
}

// sealingKey is the current data key of a class for sealing.
type sealingKey struct {
	mu     sync.Mutex
	key    *dataKey      // nil, or the current key (perhaps used up)
	refill chan struct{} // a token: held by the one Seal that asks the keyring
}

// Seal encrypts plaintext, a value of class, for storage at p.
func (s *Sealer) Seal(ctx context.Context, class keyring.Class, p Place, plaintext []byte) ([]byte, error) {
	if err := class.Validate(); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	k, err := s.sealingKeyOf(ctx, class)
	if err != nil {
		return nil, fmt.Errorf("seal: %s: %w", p, err)
	}
	out := make([]byte, 0, 1+binary.MaxVarintLen64+len(k.wrapped)+nonceSize+len(plaintext)+tagSize)
	out = append(out, formatV1)
	out = binary.AppendUvarint(out, uint64(len(k.wrapped)))
	out = append(out, k.wrapped...)
	nonce := out[len(out) : len(out)+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	out = out[:len(out)+nonceSize]
	return k.aead.Seal(out, nonce, plaintext, associatedData(class, formatV1, p)), nil
}

// sealingKeyOf returns the data key to seal the next value of class with,
// counting the use, and asks the keyring for a new one when the current
// one is used up. One Seal asks at a time; the others wait for its answer
// (or for their ctx).
func (s *Sealer) sealingKeyOf(ctx context.Context, class keyring.Class) (*dataKey, error) {
	sk := s.sealing[class]
	for {
		if k := sk.take(s); k != nil {
			return k, nil
		}
		select {
		case sk.refill <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		// Another Seal may have refilled while this one waited.
		if k := sk.take(s); k != nil {
			<-sk.refill
			return k, nil
		}
		k, err := s.newDataKey(ctx, class)
		if err != nil {
			<-sk.refill
			return nil, err
		}
		sk.mu.Lock()
		sk.key = k
		sk.mu.Unlock()
		<-sk.refill
		// Loop to take a use of it like everybody else (it may even be
		// used up already, with a max uses of 1 and many Seals).
	}
}

// take returns the current key with a use counted, or nil if there is none
// left.
func (sk *sealingKey) take(s *Sealer) *dataKey {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	k := sk.key
	if k == nil || k.uses >= s.maxUses || s.now().Sub(k.born) >= s.maxAge {
		sk.key = nil
		return nil
	}
	k.uses++
	return k
}

// newDataKey asks the keyring for a data key for sealing, and also puts it
// in the cache for opening: values are often read back by the process that
// wrote them.
func (s *Sealer) newDataKey(ctx context.Context, class keyring.Class) (*dataKey, error) {
	plaintext, wrapped, err := s.kr.NewDataKey(ctx, class)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(plaintext)
	clear(plaintext)
	if err != nil {
		return nil, err
	}
	now := s.now()
	s.cachePut(cacheKeyOf(class, wrapped), &dataKey{aead: aead, wrapped: wrapped, born: now})
	return &dataKey{aead: aead, wrapped: wrapped, born: now}, nil
}

// Open decrypts a value of class sealed for p. A value that does not open
// there gives an error that wraps ErrCannotOpen; a keyring that cannot be
// reached, one that wraps keyring.ErrUnavailable.
func (s *Sealer) Open(ctx context.Context, class keyring.Class, p Place, sealed []byte) ([]byte, error) {
	if err := class.Validate(); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	v, err := parse(sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCannotOpen, p, err)
	}
	aead, err := s.openingKey(ctx, class, v.wrapped)
	if err != nil {
		if errors.Is(err, keyring.ErrCannotUnwrap) {
			return nil, fmt.Errorf("%w: %s: its data key does not unwrap as class %s", ErrCannotOpen, p, class)
		}
		return nil, fmt.Errorf("seal: open %s: %w", p, err)
	}
	plaintext, err := aead.Open(nil, v.nonce, v.ciphertext, associatedData(class, v.format, p))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: sealed elsewhere, as another class, or tampered with", ErrCannotOpen, p)
	}
	return plaintext, nil
}

// Rewrap returns sealed with its data key rewrapped under the latest
// version of the class key, after RotateClassKey. The value and its
// encryption stay as they are, so the result opens where sealed did. Rewrap
// does not open the value (it needs no Place); a wrapped key the keyring
// does not accept gives an error that wraps ErrCannotOpen.
//
// Each call rewraps once, and values that shared a data key each get a
// wrapping of their own, which costs an unwrap each on the next Open;
// RewrapAll rewraps many values with one keyring call per data key.
func (s *Sealer) Rewrap(ctx context.Context, class keyring.Class, sealed []byte) ([]byte, error) {
	out, err := s.RewrapAll(ctx, class, [][]byte{sealed})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// RewrapAll is Rewrap of many values of class: values that share a data
// key (as values sealed by one Sealer around the same time do) are
// rewrapped with one keyring call and keep sharing it, so that reading them
// back still costs one unwrap. The result is in the order of sealed. An
// error leaves nothing half done: the caller stores the results only if
// there is none.
func (s *Sealer) RewrapAll(ctx context.Context, class keyring.Class, sealed [][]byte) ([][]byte, error) {
	if err := class.Validate(); err != nil {
		return nil, err
	}
	rewrapped := map[cacheKey][]byte{}
	out := make([][]byte, len(sealed))
	for i, value := range sealed {
		v, err := parse(value)
		if err != nil {
			return nil, fmt.Errorf("%w: value %d: %v", ErrCannotOpen, i, err)
		}
		ck := cacheKeyOf(class, v.wrapped)
		wrapped, ok := rewrapped[ck]
		if !ok {
			wrapped, err = s.kr.Rewrap(ctx, class, v.wrapped)
			if errors.Is(err, keyring.ErrCannotUnwrap) {
				return nil, fmt.Errorf("%w: value %d: its data key does not unwrap as class %s", ErrCannotOpen, i, class)
			}
			if err != nil {
				return nil, fmt.Errorf("seal: rewrap: %w", err)
			}
			rewrapped[ck] = wrapped
		}
		b := make([]byte, 0, 1+binary.MaxVarintLen64+len(wrapped)+nonceSize+len(v.ciphertext))
		b = append(b, v.format)
		b = binary.AppendUvarint(b, uint64(len(wrapped)))
		b = append(b, wrapped...)
		b = append(b, v.nonce...)
		out[i] = append(b, v.ciphertext...)
	}
	return out, nil
}

// BlindIndex returns the keyed blind index of value for purpose (e.g.
// "customers.email"): HMAC-SHA256 under the keyring's index key of purpose.
// Equal values give equal indexes, so a row can be found by the index of
// the value looked for, and nobody without the key can compute or reverse
// one. The caller normalises value first (an email lowercased, say), the
// same way when indexing and when looking up.
func (s *Sealer) BlindIndex(ctx context.Context, purpose string, value []byte) ([]byte, error) {
	key, err := s.indexKey(ctx, purpose)
	if err != nil {
		return nil, fmt.Errorf("seal: blind index %s: %w", purpose, err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(value)
	return mac.Sum(nil), nil
}

// indexKey returns purpose's index key, asking the keyring once per
// purpose: index keys never change.
func (s *Sealer) indexKey(ctx context.Context, purpose string) ([]byte, error) {
	s.indexMu.Lock()
	key, ok := s.indexKeys[purpose]
	s.indexMu.Unlock()
	if ok {
		return key, nil
	}
	key, err := s.kr.IndexKey(ctx, purpose)
	if err != nil {
		return nil, err
	}
	s.indexMu.Lock()
	s.indexKeys[purpose] = key
	s.indexMu.Unlock()
	return key, nil
}

// cacheKey identifies an unwrapped data key in the cache for opening: a
// hash of the class and the wrapped key, so that a wrapped key presented as
// another class is not served from the cache but sent to the keyring,
// which refuses it.
type cacheKey [sha256.Size]byte

func cacheKeyOf(class keyring.Class, wrapped []byte) cacheKey {
	h := sha256.New()
	h.Write(binary.AppendUvarint(nil, uint64(len(class))))
	h.Write([]byte(class))
	h.Write(wrapped)
	var k cacheKey
	h.Sum(k[:0])
	return k
}

// cachedKey is an entry of the cache for opening.
type cachedKey struct {
	id cacheKey
	*dataKey
}

// unwrapCall is an unwrap under way, that concurrent Opens of the same key
// wait for instead of unwrapping too.
type unwrapCall struct {
	done chan struct{} // closed when aead and err are set
	aead cipher.AEAD
	err  error
}

// openingKey returns the data key of wrapped for opening, from the cache,
// or from the keyring (once for all the Opens that want it at the same
// time).
func (s *Sealer) openingKey(ctx context.Context, class keyring.Class, wrapped []byte) (cipher.AEAD, error) {
	id := cacheKeyOf(class, wrapped)
	for {
		s.cacheMu.Lock()
		if aead := s.cacheTakeLocked(id); aead != nil {
			s.cacheMu.Unlock()
			return aead, nil
		}
		if call, ok := s.inflight[id]; ok {
			s.cacheMu.Unlock()
			select {
			case <-call.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if call.err == nil {
				return call.aead, nil
			}
			// The unwrap failed, perhaps only because its caller's ctx
			// ended: try again, this time as the one who unwraps.
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			continue
		}
		call := &unwrapCall{done: make(chan struct{})}
		s.inflight[id] = call
		s.cacheMu.Unlock()

		call.aead, call.err = s.unwrap(ctx, class, wrapped)
		s.cacheMu.Lock()
		delete(s.inflight, id)
		if call.err == nil {
			k := &dataKey{aead: call.aead, wrapped: wrapped, born: s.now(), uses: 1}
			s.cachePutLocked(id, k)
		}
		s.cacheMu.Unlock()
		close(call.done)
		return call.aead, call.err
	}
}

func (s *Sealer) unwrap(ctx context.Context, class keyring.Class, wrapped []byte) (cipher.AEAD, error) {
	plaintext, err := s.kr.UnwrapDataKey(ctx, class, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(plaintext)
	return newAEAD(plaintext)
}

// cacheTakeLocked returns the cached key id with a use counted, or nil;
// it drops the entry if it has expired or this was its last use.
func (s *Sealer) cacheTakeLocked(id cacheKey) cipher.AEAD {
	el, ok := s.cache[id]
	if !ok {
		return nil
	}
	e := el.Value.(*cachedKey)
	if s.now().Sub(e.born) >= s.maxAge {
		s.cacheRemoveLocked(el)
		return nil
	}
	e.uses++
	if e.uses >= s.maxUses {
		s.cacheRemoveLocked(el)
	}
	return e.aead
}

func (s *Sealer) cachePut(id cacheKey, k *dataKey) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.cachePutLocked(id, k)
}

// cachePutLocked adds k to the cache for opening, dropping expired entries
// and then the oldest ones to make room.
func (s *Sealer) cachePutLocked(id cacheKey, k *dataKey) {
	if k.uses >= s.maxUses {
		return // used up already
	}
	if el, ok := s.cache[id]; ok {
		s.cacheRemoveLocked(el)
	}
	// Entries are in the order they were added, so oldest first.
	now := s.now()
	for el := s.order.Front(); el != nil && now.Sub(el.Value.(*cachedKey).born) >= s.maxAge; el = s.order.Front() {
		s.cacheRemoveLocked(el)
	}
	for s.order.Len() >= s.maxCached {
		s.cacheRemoveLocked(s.order.Front())
	}
	s.cache[id] = s.order.PushBack(&cachedKey{id: id, dataKey: k})
}

func (s *Sealer) cacheRemoveLocked(el *list.Element) {
	delete(s.cache, el.Value.(*cachedKey).id)
	s.order.Remove(el)
}

// sealedValue is a sealed value taken apart.
type sealedValue struct {
	format     byte
	wrapped    []byte
	nonce      []byte
	ciphertext []byte // with the tag
}

// parse takes a sealed value apart. Its errors say what is wrong with the
// format, never what the value holds.
func parse(sealed []byte) (sealedValue, error) {
	if len(sealed) == 0 {
		return sealedValue{}, errors.New("empty")
	}
	if sealed[0] != formatV1 {
		return sealedValue{}, fmt.Errorf("unknown format %#02x", sealed[0])
	}
	rest := sealed[1:]
	n, size := binary.Uvarint(rest)
	if size <= 0 || n == 0 || n > maxWrappedKeySize {
		return sealedValue{}, errors.New("malformed wrapped key length")
	}
	rest = rest[size:]
	if uint64(len(rest)) < n+nonceSize+tagSize {
		return sealedValue{}, errors.New("truncated")
	}
	return sealedValue{
		format:     sealed[0],
		wrapped:    rest[:n],
		nonce:      rest[n : n+nonceSize],
		ciphertext: rest[n+nonceSize:],
	}, nil
}

// associatedData returns the associated data of a value of class at p in
// format: each field length-prefixed, so that no two different (class,
// place) give the same bytes.
func associatedData(class keyring.Class, format byte, p Place) []byte {
	b := make([]byte, 0, 1+4*binary.MaxVarintLen64+len(class)+len(p.Table)+len(p.Column)+len(p.Row))
	b = append(b, format)
	for _, field := range [...]string{string(class), p.Table, p.Column, p.Row} {
		b = binary.AppendUvarint(b, uint64(len(field)))
		b = append(b, field...)
	}
	return b
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != keyring.DataKeySize {
		return nil, fmt.Errorf("seal: data key is %d bytes, want %d", len(key), keyring.DataKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
