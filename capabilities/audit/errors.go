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

// OutOfSequenceError is what a Store returns when asked to append a record
// whose sequence does not follow the last one's. The Service never asks
// that; seeing it means a bug, or a second writer that bypasses Store.
type OutOfSequenceError struct {
	Got, Want int64
}

func (e *OutOfSequenceError) Error() string {
	return fmt.Sprintf("audit: record %d cannot be appended: the next record is %d", e.Got, e.Want)
}

// Kind returns domainerr.KindAborted: the append lost a race it should not
// have been in, and may be retried whole.
func (e *OutOfSequenceError) Kind() domainerr.Kind { return domainerr.KindAborted }

var _ domainerr.Error = (*OutOfSequenceError)(nil)
