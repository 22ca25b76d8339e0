package audit

import "context"

// Store keeps the records: first as added, unchained, then chained. Backends
// implement it; every implementation must pass audittest.Run.
//
// Adding and chaining are apart so that recording a call costs one insert
// and no lock: Add only stores the record, and Chain, run in the
// background and before every read of the chain, gives the records added
// since its last run their places (sequence, prev hash, hash) in batches,
// under the one lock that orders the chain. A call's record can then
// commit in the call's own transaction, with its effect.
//
// A Store never changes or removes a chained record: it only appends. Get,
// List and Scan see chained records only. Get of an id no chained record
// has returns the error of RecordNotFound(id). A backend that cannot reach
// what it stores in returns a *domainerr.UnavailableError. Records returned
// never share memory with what the store holds; their times are in UTC and
// their empty lists nil.
type Store interface {
	// Add stores r, a record not yet chained (its Sequence 0, its hashes
	// nil), for a later Chain to link. r stays the caller's: a store that
	// keeps it in memory keeps a copy. On a backend that shares its
	// database with the domains (PostgreSQL), Add joins the transaction
	// ctx carries (internal/pgtx), if any: the record then commits with
	// whatever else the transaction writes, or not at all. A backend that
	// waits on something outside the process bounds the wait when ctx has
	// no deadline: the gateway appends the record of a call whose caller
	// has gone with a context that is never canceled.
	Add(ctx context.Context, r Record) error

	// Chain takes at most limit of the records added and not yet chained,
	// in the order of their time and then id, calls link with the last
	// chained record (nil when there is none) and those records, and
	// stores the records link returns in their place, atomically and
	// serialized with every other Chain: nothing is chained between the
	// read and the write. The records link returns must be the ones it was
	// given, in order, with sequences that continue the last one's (1 for
	// the first); Chain refuses anything else with *OutOfSequenceError. If
	// link returns an error nothing is stored and Chain returns it. Chain
	// returns how many records it chained: 0 when none were waiting.
	// link must not change the records it is given (they may be the
	// store's own), and the records it returns belong to the store from
	// then on: a store need not copy either, on the path every call takes.
	Chain(ctx context.Context, limit int, link func(last *Record, pending []Record) ([]Record, error)) (int, error)

	// Get returns the chained record with the id.
	Get(ctx context.Context, id string) (Record, error)

	// List returns at most q.Limit chained records whose sequence is
	// greater than q.AfterSequence and that match q's filters, in sequence
	// order.
	List(ctx context.Context, q Query) ([]Record, error)

	// Scan calls fn with every chained record in sequence order, as stored
	// (a record edited behind the store's back comes back edited; that is
	// what Scan is for). It stops at the first error fn returns and returns
	// it.
	Scan(ctx context.Context, fn func(Record) error) error

	// LastSequence returns the sequence of the last record chained, as
	// the store keeps it apart from the records (0 before the first), so
	// that Verify can tell when the newest records were deleted: a hash
	// chain alone cannot see its tail cut off.
	LastSequence(ctx context.Context) (int64, error)
}

// Query selects a page of records.
type Query struct {
	AfterSequence int64 // 0 for the first page
	// PrincipalID, when not nil, keeps only the records of that principal
	// (the empty string: of calls that did not authenticate).
	PrincipalID *string
	// Capability, when not nil, keeps only the records of that capability.
	Capability *string
	Limit      int
}

// Matches reports whether r passes q's filters (not its page bounds).
func (q Query) Matches(r Record) bool {
	return (q.PrincipalID == nil || *q.PrincipalID == r.PrincipalID) &&
		(q.Capability == nil || *q.Capability == r.Capability)
}

// CheckLinked reports whether linked is pending linked onto the chain after
// last (nil when the chain is empty): the same records in the same order,
// with consecutive sequences continuing last's. Stores call it on what a
// Chain's link returned before storing it.
func CheckLinked(last *Record, pending, linked []Record) error {
	want := int64(1)
	if last != nil {
		want = last.Sequence + 1
	}
	if len(linked) != len(pending) {
		return &OutOfSequenceError{Got: int64(len(linked)), Want: int64(len(pending)), Count: true}
	}
	for i, r := range linked {
		if r.ID != pending[i].ID || r.Sequence != want+int64(i) {
			return &OutOfSequenceError{Got: r.Sequence, Want: want + int64(i)}
		}
	}
	return nil
}
