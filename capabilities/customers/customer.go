// Package customers is the customers domain: the people a product signs up,
// reviews and serves.
//
// The package holds the domain model (Customer and its lifecycle), the
// capabilities (Service, one method per rpc of plinth.customers.v1), the
// Store interface that backends implement, and the domain's typed errors.
// Backends live in customers/memory and customers/postgres; both pass the
// conformance suite in customers/customerstest.
package customers

import (
	"fmt"
	"time"
)

// Customer is a person a product serves.
type Customer struct {
	ID          string
	State       State
	StateReason string // the reason given with the last change of state
	Email       string // as the customer wrote it
	// EmailKey is what uniqueness and FindCustomerByEmail compare instead of
	// the email: see EmailIndex. Stores keep it unique.
	EmailKey  string
	Profile   Profile
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Profile is the sensitive (PII) part of a customer besides the email.
// Optional fields are empty when not given.
type Profile struct {
	Name        string
	Phone       string   // E.164
	DateOfBirth string   // YYYY-MM-DD
	Address     *Address // nil when not given
	TaxID       string
}

// Address is a postal address.
type Address struct {
	Line1       string `json:"line1"`
	Line2       string `json:"line2,omitempty"`
	City        string `json:"city"`
	Region      string `json:"region,omitempty"`
	PostalCode  string `json:"postal_code,omitempty"`
	CountryCode string `json:"country_code"`
}

// State is where a customer is in its lifecycle.
type State uint8

// The states of a customer. The zero value is not a state; in a listing
// filter it means every state.
const (
	StateUnspecified State = iota
	StatePending
	StateApproved
	StateRejected
	StateSuspended
	StateClosed
)

var stateNames = [...]string{"unspecified", "pending", "approved", "rejected", "suspended", "closed"}

// String returns the state's name in lower case, as stored in databases.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// ParseState returns the State named name (as String returns it).
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name && i != 0 {
			return State(i), nil
		}
	}
	return StateUnspecified, fmt.Errorf("unknown customer state %q", name)
}

// Action is a change of state a capability asks for.
type Action string

// The actions of the lifecycle, one per capability that changes state.
const (
	ActionApprove   Action = "approve"
	ActionReject    Action = "reject"
	ActionSuspend   Action = "suspend"
	ActionReinstate Action = "reinstate"
	ActionClose     Action = "close"
)

// lifecycle is the state machine: for each action, the states it may start
// from and the state it leads to. Anything not here is refused.
var lifecycle = map[Action]struct {
	from []State
	to   State
}{
	ActionApprove:   {from: []State{StatePending}, to: StateApproved},
	ActionReject:    {from: []State{StatePending}, to: StateRejected},
	ActionSuspend:   {from: []State{StateApproved}, to: StateSuspended},
	ActionReinstate: {from: []State{StateSuspended}, to: StateApproved},
	ActionClose:     {from: []State{StatePending, StateApproved, StateRejected, StateSuspended}, to: StateClosed},
}

// next returns the state that action leads to from s, or a
// *TransitionError for customer id if the lifecycle does not allow it.
func (s State) next(id string, action Action) (State, error) {
	rule, ok := lifecycle[action]
	if !ok {
		return s, fmt.Errorf("customers: unknown action %q", action)
	}
	for _, from := range rule.from {
		if from == s {
			return rule.to, nil
		}
	}
	return s, &TransitionError{CustomerID: id, Action: action, From: s, To: rule.to, AllowedFrom: rule.from}
}

// profileEditable reports whether a customer in state s may have its profile
// or email changed: not once rejected or closed.
func (s State) profileEditable() bool {
	return s == StatePending || s == StateApproved || s == StateSuspended
}
