package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// HashSize is the length of Record.Hash and Record.PrevHash: a SHA-256.
const HashSize = sha256.Size

// hashVersion starts every hashed encoding, so that a future change of the
// encoding cannot produce the hash of an old one.
const hashVersion = "plinth.audit.v1\x00"

// ComputeHash returns the hash that record r must carry: the SHA-256 of
//
//	"plinth.audit.v1\x00"
//	sequence                 8 bytes, big-endian
//	time                     8 bytes, big-endian: microseconds since 1970 UTC
//	id, principal id,        each a string: its length in 4 bytes,
//	capability, code            big-endian, then its bytes
//	resource ids, revealed   each a list: its count in 4 bytes, big-endian,
//	                            then each string as above
//	request id               a string
//	prev hash                its length in 4 bytes, then its bytes
//
// Every variable-length part carries its length, so no two different
// records encode alike (moving a character from one field to the next
// changes the encoding). r.Hash itself is not read.
//
// The brief of the domain names the fields from sequence to prev hash; the
// id is hashed too, so that GetAuditRecord of an id cannot be pointed at
// another record unnoticed.
func ComputeHash(r Record) []byte {
	// Every record is hashed once as it is chained: the encoding is built
	// in a buffer on the stack, which a typical record fits.
	var scratch [512]byte
	b := append(scratch[:0], hashVersion...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Sequence))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixMicro()))
	for _, s := range [...]string{r.ID, r.PrincipalID, r.Capability, r.Code} {
		b = appendString(b, s)
	}
	for _, list := range [...][]string{r.ResourceIDs, r.Revealed} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(list)))
		for _, s := range list {
			b = appendString(b, s)
		}
	}
	b = appendString(b, r.RequestID)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.PrevHash)))
	b = append(b, r.PrevHash...)
	sum := sha256.Sum256(b)
	return sum[:]
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Verification is the outcome of walking the chain.
type Verification struct {
	// OK reports whether every record checked out.
	OK bool
	// RecordsChecked is how many records were read: all of them when OK,
	// else those up to and including the first broken one.
	RecordsChecked int64
	// FirstBrokenSequence is where the chain first breaks; 0 when OK.
	FirstBrokenSequence int64
	// Problem says what is wrong there; empty when OK.
	Problem string
}

// chainCheck checks records one at a time, in the order of their
// sequence, and keeps the first problem.
type chainCheck struct {
	next     int64  // the sequence the next record must have
	prevHash []byte // the hash it must follow
	v        Verification
}

func newChainCheck() *chainCheck {
	return &chainCheck{next: 1, prevHash: make([]byte, HashSize), v: Verification{OK: true}}
}

// add checks r, and reports whether the chain is still whole.
func (c *chainCheck) add(r Record) bool {
	c.v.RecordsChecked++
	switch {
	case r.Sequence > c.next:
		if r.Sequence == c.next+1 {
			c.fail(c.next, fmt.Sprintf("record %d is missing", c.next))
		} else {
			c.fail(c.next, fmt.Sprintf("records %d..%d are missing", c.next, r.Sequence-1))
		}
	case r.Sequence < c.next:
		c.fail(r.Sequence, fmt.Sprintf("record %d appears again after record %d", r.Sequence, c.next-1))
	case !bytes.Equal(ComputeHash(r), r.Hash):
		c.fail(r.Sequence, fmt.Sprintf("record %d's hash does not match its contents", r.Sequence))
	case !bytes.Equal(r.PrevHash, c.prevHash):
		if r.Sequence == 1 {
			c.fail(1, "record 1 does not start the chain: its prev_hash is not 32 zero bytes")
		} else {
			c.fail(r.Sequence, fmt.Sprintf("record %d does not follow %d's hash", r.Sequence, r.Sequence-1))
		}
	default:
		c.next, c.prevHash = r.Sequence+1, r.Hash
	}
	return c.v.OK
}

func (c *chainCheck) fail(seq int64, problem string) {
	c.v.OK, c.v.FirstBrokenSequence, c.v.Problem = false, seq, problem
}
