// Package ids makes resource ids: a short prefix that names the kind of
// resource ("cus" for a customer), an underscore, and a ULID. ULIDs sort by
// creation time, so listings ordered by id are in sign-up order, and they are
// unique without a round trip to a database.
package ids

import "github.com/oklog/ulid/v2"

// New returns a new id with the given prefix, such as "cus_01JD5Q...".
func New(prefix string) string {
	// Every request gets an id: built in a buffer on the stack, it costs
	// one allocation (the string) rather than three.
	var buf [32 + 1 + ulid.EncodedSize]byte
	if len(prefix) > 32 {
		return prefix + "_" + ulid.Make().String()
	}
	n := copy(buf[:], prefix)
	buf[n] = '_'
	n++
	_ = ulid.Make().MarshalTextTo(buf[n : n+ulid.EncodedSize])
	return string(buf[:n+ulid.EncodedSize])
}
