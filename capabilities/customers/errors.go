package customers

import (
	"fmt"
	"strings"

	"plinth.dev/plinth/capabilities/domainerr"
)

// TransitionError refuses a change of state that the lifecycle does not
// allow. Its message names the state the customer is in and the one asked
// for.
type TransitionError struct {
	CustomerID  string
	Action      Action
	From, To    State
	AllowedFrom []State
}

func (e *TransitionError) Error() string {
	allowed := make([]string, len(e.AllowedFrom))
	for i, s := range e.AllowedFrom {
		allowed[i] = strings.ToUpper(s.String())
	}
	return fmt.Sprintf("customer %s cannot move from %s to %s: %s is allowed only from %s",
		e.CustomerID, strings.ToUpper(e.From.String()), strings.ToUpper(e.To.String()),
		e.Action, strings.Join(allowed, " or "))
}

// Kind returns domainerr.KindFailedPrecondition.
func (e *TransitionError) Kind() domainerr.Kind { return domainerr.KindFailedPrecondition }

// Reason returns "ILLEGAL_TRANSITION".
func (e *TransitionError) Reason() string { return "ILLEGAL_TRANSITION" }

// Metadata names the customer and both states.
func (e *TransitionError) Metadata() map[string]string {
	return map[string]string{
		"customer_id": e.CustomerID,
		"from":        "CUSTOMER_STATE_" + strings.ToUpper(e.From.String()),
		"to":          "CUSTOMER_STATE_" + strings.ToUpper(e.To.String()),
	}
}

// NotEditableError refuses a change to the profile or email of a customer
// who is rejected or closed.
type NotEditableError struct {
	CustomerID string
	State      State
}

func (e *NotEditableError) Error() string {
	return fmt.Sprintf("customer %s is %s, so its profile and email can no longer change",
		e.CustomerID, strings.ToUpper(e.State.String()))
}

// Kind returns domainerr.KindFailedPrecondition.
func (e *NotEditableError) Kind() domainerr.Kind { return domainerr.KindFailedPrecondition }

// Reason returns "CUSTOMER_NOT_EDITABLE".
func (e *NotEditableError) Reason() string { return "CUSTOMER_NOT_EDITABLE" }

// Metadata names the customer and its state.
func (e *NotEditableError) Metadata() map[string]string {
	return map[string]string{
		"customer_id": e.CustomerID,
		"state":       "CUSTOMER_STATE_" + strings.ToUpper(e.State.String()),
	}
}

// EmailTakenError refuses a sign-up or email change whose email (compared
// regardless of case) belongs to another customer. It does not repeat the
// email: messages end up in logs.
type EmailTakenError struct{}

func (e *EmailTakenError) Error() string {
	return "another customer already has this email (emails are compared regardless of case)"
}

// Kind returns domainerr.KindAlreadyExists.
func (e *EmailTakenError) Kind() domainerr.Kind { return domainerr.KindAlreadyExists }

// Reason returns "EMAIL_TAKEN".
func (e *EmailTakenError) Reason() string { return "EMAIL_TAKEN" }

// Metadata is empty: the only fact is the email, which is sensitive.
func (e *EmailTakenError) Metadata() map[string]string { return nil }

// NotFound returns the error for a customer id that does not exist.
func NotFound(id string) error { return &domainerr.NotFoundError{Resource: "customer", ID: id} }

var (
	_ domainerr.Error    = (*TransitionError)(nil)
	_ domainerr.Detailed = (*TransitionError)(nil)
	_ domainerr.Error    = (*NotEditableError)(nil)
	_ domainerr.Detailed = (*NotEditableError)(nil)
	_ domainerr.Error    = (*EmailTakenError)(nil)
)
