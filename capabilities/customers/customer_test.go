// These tests are in package customers, not customers_test, because the
// lifecycle they check (State.next, State.profileEditable) and the proto
// conversions are unexported. The capabilities themselves are tested through
// the exported conformance suite, customerstest, which every backend runs.
package customers

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"plinth.dev/plinth/capabilities/domainerr"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
)

var (
	everyState  = []State{StateUnspecified, StatePending, StateApproved, StateRejected, StateSuspended, StateClosed}
	everyAction = []Action{ActionApprove, ActionReject, ActionSuspend, ActionReinstate, ActionClose}
)

// contractLifecycle is the diagram at the top of customers.proto, written out
// as a matrix: contractLifecycle[from][action] is the state action leads to
// from from. A missing entry is a move the lifecycle refuses.
var contractLifecycle = map[State]map[Action]State{
	StatePending:   {ActionApprove: StateApproved, ActionReject: StateRejected, ActionClose: StateClosed},
	StateApproved:  {ActionSuspend: StateSuspended, ActionClose: StateClosed},
	StateRejected:  {ActionClose: StateClosed},
	StateSuspended: {ActionReinstate: StateApproved, ActionClose: StateClosed},
	StateClosed:    {}, // final
}

// target is the state each action asks for.
var target = map[Action]State{
	ActionApprove:   StateApproved,
	ActionReject:    StateRejected,
	ActionSuspend:   StateSuspended,
	ActionReinstate: StateApproved,
	ActionClose:     StateClosed,
}

func TestLifecycle(t *testing.T) {
	const id = "cus_01JQ0000000000000000000001"
	for _, from := range everyState {
		for _, action := range everyAction {
			t.Run(fmt.Sprintf("%s/%s", from, action), func(t *testing.T) {
				got, err := from.next(id, action)
				if want, allowed := contractLifecycle[from][action]; allowed {
					if err != nil || got != want {
						t.Fatalf("next = %s, %v; want %s", got, err, want)
					}
					return
				}
				if got != from {
					t.Errorf("a refused move returned state %s, want the unchanged %s", got, from)
				}
				var te *TransitionError
				if !errors.As(err, &te) {
					t.Fatalf("next = %s, %v (%T); want a *TransitionError", got, err, err)
				}
				var wantAllowed []State
				for _, s := range everyState {
					if _, ok := contractLifecycle[s][action]; ok {
						wantAllowed = append(wantAllowed, s)
					}
				}
				if te.CustomerID != id || te.Action != action || te.From != from || te.To != target[action] ||
					!slices.Equal(te.AllowedFrom, wantAllowed) {
					t.Errorf("TransitionError = %+v, want {CustomerID:%s Action:%s From:%s To:%s AllowedFrom:%v}",
						*te, id, action, from, target[action], wantAllowed)
				}
				if kind, ok := domainerr.KindOf(err); !ok || kind != domainerr.KindFailedPrecondition {
					t.Errorf("KindOf = %v, %v; want KindFailedPrecondition", kind, ok)
				}
			})
		}
	}
}

func TestLifecycleHasOnlyTheContractsActions(t *testing.T) {
	if len(lifecycle) != len(everyAction) {
		t.Errorf("lifecycle has %d actions, the contract %d", len(lifecycle), len(everyAction))
	}
	for _, action := range everyAction {
		if _, ok := lifecycle[action]; !ok {
			t.Errorf("lifecycle has no rule for %s", action)
		}
	}
}

func TestLifecycleUnknownAction(t *testing.T) {
	got, err := StatePending.next("cus_1", Action("promote"))
	if err == nil || got != StatePending {
		t.Fatalf("next(promote) = %s, %v; want an error and PENDING", got, err)
	}
	var te *TransitionError
	if errors.As(err, &te) {
		t.Fatalf("an unknown action gave a TransitionError %q; it is a bug, not a refused move", err)
	}
	if _, ok := domainerr.KindOf(err); ok {
		t.Fatalf("an unknown action gave a domain error %q; it must surface as an internal error", err)
	}
}

func TestClosedIsFinal(t *testing.T) {
	for _, action := range everyAction {
		if got, err := StateClosed.next("cus_1", action); err == nil {
			t.Errorf("%s moved a CLOSED customer to %s", action, got)
		}
	}
}

func TestProfileEditable(t *testing.T) {
	want := map[State]bool{
		StateUnspecified: false,
		StatePending:     true,
		StateApproved:    true,
		StateRejected:    false,
		StateSuspended:   true,
		StateClosed:      false,
	}
	for _, s := range everyState {
		if got := s.profileEditable(); got != want[s] {
			t.Errorf("%s.profileEditable() = %v, want %v", s, got, want[s])
		}
	}
}

func TestTransitionErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		from   State
		action Action
		want   string
	}{
		{StateApproved, ActionReject, "customer cus_1 cannot move from APPROVED to REJECTED: reject is allowed only from PENDING"},
		{StatePending, ActionReinstate, "customer cus_1 cannot move from PENDING to APPROVED: reinstate is allowed only from SUSPENDED"},
		{StateSuspended, ActionApprove, "customer cus_1 cannot move from SUSPENDED to APPROVED: approve is allowed only from PENDING"},
		{StateClosed, ActionClose, "customer cus_1 cannot move from CLOSED to CLOSED: close is allowed only from PENDING or APPROVED or REJECTED or SUSPENDED"},
	} {
		_, err := tc.from.next("cus_1", tc.action)
		if err == nil {
			t.Fatalf("%s from %s was allowed", tc.action, tc.from)
		}
		if err.Error() != tc.want {
			t.Errorf("message = %q\nwant      %q", err, tc.want)
		}
	}
}

func TestTransitionErrorDetails(t *testing.T) {
	_, err := StateApproved.next("cus_1", ActionReject)
	wrapped := fmt.Errorf("rejecting: %w", err)

	var te *TransitionError
	if !errors.As(wrapped, &te) {
		t.Fatalf("errors.As(%v) found no *TransitionError", wrapped)
	}
	if kind, ok := domainerr.KindOf(wrapped); !ok || kind != domainerr.KindFailedPrecondition {
		t.Errorf("KindOf = %v, %v; want KindFailedPrecondition", kind, ok)
	}
	var detailed domainerr.Detailed
	if !errors.As(wrapped, &detailed) {
		t.Fatal("a TransitionError is not domainerr.Detailed")
	}
	if got := detailed.Reason(); got != "ILLEGAL_TRANSITION" {
		t.Errorf("Reason = %q, want ILLEGAL_TRANSITION", got)
	}
	md := detailed.Metadata()
	want := map[string]string{"customer_id": "cus_1", "from": "CUSTOMER_STATE_APPROVED", "to": "CUSTOMER_STATE_REJECTED"}
	if len(md) != len(want) {
		t.Errorf("Metadata = %v, want %v", md, want)
	}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("Metadata[%q] = %q, want %q", k, md[k], v)
		}
	}
	// The states in the metadata are the contract's enum names.
	for _, k := range []string{"from", "to"} {
		if _, ok := customersv1.CustomerState_value[md[k]]; !ok {
			t.Errorf("Metadata[%q] = %q is not a value of plinth.customers.v1.CustomerState", k, md[k])
		}
	}
}

func TestNotEditableError(t *testing.T) {
	var err error = &NotEditableError{CustomerID: "cus_1", State: StateRejected}
	if want := "customer cus_1 is REJECTED, so its profile and email can no longer change"; err.Error() != want {
		t.Errorf("message = %q\nwant      %q", err, want)
	}
	if kind, ok := domainerr.KindOf(err); !ok || kind != domainerr.KindFailedPrecondition {
		t.Errorf("KindOf = %v, %v; want KindFailedPrecondition", kind, ok)
	}
}

func TestEmailTakenError(t *testing.T) {
	var err error = &EmailTakenError{}
	if strings.Contains(err.Error(), "@") {
		t.Errorf("message %q looks like it holds an email, which is sensitive", err)
	}
	if !strings.Contains(err.Error(), "regardless of case") {
		t.Errorf("message %q does not say that case does not matter", err)
	}
	if kind, ok := domainerr.KindOf(err); !ok || kind != domainerr.KindAlreadyExists {
		t.Errorf("KindOf = %v, %v; want KindAlreadyExists", kind, ok)
	}
	var detailed domainerr.Detailed
	if !errors.As(err, &detailed) {
		t.Fatal("an EmailTakenError is not domainerr.Detailed")
	}
	if got := detailed.Reason(); got != "EMAIL_TAKEN" {
		t.Errorf("Reason = %q, want EMAIL_TAKEN", got)
	}
	if md := detailed.Metadata(); len(md) != 0 {
		t.Errorf("Metadata = %v, want none: the only fact is the email", md)
	}
}

func TestNotFound(t *testing.T) {
	err := NotFound("cus_1")
	var nf *domainerr.NotFoundError
	if !errors.As(err, &nf) || nf.Resource != "customer" || nf.ID != "cus_1" {
		t.Fatalf("NotFound(cus_1) = %#v, want a *domainerr.NotFoundError for customer cus_1", err)
	}
	if want := "customer cus_1 not found"; err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
	if kind, ok := domainerr.KindOf(err); !ok || kind != domainerr.KindNotFound {
		t.Errorf("KindOf = %v, %v; want KindNotFound", kind, ok)
	}
}

func TestStateNames(t *testing.T) {
	want := []string{"unspecified", "pending", "approved", "rejected", "suspended", "closed"}
	for i, s := range everyState {
		if s.String() != want[i] {
			t.Errorf("State(%d).String() = %q, want %q", s, s, want[i])
		}
		got, err := ParseState(s.String())
		if s == StateUnspecified {
			if err == nil {
				t.Errorf("ParseState(%q) = %s, want an error: it is not a state", s, got)
			}
			continue
		}
		if err != nil || got != s {
			t.Errorf("ParseState(%q) = %s, %v; want %s", s, got, err, s)
		}
	}
	for _, name := range []string{"", "PENDING", "Pending", "open", "State(1)"} {
		if got, err := ParseState(name); err == nil {
			t.Errorf("ParseState(%q) = %s, want an error", name, got)
		}
	}
	if got := State(42).String(); got != "State(42)" {
		t.Errorf("State(42).String() = %q", got)
	}
}

// TestStatesMatchProtoEnum checks what convert.go assumes: the domain's
// states and the contract's CustomerState values have the same numbers and
// names, with none missing on either side.
func TestStatesMatchProtoEnum(t *testing.T) {
	if len(everyState) != len(stateNames) {
		t.Fatalf("the test knows %d states, the domain names %d", len(everyState), len(stateNames))
	}
	for i := range stateNames {
		s := State(i)
		p := customersv1.CustomerState(s)
		if want := "CUSTOMER_STATE_" + strings.ToUpper(s.String()); p.String() != want {
			t.Errorf("State %d (%s) is %s in the contract, want %s", i, s, p, want)
		}
		if stateToProto(s) != p || stateFromProto(p) != s {
			t.Errorf("State %s converts to %s and back to %s", s, stateToProto(s), stateFromProto(stateToProto(s)))
		}
	}
	values := customersv1.CustomerState(0).Descriptor().Values()
	if values.Len() != len(stateNames) {
		t.Errorf("the contract has %d CustomerState values, the domain %d states", values.Len(), len(stateNames))
	}
	for i := range values.Len() {
		v := values.Get(i)
		s := stateFromProto(customersv1.CustomerState(v.Number()))
		if int(s) >= len(stateNames) {
			t.Errorf("contract value %s (%d) has no domain State", v.Name(), v.Number())
			continue
		}
		if want := "CUSTOMER_STATE_" + strings.ToUpper(s.String()); string(v.Name()) != want {
			t.Errorf("contract value %s (%d) is domain state %s, want it named %s", v.Name(), v.Number(), s, want)
		}
	}
}

func TestCaseInsensitiveEmailKey(t *testing.T) {
	same := []string{"Ada@Example.com", "ada@example.com", "ADA@EXAMPLE.COM", " ada@EXAMPLE.com "}
	for _, e := range same {
		if got, want := CaseInsensitiveEmailKey(e), CaseInsensitiveEmailKey(same[0]); got != want {
			t.Errorf("key(%q) = %q, key(%q) = %q; want them equal", e, got, same[0], want)
		}
	}
	for _, other := range []string{"ada@example.org", "ada.@example.com", "da@example.com"} {
		if CaseInsensitiveEmailKey(other) == CaseInsensitiveEmailKey(same[0]) {
			t.Errorf("key(%q) equals key(%q)", other, same[0])
		}
	}
}
