// Package ids makes resource ids: a short prefix that names the kind of
// resource ("cus" for a customer), an underscore, and a ULID. ULIDs sort by
// creation time, so listings ordered by id are in sign-up order, and they are
// unique without a round trip to a database. Within one process, an id made
// after another returned sorts after it, even within a millisecond, from any
// goroutine, and even if the clock steps back.
package ids

import (
	"crypto/rand"
	"sync"

	"github.com/oklog/ulid/v2"
)

// New returns a new id with the given prefix, such as "cus_01JD5Q...".
func New(prefix string) string {
	id := next()
	if len(prefix) > 32 {
		return prefix + "_" + id.String()
	}
	// Every request gets an id: built in a buffer on the stack, it costs
	// one allocation (the string) rather than three.
	var buf [32 + 1 + ulid.EncodedSize]byte
	n := copy(buf[:], prefix)
	buf[n] = '_'
	n++
	_ = id.MarshalTextTo(buf[n : n+ulid.EncodedSize])
	return string(buf[:n+ulid.EncodedSize])
}

// gen makes the ULIDs. ulid.Make is not enough: it reads the clock before
// it takes its entropy's lock, so of two goroutines the one that read the
// earlier millisecond may draw second, start that millisecond's sequence
// afresh, and make an id that sorts before one made before it. Here the
// clock is read under the lock, and never goes back.
var gen struct {
	sync.Mutex
	ms      uint64 // of the last id made
	entropy *ulid.MonotonicEntropy
}

func next() ulid.ULID {
	gen.Lock()
	defer gen.Unlock()
	if gen.entropy == nil {
		gen.entropy = ulid.Monotonic(rand.Reader, 0)
	}
	gen.ms = max(gen.ms, ulid.Now())
	// Within one millisecond the entropy grows by a random step: it runs
	// out after some 2^48 ids, far beyond what one process makes in one.
	return ulid.MustNew(gen.ms, gen.entropy)
}
