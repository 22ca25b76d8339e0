package audit

import (
	"fmt"

	"plinth.dev/plinth/capabilities/domainerr"
)

// RecordNotFound returns the error for an audit record id that does not
// exist.
func RecordNotFound(id string) error {
	return &domainerr.NotFoundError{Resource: "audit record", ID: id}
}

// OutOfSequenceError is what a Store's Chain returns when link gives back
// records that do not continue the chain: a sequence that does not follow
// the last one's, another record than the one waiting, or (Count) another
// number of records. The Service never does that; seeing it means a bug, or
// a second writer that bypasses Store.
type OutOfSequenceError struct {
	Got, Want int64
	// Count says that Got and Want are numbers of records, not sequences.
	Count bool
}

func (e *OutOfSequenceError) Error() string {
	if e.Count {
		return fmt.Sprintf("audit: %d records were linked where %d were waiting", e.Got, e.Want)
	}
	return fmt.Sprintf("audit: record %d cannot be chained: the next record is %d", e.Got, e.Want)
}

// Kind returns domainerr.KindAborted: the append lost a race it should not
// have been in, and may be retried whole.
func (e *OutOfSequenceError) Kind() domainerr.Kind { return domainerr.KindAborted }

var _ domainerr.Error = (*OutOfSequenceError)(nil)
