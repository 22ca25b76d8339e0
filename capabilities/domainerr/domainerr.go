// Package domainerr holds what every domain's errors have in common: a Kind
// that says what sort of refusal an error is. Domains define their own error
// types (a customer's illegal transition, an account's insufficient funds)
// and give each a Kind; the gateway maps kinds to Connect codes in exactly one
// place (gateway/errors.go), so no capability picks codes by hand.
//
// The message of a domain error reaches the caller, so it must say what went
// wrong in words a product engineer can act on, and it must never hold a
// sensitive value (an email, a tax id): error messages end up in logs.
package domainerr

import (
	"errors"
	"fmt"
)

// Kind says what sort of refusal a domain error is.
type Kind uint8

const (
	// KindNotFound: the resource the caller named does not exist.
	KindNotFound Kind = iota + 1
	// KindAlreadyExists: the request would duplicate something unique.
	KindAlreadyExists
	// KindFailedPrecondition: the resource is not in a state that allows the
	// request; retrying will not help until its state changes.
	KindFailedPrecondition
	// KindInvalidArgument: the request is malformed in a way the contract's
	// validation rules cannot express (a date that does not exist, say).
	KindInvalidArgument
	// KindUnavailable: a dependency (the database, Vault) cannot be reached;
	// the caller may retry.
	KindUnavailable
	// KindAborted: the request lost a race with another one; the caller may
	// retry.
	KindAborted
)

// Error is implemented by every domain error.
type Error interface {
	error
	Kind() Kind
}

// Detailed is implemented by domain errors that carry machine-readable
// details: a stable reason such as "ILLEGAL_TRANSITION" and key-value facts
// such as {"from": "APPROVED", "to": "REJECTED"}. The gateway sends them as a
// google.rpc.ErrorInfo detail.
type Detailed interface {
	Reason() string
	Metadata() map[string]string
}

// KindOf returns the Kind of the first domain error in err's chain, and false
// if there is none.
func KindOf(err error) (Kind, bool) {
	if err == nil {
		return 0, false // before errors.As, whose target would cost an allocation
	}
	var de Error
	if errors.As(err, &de) {
		return de.Kind(), true
	}
	return 0, false
}

// NotFoundError says that a resource does not exist.
type NotFoundError struct {
	Resource string // "customer"
	ID       string // "cus_..."; empty when looked up by something else
}

func (e *NotFoundError) Error() string {
	if e.ID == "" {
		return fmt.Sprintf("%s not found", e.Resource)
	}
	return fmt.Sprintf("%s %s not found", e.Resource, e.ID)
}

// Kind returns KindNotFound.
func (e *NotFoundError) Kind() Kind { return KindNotFound }

// AlreadyExistsError says that a resource with the same id exists already.
type AlreadyExistsError struct {
	Resource string
	ID       string
}

func (e *AlreadyExistsError) Error() string {
	return fmt.Sprintf("%s %s already exists", e.Resource, e.ID)
}

// Kind returns KindAlreadyExists.
func (e *AlreadyExistsError) Kind() Kind { return KindAlreadyExists }

// InvalidArgumentError says that one field of a request has a value the
// domain refuses.
type InvalidArgumentError struct {
	Field       string // the request field, e.g. "date_of_birth"
	Description string // what is wrong, without repeating the value
}

func (e *InvalidArgumentError) Error() string {
	return fmt.Sprintf("%s: %s", e.Field, e.Description)
}

// Kind returns KindInvalidArgument.
func (e *InvalidArgumentError) Kind() Kind { return KindInvalidArgument }

// UnavailableError says that a dependency cannot be reached right now. Err is
// the cause, kept for logs; it never reaches the caller.
type UnavailableError struct {
	Dependency string // "database"
	Err        error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%s unavailable, try again later", e.Dependency)
}

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Kind returns KindUnavailable.
func (e *UnavailableError) Kind() Kind { return KindUnavailable }

// AbortedError says that the request lost a race with another one (a
// serialization failure, a deadlock) and was undone; the caller may retry
// it as it is. Err is the cause, kept for logs; it never reaches the caller.
type AbortedError struct {
	Err error
}

func (e *AbortedError) Error() string {
	return "the request conflicted with another one running at the same time and was undone; retry it"
}

// Unwrap returns the cause.
func (e *AbortedError) Unwrap() error { return e.Err }

// Kind returns KindAborted.
func (e *AbortedError) Kind() Kind { return KindAborted }
