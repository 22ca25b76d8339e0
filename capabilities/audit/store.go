package audit

import "context"

// Store keeps the chain of records. Backends implement it; every
// implementation must pass audittest.Run.
//
// A Store never changes or removes a record it stored: it only appends.
// Get of an id no record has returns the error of RecordNotFound(id). A
// backend that cannot reach what it stores in returns a
// *domainerr.UnavailableError. Records returned never share memory with
// what the store holds; their times are in UTC and their empty lists nil.
type Store interface {
	// Append reads the last record (nil when the store is empty), calls
	// next with it and stores the record next returns, atomically and
	// serialized with every other Append: no record is stored between the
	// read and the write, so next can link to the last record. The stored
	// record's Sequence must be one more than the last's (1 for the first);
	// Append refuses anything else. If next returns an error, nothing is
	// stored and Append returns that error.
	Append(ctx context.Context, next func(last *Record) (Record, error)) (Record, error)

	// Get returns the record with the id.
	Get(ctx context.Context, id string) (Record, error)

	// List returns at most q.Limit records whose sequence is greater than
	// q.AfterSequence and that match q's filters, in sequence order.
	List(ctx context.Context, q Query) ([]Record, error)

	// Scan calls fn with every record in sequence order, as stored (a
	// record edited behind the store's back comes back edited; that is what
	// Scan is for). It stops at the first error fn returns and returns it.
	Scan(ctx context.Context, fn func(Record) error) error

	// LastSequence returns the sequence of the last record appended, as
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
