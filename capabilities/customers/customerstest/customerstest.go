// Package customerstest is the conformance suite of the customers domain:
// every customers.Store must pass Run, the memory backend included, in the
// spirit of SpiceDB's pkg/datastore/test.
//
//	func TestConformance(t *testing.T) {
//		customerstest.Run(t, func(t *testing.T) customers.Store { return memory.New() })
//	}
//
// The suite drives the capabilities (the methods of customers.Service, one
// per rpc of plinth.customers.v1) over a fresh store per subtest, so every
// domain rule is exercised through the backend just as the gateway exercises
// it; where the Store interface promises more than the capabilities show, it
// calls the Store directly. Timestamps come from a clock the suite controls.
//
// Every subtest runs in parallel with the others on its own store, and keeps
// its work modest (at most a couple of hundred customers, 32 concurrent
// callers), so that a backend over a real database runs it in seconds.
package customerstest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"plinth.dev/plinth/capabilities/customers"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/pagetoken"
	"plinth.dev/plinth/internal/pagetoken/pagetokentest"
	"plinth.dev/plinth/internal/testclock"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
)

// Run runs the conformance suite against the Store that newStore returns.
// newStore is called once per subtest, possibly from several subtests at
// once, and must return an empty store of its own each time.
func Run(t *testing.T, newStore func(t *testing.T) customers.Store) {
	s := suite{newStore: newStore}

	s.run(t, "SignUpCustomer/AllFieldsRoundTrip", testSignUpAllFields)
	s.run(t, "SignUpCustomer/OptionalFieldsEmpty", testSignUpOptionalFieldsEmpty)
	s.run(t, "SignUpCustomer/DistinctIDs", testSignUpDistinctIDs)
	s.run(t, "SignUpCustomer/EmailTakenRegardlessOfCase", testSignUpEmailTaken)
	s.run(t, "SignUpCustomer/InvalidDateOfBirth", testSignUpInvalidDateOfBirth)
	s.run(t, "SignUpCustomer/ConcurrentSameEmail", testConcurrentSignUpSameEmail)
	s.run(t, "SignUpCustomer/ConcurrentDistinctEmails", testConcurrentSignUpDistinctEmails)

	s.run(t, "GetCustomer/Unknown", testGetUnknown)
	s.run(t, "UnknownCustomer", testMutationsOfUnknownCustomer)

	s.run(t, "UpdateCustomerProfile/OnlySetFieldsChange", testUpdateProfile)
	s.run(t, "UpdateCustomerProfile/InvalidDateOfBirth", testUpdateProfileInvalidDateOfBirth)
	s.run(t, "UpdateCustomerProfile/ConcurrentUpdatesNotLost", testConcurrentProfileUpdates)

	s.run(t, "ChangeCustomerEmail/FreesOldEmail", testChangeEmail)
	s.run(t, "ChangeCustomerEmail/OwnEmailInAnotherCase", testChangeEmailOwnInAnotherCase)
	s.run(t, "ChangeCustomerEmail/EmailTakenRegardlessOfCase", testChangeEmailTaken)
	s.run(t, "ChangeCustomerEmail/ConcurrentSameEmail", testConcurrentChangeEmailSameEmail)

	s.run(t, "FindCustomerByEmail/RegardlessOfCase", testFindByEmail)
	s.run(t, "FindCustomerByEmail/Unknown", testFindByEmailUnknown)

	s.run(t, "Lifecycle/Walk", testLifecycleWalk)
	s.run(t, "Lifecycle/EveryStateTimesEveryAction", testEveryTransition)
	s.run(t, "Lifecycle/ProfileEditableByState", testProfileEditableByState)
	s.run(t, "Lifecycle/ConcurrentApproveAndReject", testConcurrentApproveReject)
	s.run(t, "Lifecycle/ConcurrentClose", testConcurrentClose)

	s.run(t, "ListCustomers/PageSizes", testListPageSizes)
	s.run(t, "ListCustomers/EveryCustomerOnceInIDOrder", testListEveryCustomerOnce)
	s.run(t, "ListCustomers/Empty", testListEmpty)
	s.run(t, "ListCustomers/FilterByState", testListFilterByState)
	s.run(t, "ListCustomers/PageTokenOfAnotherFilter", testListTokenOfAnotherFilter)
	s.run(t, "ListCustomers/GarbagePageToken", testListGarbageToken)
	s.run(t, "ListCustomers/ForgedPageToken", testListForgedToken)
	s.run(t, "ListCustomers/WhileSigningUp", testListWhileSigningUp)

	s.run(t, "Store/GetAndUpdateUnknown", testStoreUnknown)
	s.run(t, "Store/CreateRoundTrip", testStoreCreateRoundTrip)
	s.run(t, "Store/EmailKeyUnique", testStoreEmailKeyUnique)
	s.run(t, "Store/FailedChangeStoresNothing", testStoreFailedChange)
	s.run(t, "Store/ResultsNotShared", testStoreResultsNotShared)
	s.run(t, "Store/ListAfterAnyID", testStoreListAfterAnyID)
}

// suite runs each test over a harness of its own.
type suite struct {
	newStore func(t *testing.T) customers.Store
}

func (s suite) run(t *testing.T, name string, test func(t *testing.T, h *harness)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		test(t, newHarness(t, s.newStore(t)))
	})
}

// epoch is where the suite's clock starts: a fixed instant with nanoseconds,
// finer than the microseconds the service keeps.
var epoch = time.Date(2025, time.March, 14, 15, 9, 26, 535897932, time.UTC)

// stamp is the timestamp a customer carries when it is written at t: the
// service keeps microseconds, the precision every store keeps.
func stamp(t time.Time) *timestamppb.Timestamp {
	return timestamppb.New(t.UTC().Truncate(time.Microsecond))
}

// harness is the service over one store, with its clock.
type harness struct {
	store customers.Store
	svc   *customers.Service
	clock *testclock.Clock
	seq   atomic.Int64 // numbers the emails of customers the suite makes up
}

func newHarness(t *testing.T, store customers.Store) *harness {
	t.Helper()
	if store == nil {
		t.Fatal("newStore returned a nil store")
	}
	c := testclock.New(epoch)
	return &harness{store: store, svc: customers.NewService(store, customers.WithClock(c.Now), customers.WithPageTokens(tokens(t, pagetokentest.Key))), clock: c}
}

// tokens returns a page-token Codec with key: the same key stands for the
// gateways of one deployment, another key for another deployment.
func tokens(t *testing.T, key []byte) *pagetoken.Codec {
	t.Helper()
	c, err := pagetoken.NewCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// email returns an email no other customer of this harness has.
func (h *harness) email() string {
	return fmt.Sprintf("customer%04d@example.com", h.seq.Add(1))
}

// signUp signs a customer up and fails the test if that fails.
func (h *harness) signUp(t *testing.T, req *customersv1.SignUpCustomerRequest) *customersv1.Customer {
	t.Helper()
	res, err := h.svc.SignUpCustomer(t.Context(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("SignUpCustomer: %v", err)
	}
	return res.Msg.GetCustomer()
}

// newCustomer signs up a pending customer with a fresh email and no
// optional fields.
func (h *harness) newCustomer(t *testing.T) *customersv1.Customer {
	t.Helper()
	return h.signUp(t, &customersv1.SignUpCustomerRequest{Name: "Grace Hopper", Email: h.email()})
}

// get returns the customer with the id, failing the test if it can't.
func (h *harness) get(t *testing.T, id string) *customersv1.Customer {
	t.Helper()
	res, err := h.svc.GetCustomer(t.Context(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: id}))
	if err != nil {
		t.Fatalf("GetCustomer(%s): %v", id, err)
	}
	return res.Msg.GetCustomer()
}

func (h *harness) find(ctx context.Context, email string) (*customersv1.Customer, error) {
	res, err := h.svc.FindCustomerByEmail(ctx, connect.NewRequest(&customersv1.FindCustomerByEmailRequest{Email: email}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetCustomer(), nil
}

func (h *harness) update(ctx context.Context, req *customersv1.UpdateCustomerProfileRequest) (*customersv1.Customer, error) {
	res, err := h.svc.UpdateCustomerProfile(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetCustomer(), nil
}

func (h *harness) changeEmail(ctx context.Context, id, email string) (*customersv1.Customer, error) {
	res, err := h.svc.ChangeCustomerEmail(ctx, connect.NewRequest(&customersv1.ChangeCustomerEmailRequest{CustomerId: id, NewEmail: email}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetCustomer(), nil
}

// act applies a lifecycle action through its capability. Actions that take
// a reason are given reasonFor(action).
func (h *harness) act(ctx context.Context, action customers.Action, id string) (*customersv1.Customer, error) {
	reason := reasonFor(action)
	switch action {
	case customers.ActionApprove:
		res, err := h.svc.ApproveCustomer(ctx, connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: id}))
		if err != nil {
			return nil, err
		}
		return res.Msg.GetCustomer(), nil
	case customers.ActionReject:
		res, err := h.svc.RejectCustomer(ctx, connect.NewRequest(&customersv1.RejectCustomerRequest{CustomerId: id, Reason: reason}))
		if err != nil {
			return nil, err
		}
		return res.Msg.GetCustomer(), nil
	case customers.ActionSuspend:
		res, err := h.svc.SuspendCustomer(ctx, connect.NewRequest(&customersv1.SuspendCustomerRequest{CustomerId: id, Reason: reason}))
		if err != nil {
			return nil, err
		}
		return res.Msg.GetCustomer(), nil
	case customers.ActionReinstate:
		res, err := h.svc.ReinstateCustomer(ctx, connect.NewRequest(&customersv1.ReinstateCustomerRequest{CustomerId: id}))
		if err != nil {
			return nil, err
		}
		return res.Msg.GetCustomer(), nil
	case customers.ActionClose:
		res, err := h.svc.CloseCustomer(ctx, connect.NewRequest(&customersv1.CloseCustomerRequest{CustomerId: id, Reason: reason}))
		if err != nil {
			return nil, err
		}
		return res.Msg.GetCustomer(), nil
	}
	return nil, fmt.Errorf("customerstest: no capability for action %q", action)
}

// mustAct applies an action that the lifecycle allows.
func (h *harness) mustAct(t *testing.T, action customers.Action, id string) *customersv1.Customer {
	t.Helper()
	c, err := h.act(t.Context(), action, id)
	if err != nil {
		t.Fatalf("%s %s: %v", action, id, err)
	}
	return c
}

// customerIn signs up a customer and drives it into state through the
// capabilities.
func (h *harness) customerIn(t *testing.T, state customers.State) *customersv1.Customer {
	t.Helper()
	c := h.newCustomer(t)
	for _, action := range pathTo[state] {
		c = h.mustAct(t, action, c.GetId())
	}
	if c.GetState() != protoState[state] {
		t.Fatalf("driving a customer to %s left it %s", state, c.GetState())
	}
	return c
}

// list reads one page, failing the test if that fails.
func (h *harness) list(t *testing.T, req *customersv1.ListCustomersRequest) *customersv1.ListCustomersResponse {
	t.Helper()
	res, err := h.svc.ListCustomers(t.Context(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("ListCustomers(page_size=%d, state=%s): %v", req.GetPageSize(), req.GetState(), err)
	}
	return res.Msg
}

// listAll pages through every customer in state (every state if
// StateUnspecified) and returns the pages. It checks what every page must
// satisfy: no more than the page size, a token on every page but the last.
func (h *harness) listAll(t *testing.T, pageSize int32, state customers.State) [][]*customersv1.Customer {
	t.Helper()
	want := int(pageSize)
	if want == 0 {
		want = customers.DefaultPageSize
	}
	want = min(want, customers.MaxPageSize)
	var pages [][]*customersv1.Customer
	token := ""
	for {
		if len(pages) > 1000 {
			t.Fatalf("listing with page_size %d did not end after %d pages", pageSize, len(pages))
		}
		res := h.list(t, &customersv1.ListCustomersRequest{PageSize: pageSize, PageToken: token, State: protoState[state]})
		pages = append(pages, res.GetCustomers())
		if len(res.GetCustomers()) > want {
			t.Fatalf("page %d has %d customers, more than page_size %d allows (%d)", len(pages), len(res.GetCustomers()), pageSize, want)
		}
		if res.GetNextPageToken() == "" {
			return pages
		}
		if len(res.GetCustomers()) < want {
			t.Fatalf("page %d has %d customers and a next_page_token, want a full page of %d", len(pages), len(res.GetCustomers()), want)
		}
		token = res.GetNextPageToken()
	}
}

// seed signs up n customers, 16 at a time, and returns their ids in
// ascending order.
func (h *harness) seed(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				res, err := h.svc.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
					Name: fmt.Sprintf("Seeded %d", i), Email: h.email(),
				}))
				if err != nil {
					errs[i] = err
					continue
				}
				ids[i] = res.Msg.GetCustomer().GetId()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("seeding %d customers: %v", n, err)
	}
	slices.Sort(ids)
	return ids
}

// protoState is the contract's name of every domain state, written out here
// so that the suite checks the service's conversion rather than repeating it.
var protoState = map[customers.State]customersv1.CustomerState{
	customers.StateUnspecified: customersv1.CustomerState_CUSTOMER_STATE_UNSPECIFIED,
	customers.StatePending:     customersv1.CustomerState_CUSTOMER_STATE_PENDING,
	customers.StateApproved:    customersv1.CustomerState_CUSTOMER_STATE_APPROVED,
	customers.StateRejected:    customersv1.CustomerState_CUSTOMER_STATE_REJECTED,
	customers.StateSuspended:   customersv1.CustomerState_CUSTOMER_STATE_SUSPENDED,
	customers.StateClosed:      customersv1.CustomerState_CUSTOMER_STATE_CLOSED,
}

// states and actions are every state a customer can be in and every action
// of the lifecycle.
var (
	states  = []customers.State{customers.StatePending, customers.StateApproved, customers.StateRejected, customers.StateSuspended, customers.StateClosed}
	actions = []customers.Action{customers.ActionApprove, customers.ActionReject, customers.ActionSuspend, customers.ActionReinstate, customers.ActionClose}
)

// lifecycle is the diagram at the top of customers.proto written out again:
// for each action, the states it may start from and the state it leads to.
// The suite checks the domain against the contract, not against itself.
var lifecycle = map[customers.Action]struct {
	from []customers.State
	to   customers.State
}{
	customers.ActionApprove:   {from: []customers.State{customers.StatePending}, to: customers.StateApproved},
	customers.ActionReject:    {from: []customers.State{customers.StatePending}, to: customers.StateRejected},
	customers.ActionSuspend:   {from: []customers.State{customers.StateApproved}, to: customers.StateSuspended},
	customers.ActionReinstate: {from: []customers.State{customers.StateSuspended}, to: customers.StateApproved},
	customers.ActionClose: {
		from: []customers.State{customers.StatePending, customers.StateApproved, customers.StateRejected, customers.StateSuspended},
		to:   customers.StateClosed,
	},
}

// pathTo is how the suite drives a new (pending) customer into each state.
var pathTo = map[customers.State][]customers.Action{
	customers.StatePending:   nil,
	customers.StateApproved:  {customers.ActionApprove},
	customers.StateRejected:  {customers.ActionReject},
	customers.StateSuspended: {customers.ActionApprove, customers.ActionSuspend},
	customers.StateClosed:    {customers.ActionClose},
}

// reasonFor is the reason the suite gives with action; approving and
// reinstating take none.
func reasonFor(action customers.Action) string {
	switch action {
	case customers.ActionReject, customers.ActionSuspend, customers.ActionClose:
		return "reason for " + string(action)
	}
	return ""
}

var idPattern = regexp.MustCompile(`^cus_[0-9A-Z]{26}$`)

// errorAs returns the first error in err's chain that is an E, failing the
// test if there is none.
func errorAs[E error](t *testing.T, err error) E {
	t.Helper()
	var target E
	if err == nil {
		t.Fatalf("got no error, want a %T", target)
	}
	if !errors.As(err, &target) {
		t.Fatalf("got error %q (%T), want a %T", err, err, target)
	}
	return target
}

// wantKind fails the test unless err is a domain error of kind.
func wantKind(t *testing.T, err error, kind domainerr.Kind) {
	t.Helper()
	got, ok := domainerr.KindOf(err)
	if !ok {
		t.Fatalf("error %q (%T) is not a domain error, want kind %d", err, err, kind)
	}
	if got != kind {
		t.Fatalf("error %q has kind %d, want %d", err, got, kind)
	}
}

func wantNotFound(t *testing.T, err error, id string) {
	t.Helper()
	nf := errorAs[*domainerr.NotFoundError](t, err)
	if id != "" && nf.ID != id {
		t.Fatalf("NotFoundError.ID = %q, want %q", nf.ID, id)
	}
	wantKind(t, err, domainerr.KindNotFound)
}

func wantEmailTaken(t *testing.T, err error, email string) {
	t.Helper()
	errorAs[*customers.EmailTakenError](t, err)
	wantKind(t, err, domainerr.KindAlreadyExists)
	if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(email)) {
		t.Fatalf("error %q repeats the email, which is sensitive", err)
	}
}

func wantInvalidArgument(t *testing.T, err error, field string) {
	t.Helper()
	ia := errorAs[*domainerr.InvalidArgumentError](t, err)
	if ia.Field != field {
		t.Fatalf("InvalidArgumentError.Field = %q, want %q (error %q)", ia.Field, field, err)
	}
	wantKind(t, err, domainerr.KindInvalidArgument)
}

func wantNotEditable(t *testing.T, err error, id string, state customers.State) {
	t.Helper()
	ne := errorAs[*customers.NotEditableError](t, err)
	if ne.CustomerID != id || ne.State != state {
		t.Fatalf("NotEditableError{CustomerID: %q, State: %s}, want {%q, %s}", ne.CustomerID, ne.State, id, state)
	}
	wantKind(t, err, domainerr.KindFailedPrecondition)
}

// wantSame fails the test unless got and want are the same customer, field
// for field.
func wantSame(t *testing.T, what string, got, want *customersv1.Customer) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// wantUnchanged fails the test unless the stored customer is still want.
func (h *harness) wantUnchanged(t *testing.T, want *customersv1.Customer) {
	t.Helper()
	wantSame(t, "stored customer after a refused request", h.get(t, want.GetId()), want)
}

// wantEmailFree fails the test unless no customer has email, checked by
// looking it up and by signing a new customer up with it.
func (h *harness) wantEmailFree(t *testing.T, email string) {
	t.Helper()
	_, err := h.find(t.Context(), email)
	wantNotFound(t, err, "")
	c := h.signUp(t, &customersv1.SignUpCustomerRequest{Name: "Newcomer", Email: email})
	if found, err := h.find(t.Context(), email); err != nil || found.GetId() != c.GetId() {
		t.Fatalf("FindCustomerByEmail after signing up with a freed email = %v, %v; want %s", found, err, c.GetId())
	}
}

// wantOwner fails the test unless email (in any case) belongs to want.
func (h *harness) wantOwner(t *testing.T, email string, want *customersv1.Customer) {
	t.Helper()
	for _, e := range []string{email, strings.ToUpper(email), strings.ToLower(email)} {
		got, err := h.find(t.Context(), e)
		if err != nil {
			t.Fatalf("FindCustomerByEmail(%q): %v", e, err)
		}
		wantSame(t, fmt.Sprintf("FindCustomerByEmail(%q)", e), got, want)
	}
}

func fullSignUp(email string) *customersv1.SignUpCustomerRequest {
	return &customersv1.SignUpCustomerRequest{
		Name:        "Ada King, Countess of Lovelace",
		Email:       email,
		Phone:       "+442071234567",
		DateOfBirth: "1815-12-10",
		Address: &customersv1.Address{
			Line1:       "12 St James's Square",
			Line2:       "Flat 3",
			City:        "London",
			Region:      "Greater London",
			PostalCode:  "SW1Y 4JH",
			CountryCode: "GB",
		},
		TaxId: "AB123456C",
	}
}

// caseVariant returns s with the case of its letters flipped to upper case
// where the matching bit of bits is set.
func caseVariant(s string, bits int) string {
	r := []rune(s)
	n := 0
	for i, c := range r {
		if unicode.IsLetter(c) {
			if bits>>n&1 == 1 {
				r[i] = unicode.ToUpper(c)
			}
			n++
		}
	}
	return string(r)
}

// --- SignUpCustomer --------------------------------------------------------

func testSignUpAllFields(t *testing.T, h *harness) {
	req := fullSignUp("Ada@Example.com")
	got := h.signUp(t, req)

	if !idPattern.MatchString(got.GetId()) {
		t.Errorf("id %q does not match %s", got.GetId(), idPattern)
	}
	want := &customersv1.Customer{
		Id:          got.GetId(),
		State:       customersv1.CustomerState_CUSTOMER_STATE_PENDING,
		Name:        req.GetName(),
		Email:       "Ada@Example.com", // as written, not normalised
		Phone:       req.GetPhone(),
		DateOfBirth: req.GetDateOfBirth(),
		Address:     proto.CloneOf(req.GetAddress()),
		TaxId:       req.GetTaxId(),
		CreatedAt:   stamp(epoch),
		UpdatedAt:   stamp(epoch),
	}
	wantSame(t, "SignUpCustomer", got, want)
	wantSame(t, "GetCustomer after SignUpCustomer", h.get(t, got.GetId()), want)
	h.wantOwner(t, "Ada@Example.com", want)

	// The clock moving on changes nothing stored.
	h.clock.Advance(time.Hour)
	wantSame(t, "GetCustomer an hour later", h.get(t, got.GetId()), want)
}

func testSignUpOptionalFieldsEmpty(t *testing.T, h *harness) {
	// Only the required fields.
	got := h.signUp(t, &customersv1.SignUpCustomerRequest{Name: "Grace Hopper", Email: "grace@example.com"})
	want := &customersv1.Customer{
		Id:        got.GetId(),
		State:     customersv1.CustomerState_CUSTOMER_STATE_PENDING,
		Name:      "Grace Hopper",
		Email:     "grace@example.com",
		CreatedAt: stamp(epoch),
		UpdatedAt: stamp(epoch),
	}
	wantSame(t, "SignUpCustomer with no optional fields", got, want)
	wantSame(t, "GetCustomer", h.get(t, got.GetId()), want)
	if got.GetAddress() != nil {
		t.Errorf("address = %v, want absent", got.GetAddress())
	}

	// An address with only its required parts keeps its optional parts empty.
	req := &customersv1.SignUpCustomerRequest{
		Name:    "Katherine Johnson",
		Email:   "katherine@example.com",
		Address: &customersv1.Address{Line1: "1 Main St", City: "White Sulphur Springs"},
	}
	got = h.signUp(t, req)
	want = &customersv1.Customer{
		Id:        got.GetId(),
		State:     customersv1.CustomerState_CUSTOMER_STATE_PENDING,
		Name:      req.GetName(),
		Email:     req.GetEmail(),
		Address:   proto.CloneOf(req.GetAddress()),
		CreatedAt: stamp(epoch),
		UpdatedAt: stamp(epoch),
	}
	wantSame(t, "SignUpCustomer with a minimal address", got, want)
	wantSame(t, "GetCustomer", h.get(t, got.GetId()), want)
}

func testSignUpDistinctIDs(t *testing.T, h *harness) {
	seen := map[string]bool{}
	for range 20 {
		c := h.newCustomer(t)
		if seen[c.GetId()] {
			t.Fatalf("id %s given twice", c.GetId())
		}
		seen[c.GetId()] = true
	}
}

func testSignUpEmailTaken(t *testing.T, h *harness) {
	first := h.signUp(t, fullSignUp("Ada@Example.com"))
	for _, email := range []string{"Ada@Example.com", "ada@example.com", "ADA@EXAMPLE.COM", "aDa@eXaMpLe.CoM"} {
		_, err := h.svc.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Impostor", Email: email}))
		wantEmailTaken(t, err, email)
	}
	h.wantOwner(t, "ada@example.com", first)
	pages := h.listAll(t, 0, customers.StateUnspecified)
	if len(pages) != 1 || len(pages[0]) != 1 {
		t.Fatalf("after refused sign-ups, listing = %v; want only the first customer", pages)
	}
	// Another email is still welcome.
	h.signUp(t, &customersv1.SignUpCustomerRequest{Name: "Charles Babbage", Email: "charles@example.com"})
}

func testSignUpInvalidDateOfBirth(t *testing.T, h *harness) {
	tomorrow := h.clock.Now().AddDate(0, 0, 1).Format(time.DateOnly)
	for _, dob := range []string{"2023-02-30", "2023-13-01", "2023-00-10", "1999-04-31", "2023-02-29", tomorrow, "2999-01-01"} {
		email := h.email()
		req := fullSignUp(email)
		req.DateOfBirth = dob
		_, err := h.svc.SignUpCustomer(t.Context(), connect.NewRequest(req))
		wantInvalidArgument(t, err, "date_of_birth")
		if strings.Contains(err.Error(), dob) {
			t.Errorf("error %q repeats the date of birth, which is sensitive", err)
		}
		// Nothing was stored: the email is still free.
		h.wantEmailFree(t, email)
	}
	// Real dates in the past, today included, are fine.
	today := h.clock.Now().Format(time.DateOnly)
	for _, dob := range []string{"2024-02-29", "2000-02-29", "1900-01-01", today} {
		req := fullSignUp(h.email())
		req.DateOfBirth = dob
		if c := h.signUp(t, req); c.GetDateOfBirth() != dob {
			t.Errorf("date_of_birth = %q, want %q", c.GetDateOfBirth(), dob)
		}
	}
}

func testConcurrentSignUpSameEmail(t *testing.T, h *harness) {
	const n = 32
	base := "race.winner@example.com"
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		won   = make([]*customersv1.Customer, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			res, err := h.svc.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
				Name: fmt.Sprintf("Racer %d", i), Email: caseVariant(base, i),
			}))
			if err != nil {
				errs[i] = err
				return
			}
			won[i] = res.Msg.GetCustomer()
		})
	}
	close(start)
	wg.Wait()

	var winner *customersv1.Customer
	for i := range n {
		if errs[i] != nil {
			wantEmailTaken(t, errs[i], base)
			continue
		}
		if winner != nil {
			t.Fatalf("two sign-ups with the same email succeeded: %s and %s", winner.GetId(), won[i].GetId())
		}
		winner = won[i]
	}
	if winner == nil {
		t.Fatal("no sign-up succeeded")
	}
	h.wantOwner(t, base, winner)

	// Exactly one customer holds the key, as the store sees it: the
	// store's own blind index if it keeps one, else the lower-cased email.
	key := customers.CaseInsensitiveEmailKey(base)
	if keyer, ok := h.store.(customers.EmailKeyer); ok {
		var err error
		if key, err = keyer.EmailKey(t.Context(), base); err != nil {
			t.Fatalf("EmailKey: %v", err)
		}
	}
	all, err := h.store.List(t.Context(), customers.ListQuery{Limit: 10 * n})
	if err != nil {
		t.Fatalf("Store.List: %v", err)
	}
	holders := 0
	for _, c := range all {
		if c.EmailKey == key {
			holders++
		}
	}
	if holders != 1 || len(all) != 1 {
		t.Fatalf("store holds %d customers, %d of them with the raced email; want exactly 1", len(all), holders)
	}
	if c, err := h.store.GetByEmailKey(t.Context(), key); err != nil || c.ID != winner.GetId() {
		t.Fatalf("Store.GetByEmailKey = %s, %v; want %s", c.ID, err, winner.GetId())
	}
}

func testConcurrentSignUpDistinctEmails(t *testing.T, h *harness) {
	const n = 32
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		ids   = make([]string, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			res, err := h.svc.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
				Name: fmt.Sprintf("Crowd %d", i), Email: fmt.Sprintf("crowd%02d@example.com", i),
			}))
			if err != nil {
				errs[i] = err
				return
			}
			ids[i] = res.Msg.GetCustomer().GetId()
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent sign-ups with distinct emails: %v", err)
	}
	for i, id := range ids {
		c, err := h.find(t.Context(), fmt.Sprintf("CROWD%02d@example.com", i))
		if err != nil || c.GetId() != id {
			t.Fatalf("FindCustomerByEmail(crowd%02d) = %v, %v; want %s", i, c, err, id)
		}
	}
	var listed []string
	for _, page := range h.listAll(t, 0, customers.StateUnspecified) {
		for _, c := range page {
			listed = append(listed, c.GetId())
		}
	}
	slices.Sort(ids)
	if !slices.Equal(listed, ids) {
		t.Fatalf("listing = %v, want the %d signed up %v", listed, n, ids)
	}
}

// --- GetCustomer and unknown customers -------------------------------------

// unknownID is well formed, but no customer has it.
const unknownID = "cus_00000000000000000000000000"

func testGetUnknown(t *testing.T, h *harness) {
	h.newCustomer(t) // a store that is not empty
	_, err := h.svc.GetCustomer(t.Context(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: unknownID}))
	wantNotFound(t, err, unknownID)
	if nf := errorAs[*domainerr.NotFoundError](t, err); nf.Resource != "customer" {
		t.Errorf("NotFoundError.Resource = %q, want %q", nf.Resource, "customer")
	}
}

func testMutationsOfUnknownCustomer(t *testing.T, h *harness) {
	h.newCustomer(t)
	ctx := t.Context()
	_, err := h.update(ctx, &customersv1.UpdateCustomerProfileRequest{CustomerId: unknownID, Name: proto.String("Nobody")})
	wantNotFound(t, err, unknownID)
	_, err = h.changeEmail(ctx, unknownID, "nobody@example.com")
	wantNotFound(t, err, unknownID)
	for _, action := range actions {
		_, err := h.act(ctx, action, unknownID)
		wantNotFound(t, err, unknownID)
	}
	// Nothing was created on the way.
	h.wantEmailFree(t, "nobody@example.com")
	_, err = h.svc.GetCustomer(ctx, connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: unknownID}))
	wantNotFound(t, err, unknownID)
}

// --- UpdateCustomerProfile -------------------------------------------------

func testUpdateProfile(t *testing.T, h *harness) {
	ctx := t.Context()
	want := h.signUp(t, fullSignUp("ada@example.com"))

	steps := []struct {
		name   string
		req    *customersv1.UpdateCustomerProfileRequest
		change func(c *customersv1.Customer)
	}{
		{
			name:   "name only",
			req:    &customersv1.UpdateCustomerProfileRequest{Name: proto.String("Ada Lovelace")},
			change: func(c *customersv1.Customer) { c.Name = "Ada Lovelace" },
		},
		{
			name:   "phone only",
			req:    &customersv1.UpdateCustomerProfileRequest{Phone: proto.String("+14155550100")},
			change: func(c *customersv1.Customer) { c.Phone = "+14155550100" },
		},
		{
			name: "address only",
			req: &customersv1.UpdateCustomerProfileRequest{Address: &customersv1.Address{
				Line1: "1 Infinite Loop", City: "Cupertino", Region: "CA", PostalCode: "95014", CountryCode: "US",
			}},
			change: func(c *customersv1.Customer) {
				c.Address = &customersv1.Address{Line1: "1 Infinite Loop", City: "Cupertino", Region: "CA", PostalCode: "95014", CountryCode: "US"}
			},
		},
		{
			name:   "date of birth and tax id",
			req:    &customersv1.UpdateCustomerProfileRequest{DateOfBirth: proto.String("1816-01-01"), TaxId: proto.String("123-45-6789")},
			change: func(c *customersv1.Customer) { c.DateOfBirth = "1816-01-01"; c.TaxId = "123-45-6789" },
		},
		{
			name: "empty strings clear phone, date of birth and tax id",
			req: &customersv1.UpdateCustomerProfileRequest{
				Phone: proto.String(""), DateOfBirth: proto.String(""), TaxId: proto.String(""),
			},
			change: func(c *customersv1.Customer) { c.Phone = ""; c.DateOfBirth = ""; c.TaxId = "" },
		},
		{
			name:   "set again after clearing",
			req:    &customersv1.UpdateCustomerProfileRequest{Phone: proto.String("+14155550199"), TaxId: proto.String("987-65-4321")},
			change: func(c *customersv1.Customer) { c.Phone = "+14155550199"; c.TaxId = "987-65-4321" },
		},
	}
	for _, step := range steps {
		now := h.clock.Advance(time.Minute + 1234*time.Nanosecond)
		step.req.CustomerId = want.GetId()
		got, err := h.update(ctx, step.req)
		if err != nil {
			t.Fatalf("%s: UpdateCustomerProfile: %v", step.name, err)
		}
		want = proto.CloneOf(want)
		step.change(want)
		want.UpdatedAt = stamp(now) // created_at stays
		wantSame(t, step.name+": UpdateCustomerProfile", got, want)
		wantSame(t, step.name+": GetCustomer", h.get(t, want.GetId()), want)
	}
	// The email and the state were never touched.
	h.wantOwner(t, "ada@example.com", want)
}

func testUpdateProfileInvalidDateOfBirth(t *testing.T, h *harness) {
	ctx := t.Context()
	want := h.signUp(t, fullSignUp("ada@example.com"))
	h.clock.Advance(time.Minute)
	tomorrow := h.clock.Now().AddDate(0, 0, 1).Format(time.DateOnly)
	for _, dob := range []string{"2023-02-30", "2023-04-31", tomorrow} {
		_, err := h.update(ctx, &customersv1.UpdateCustomerProfileRequest{
			CustomerId: want.GetId(), Name: proto.String("Changed"), DateOfBirth: proto.String(dob),
		})
		wantInvalidArgument(t, err, "date_of_birth")
		// Nothing changed, not even the name set with it.
		h.wantUnchanged(t, want)
	}
}

func testConcurrentProfileUpdates(t *testing.T, h *harness) {
	// Five writers each set one field of the same customer over and over,
	// and a sixth changes its email: if the store loses an update, some
	// field ends on an older value.
	const rounds = 12
	c := h.newCustomer(t)
	id := c.GetId()
	value := func(field string, i int) string {
		switch field {
		case "phone":
			return fmt.Sprintf("+1415555%04d", i)
		case "date_of_birth":
			return fmt.Sprintf("1990-01-%02d", i+1)
		case "email":
			return fmt.Sprintf("writer%02d@example.com", i)
		}
		return fmt.Sprintf("%s %d", field, i)
	}
	requestFor := func(field string, i int) *customersv1.UpdateCustomerProfileRequest {
		req := &customersv1.UpdateCustomerProfileRequest{CustomerId: id}
		v := value(field, i)
		switch field {
		case "name":
			req.Name = &v
		case "phone":
			req.Phone = &v
		case "date_of_birth":
			req.DateOfBirth = &v
		case "tax_id":
			req.TaxId = &v
		case "address":
			req.Address = &customersv1.Address{Line1: v, City: "Springfield", CountryCode: "US"}
		}
		return req
	}
	fields := []string{"name", "phone", "date_of_birth", "tax_id", "address", "email"}
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make([]error, len(fields))
	)
	for f, field := range fields {
		wg.Go(func() {
			<-start
			for i := range rounds {
				var err error
				if field == "email" {
					_, err = h.changeEmail(t.Context(), id, value(field, i))
				} else {
					_, err = h.update(t.Context(), requestFor(field, i))
				}
				if err != nil {
					errs[f] = fmt.Errorf("%s round %d: %w", field, i, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent updates: %v", err)
	}

	last := rounds - 1
	got := h.get(t, id)
	want := proto.CloneOf(c)
	want.Name = value("name", last)
	want.Phone = value("phone", last)
	want.DateOfBirth = value("date_of_birth", last)
	want.TaxId = value("tax_id", last)
	want.Address = &customersv1.Address{Line1: value("address", last), City: "Springfield", CountryCode: "US"}
	want.Email = value("email", last)
	want.UpdatedAt = stamp(h.clock.Now()) // the clock did not move
	wantSame(t, "customer after concurrent updates", got, want)

	// Only the last email is taken; every earlier one was freed.
	h.wantOwner(t, value("email", last), got)
	for i := range last {
		if _, err := h.find(t.Context(), value("email", i)); err == nil {
			t.Fatalf("email of round %d still finds a customer after it was changed", i)
		} else {
			wantNotFound(t, err, "")
		}
	}
}

// --- ChangeCustomerEmail ---------------------------------------------------

func testChangeEmail(t *testing.T, h *harness) {
	ctx := t.Context()
	before := h.signUp(t, fullSignUp("Ada@Example.com"))
	now := h.clock.Advance(time.Minute)
	got, err := h.changeEmail(ctx, before.GetId(), "Countess@Lovelace.example")
	if err != nil {
		t.Fatalf("ChangeCustomerEmail: %v", err)
	}
	want := proto.CloneOf(before)
	want.Email = "Countess@Lovelace.example"
	want.UpdatedAt = stamp(now)
	wantSame(t, "ChangeCustomerEmail", got, want)
	wantSame(t, "GetCustomer", h.get(t, before.GetId()), want)
	h.wantOwner(t, "countess@LOVELACE.example", want)

	// The old email, in any case, is free again.
	h.wantEmailFree(t, "ada@EXAMPLE.com")
	// And the customer who changed still has the new one.
	h.wantOwner(t, "Countess@Lovelace.example", want)
}

func testChangeEmailOwnInAnotherCase(t *testing.T, h *harness) {
	before := h.signUp(t, fullSignUp("ada@example.com"))
	now := h.clock.Advance(time.Minute)
	got, err := h.changeEmail(t.Context(), before.GetId(), "Ada@Example.COM")
	if err != nil {
		t.Fatalf("ChangeCustomerEmail to its own email in another case: %v", err)
	}
	want := proto.CloneOf(before)
	want.Email = "Ada@Example.COM"
	want.UpdatedAt = stamp(now)
	wantSame(t, "ChangeCustomerEmail", got, want)
	h.wantOwner(t, "ada@example.com", want)

	// The very same email again is fine too.
	if _, err := h.changeEmail(t.Context(), before.GetId(), "Ada@Example.COM"); err != nil {
		t.Fatalf("ChangeCustomerEmail to its current email: %v", err)
	}
}

func testChangeEmailTaken(t *testing.T, h *harness) {
	ada := h.signUp(t, fullSignUp("Ada@Example.com"))
	grace := h.signUp(t, &customersv1.SignUpCustomerRequest{Name: "Grace Hopper", Email: "grace@example.com"})
	h.clock.Advance(time.Minute)
	for _, email := range []string{"Ada@Example.com", "ada@example.com", "ADA@EXAMPLE.COM"} {
		_, err := h.changeEmail(t.Context(), grace.GetId(), email)
		wantEmailTaken(t, err, email)
		h.wantUnchanged(t, grace)
		h.wantUnchanged(t, ada)
	}
	h.wantOwner(t, "grace@example.com", grace)
	h.wantOwner(t, "ada@example.com", ada)
}

func testConcurrentChangeEmailSameEmail(t *testing.T, h *harness) {
	const n = 16
	base := "contested@example.com"
	before := make([]*customersv1.Customer, n)
	for i := range before {
		before[i] = h.newCustomer(t)
	}
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = h.changeEmail(t.Context(), before[i].GetId(), caseVariant(base, i))
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		if err != nil {
			wantEmailTaken(t, err, base)
			h.wantUnchanged(t, before[i])
			h.wantOwner(t, before[i].GetEmail(), before[i])
			continue
		}
		if winner >= 0 {
			t.Fatalf("customers %d and %d both got the same email", winner, i)
		}
		winner = i
	}
	if winner < 0 {
		t.Fatal("no email change succeeded")
	}
	h.wantOwner(t, base, h.get(t, before[winner].GetId()))
	h.wantEmailFree(t, before[winner].GetEmail())
}

// --- FindCustomerByEmail ---------------------------------------------------

func testFindByEmail(t *testing.T, h *harness) {
	ada := h.signUp(t, fullSignUp("Ada@Example.com"))
	h.signUp(t, &customersv1.SignUpCustomerRequest{Name: "Grace Hopper", Email: "grace@example.com"})
	for _, email := range []string{"ada@EXAMPLE.com", "Ada@Example.com", "ada@example.com", "ADA@EXAMPLE.COM"} {
		got, err := h.find(t.Context(), email)
		if err != nil {
			t.Fatalf("FindCustomerByEmail(%q): %v", email, err)
		}
		wantSame(t, fmt.Sprintf("FindCustomerByEmail(%q)", email), got, ada)
	}
}

func testFindByEmailUnknown(t *testing.T, h *harness) {
	h.signUp(t, fullSignUp("ada@example.com"))
	for _, email := range []string{"nobody@example.com", "ada@example.org", "da@example.com"} {
		_, err := h.find(t.Context(), email)
		wantNotFound(t, err, "")
		if strings.Contains(err.Error(), email) {
			t.Errorf("error %q repeats the email, which is sensitive", err)
		}
	}
}

// --- Lifecycle -------------------------------------------------------------

func testLifecycleWalk(t *testing.T, h *harness) {
	// PENDING -> APPROVED -> SUSPENDED -> APPROVED -> SUSPENDED -> CLOSED,
	// each step moving updated_at and setting (or clearing) state_reason.
	want := h.signUp(t, fullSignUp("ada@example.com"))
	for _, action := range []customers.Action{
		customers.ActionApprove, customers.ActionSuspend, customers.ActionReinstate,
		customers.ActionSuspend, customers.ActionClose,
	} {
		now := h.clock.Advance(time.Second)
		got := h.mustAct(t, action, want.GetId())
		want = proto.CloneOf(want)
		want.State = protoState[lifecycle[action].to]
		want.StateReason = reasonFor(action)
		want.UpdatedAt = stamp(now)
		wantSame(t, string(action), got, want)
		wantSame(t, string(action)+": GetCustomer", h.get(t, want.GetId()), want)
	}

	// PENDING -> REJECTED -> CLOSED, closing without a reason.
	c := h.newCustomer(t)
	c = h.mustAct(t, customers.ActionReject, c.GetId())
	if c.GetState() != customersv1.CustomerState_CUSTOMER_STATE_REJECTED || c.GetStateReason() != reasonFor(customers.ActionReject) {
		t.Fatalf("after RejectCustomer: state %s, reason %q", c.GetState(), c.GetStateReason())
	}
	res, err := h.svc.CloseCustomer(t.Context(), connect.NewRequest(&customersv1.CloseCustomerRequest{CustomerId: c.GetId()}))
	if err != nil {
		t.Fatalf("CloseCustomer without a reason: %v", err)
	}
	if got := res.Msg.GetCustomer(); got.GetState() != customersv1.CustomerState_CUSTOMER_STATE_CLOSED || got.GetStateReason() != "" {
		t.Fatalf("after CloseCustomer without a reason: state %s, reason %q; want CLOSED and no reason", got.GetState(), got.GetStateReason())
	}
}

func testEveryTransition(t *testing.T, h *harness) {
	for _, from := range states {
		for _, action := range actions {
			t.Run(fmt.Sprintf("%s/%s", from, action), func(t *testing.T) {
				before := h.customerIn(t, from)
				now := h.clock.Advance(time.Second)
				got, err := h.act(t.Context(), action, before.GetId())

				rule := lifecycle[action]
				if slices.Contains(rule.from, from) {
					if err != nil {
						t.Fatalf("%s from %s: %v; want %s", action, from, err, rule.to)
					}
					want := proto.CloneOf(before)
					want.State = protoState[rule.to]
					want.StateReason = reasonFor(action)
					want.UpdatedAt = stamp(now)
					wantSame(t, string(action), got, want)
					wantSame(t, "GetCustomer", h.get(t, before.GetId()), want)
					return
				}

				te := errorAs[*customers.TransitionError](t, err)
				if te.From != from || te.To != rule.to || te.Action != action || te.CustomerID != before.GetId() {
					t.Errorf("TransitionError{CustomerID: %s, Action: %s, From: %s, To: %s}, want {%s, %s, %s, %s}",
						te.CustomerID, te.Action, te.From, te.To, before.GetId(), action, from, rule.to)
				}
				wantKind(t, err, domainerr.KindFailedPrecondition)
				for _, s := range []customers.State{from, rule.to} {
					if name := strings.ToUpper(s.String()); !strings.Contains(err.Error(), name) {
						t.Errorf("message %q does not name state %s", err, name)
					}
				}
				h.wantUnchanged(t, before)
			})
		}
	}
}

func testProfileEditableByState(t *testing.T, h *harness) {
	editable := map[customers.State]bool{
		customers.StatePending:   true,
		customers.StateApproved:  true,
		customers.StateSuspended: true,
		customers.StateRejected:  false,
		customers.StateClosed:    false,
	}
	for _, state := range states {
		t.Run(state.String(), func(t *testing.T) {
			ctx := t.Context()
			before := h.customerIn(t, state)
			newEmail := "new-" + before.GetEmail()
			now := h.clock.Advance(time.Second)
			updated, updateErr := h.update(ctx, &customersv1.UpdateCustomerProfileRequest{CustomerId: before.GetId(), Name: proto.String("Renamed")})
			changed, changeErr := h.changeEmail(ctx, before.GetId(), newEmail)

			if !editable[state] {
				wantNotEditable(t, updateErr, before.GetId(), state)
				wantNotEditable(t, changeErr, before.GetId(), state)
				for _, err := range []error{updateErr, changeErr} {
					if !strings.Contains(err.Error(), strings.ToUpper(state.String())) {
						t.Errorf("message %q does not name state %s", err, strings.ToUpper(state.String()))
					}
				}
				h.wantUnchanged(t, before)
				h.wantOwner(t, before.GetEmail(), before)
				h.wantEmailFree(t, newEmail)
				return
			}
			if updateErr != nil || changeErr != nil {
				t.Fatalf("a %s customer: UpdateCustomerProfile: %v; ChangeCustomerEmail: %v", state, updateErr, changeErr)
			}
			want := proto.CloneOf(before)
			want.Name = "Renamed"
			want.UpdatedAt = stamp(now)
			wantSame(t, "UpdateCustomerProfile", updated, want)
			want.Email = newEmail
			wantSame(t, "ChangeCustomerEmail", changed, want)
			wantSame(t, "GetCustomer", h.get(t, before.GetId()), want) // the state did not change
			h.wantOwner(t, newEmail, want)
		})
	}
}

func testConcurrentApproveReject(t *testing.T, h *harness) {
	// Half the reviewers approve and half reject the same pending customer,
	// all at once: exactly one wins, and every other sees the state it left.
	const n = 16
	c := h.newCustomer(t)
	var (
		start   = make(chan struct{})
		wg      sync.WaitGroup
		results = make([]*customersv1.Customer, n)
		errs    = make([]error, n)
	)
	actionOf := func(i int) customers.Action {
		if i%2 == 0 {
			return customers.ActionApprove
		}
		return customers.ActionReject
	}
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = h.act(t.Context(), actionOf(i), c.GetId())
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("reviewers %d (%s) and %d (%s) both moved the customer from PENDING", winner, actionOf(winner), i, actionOf(i))
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no reviewer won: %v", errors.Join(errs...))
	}
	final := lifecycle[actionOf(winner)].to
	for i, err := range errs {
		if i == winner {
			continue
		}
		te := errorAs[*customers.TransitionError](t, err)
		if te.From != final || te.To != lifecycle[actionOf(i)].to {
			t.Errorf("reviewer %d: TransitionError from %s to %s, want from %s to %s", i, te.From, te.To, final, lifecycle[actionOf(i)].to)
		}
	}
	got := h.get(t, c.GetId())
	wantSame(t, "GetCustomer after the race", got, results[winner])
	if got.GetState() != protoState[final] {
		t.Fatalf("state = %s, want %s", got.GetState(), protoState[final])
	}
}

func testConcurrentClose(t *testing.T, h *harness) {
	const n = 16
	c := h.customerIn(t, customers.StateApproved)
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = h.act(t.Context(), customers.ActionClose, c.GetId())
		})
	}
	close(start)
	wg.Wait()
	succeeded := 0
	for _, err := range errs {
		if err == nil {
			succeeded++
			continue
		}
		te := errorAs[*customers.TransitionError](t, err)
		if te.From != customers.StateClosed || te.To != customers.StateClosed {
			t.Errorf("TransitionError from %s to %s, want from CLOSED to CLOSED", te.From, te.To)
		}
	}
	if succeeded != 1 {
		t.Fatalf("%d of %d concurrent closes succeeded, want exactly 1", succeeded, n)
	}
	if got := h.get(t, c.GetId()); got.GetState() != customersv1.CustomerState_CUSTOMER_STATE_CLOSED {
		t.Fatalf("state = %s, want CLOSED", got.GetState())
	}
}

// --- ListCustomers ---------------------------------------------------------

// idsOf flattens pages into the ids they list, in order.
func idsOf(pages [][]*customersv1.Customer) []string {
	var ids []string
	for _, page := range pages {
		for _, c := range page {
			ids = append(ids, c.GetId())
		}
	}
	return ids
}

func pageLens(pages [][]*customersv1.Customer) []int {
	lens := make([]int, len(pages))
	for i, p := range pages {
		lens[i] = len(p)
	}
	return lens
}

func testListPageSizes(t *testing.T, h *harness) {
	const n = customers.MaxPageSize + 5
	ids := h.seed(t, n)
	for _, tc := range []struct {
		pageSize int32
		want     []int
	}{
		{0, []int{50, 50, 50, 50, 5}}, // 0 means the default, 50
		{1, nil},
		{50, []int{50, 50, 50, 50, 5}},
		{41, []int{41, 41, 41, 41, 41}}, // the last page exactly full: no empty page after it
		{199, []int{199, 6}},
		{200, []int{200, 5}},  // the largest page
		{1000, []int{200, 5}}, // the contract refuses more; the service caps it
	} {
		pages := h.listAll(t, tc.pageSize, customers.StateUnspecified)
		if got := idsOf(pages); !slices.Equal(got, ids) {
			t.Fatalf("page_size %d lists %d ids, want the %d seeded in id order", tc.pageSize, len(got), n)
		}
		if tc.want != nil && !slices.Equal(pageLens(pages), tc.want) {
			t.Fatalf("page_size %d gives pages of %v, want %v", tc.pageSize, pageLens(pages), tc.want)
		}
		if tc.want == nil && len(pages) != n {
			t.Fatalf("page_size %d gives %d pages, want %d", tc.pageSize, len(pages), n)
		}
	}
}

func testListEveryCustomerOnce(t *testing.T, h *harness) {
	// A mix of states, and each listed customer as GetCustomer returns it.
	const n = 90
	ids := h.seed(t, n)
	for i, id := range ids {
		switch i % 3 {
		case 1:
			h.mustAct(t, customers.ActionApprove, id)
		case 2:
			h.mustAct(t, customers.ActionClose, id)
		}
	}
	first := h.listAll(t, 7, customers.StateUnspecified)
	if got := idsOf(first); !slices.Equal(got, ids) {
		t.Fatalf("listing = %v\nwant every customer once, in id order: %v", got, ids)
	}
	for _, page := range first {
		for _, c := range page {
			wantSame(t, "listed customer", c, h.get(t, c.GetId()))
		}
	}
	// The order is stable: listing again gives the same pages.
	again := h.listAll(t, 7, customers.StateUnspecified)
	for i := range first {
		if len(again) != len(first) || !slices.EqualFunc(first[i], again[i], func(a, b *customersv1.Customer) bool { return proto.Equal(a, b) }) {
			t.Fatalf("listing twice gave different pages (page %d)", i+1)
		}
	}
}

func testListEmpty(t *testing.T, h *harness) {
	res := h.list(t, &customersv1.ListCustomersRequest{})
	if len(res.GetCustomers()) != 0 || res.GetNextPageToken() != "" {
		t.Fatalf("listing an empty store = %v", res)
	}
	h.newCustomer(t)
	res = h.list(t, &customersv1.ListCustomersRequest{State: customersv1.CustomerState_CUSTOMER_STATE_CLOSED})
	if len(res.GetCustomers()) != 0 || res.GetNextPageToken() != "" {
		t.Fatalf("listing CLOSED customers when there are none = %v", res)
	}
}

func testListFilterByState(t *testing.T, h *harness) {
	// 100 customers: 10 approved, 10 rejected, 4 suspended, 1 closed, the
	// rest pending, scattered through the id order.
	const n = 100
	ids := h.seed(t, n)
	want := map[customers.State][]string{}
	for i, id := range ids {
		state := customers.StatePending
		switch {
		case i%10 == 3:
			state = customers.StateApproved
		case i%10 == 7:
			state = customers.StateRejected
		case i%25 == 0:
			state = customers.StateSuspended
		case i == n-1:
			state = customers.StateClosed
		}
		for _, action := range pathTo[state] {
			h.mustAct(t, action, id)
		}
		want[state] = append(want[state], id)
	}
	want[customers.StateUnspecified] = ids

	for _, state := range append([]customers.State{customers.StateUnspecified}, states...) {
		for _, size := range []int32{1, 3, 5, 10, 0} {
			pages := h.listAll(t, size, state)
			if got := idsOf(pages); !slices.Equal(got, want[state]) {
				t.Fatalf("state %s, page_size %d: listing = %v\nwant %v", state, size, got, want[state])
			}
			per := int(size)
			if per == 0 {
				per = customers.DefaultPageSize
			}
			if wantPages := max(1, (len(want[state])+per-1)/per); len(pages) != wantPages {
				t.Fatalf("state %s, page_size %d: %d pages %v, want %d", state, size, len(pages), pageLens(pages), wantPages)
			}
			for _, page := range pages {
				for _, c := range page {
					if state != customers.StateUnspecified && c.GetState() != protoState[state] {
						t.Fatalf("listing %s customers returned %s, which is %s", state, c.GetId(), c.GetState())
					}
				}
			}
		}
	}
}

func testListTokenOfAnotherFilter(t *testing.T, h *harness) {
	ids := h.seed(t, 12)
	for _, id := range ids[:6] {
		h.mustAct(t, customers.ActionApprove, id)
	}
	tokenFor := func(state customersv1.CustomerState) string {
		t.Helper()
		res := h.list(t, &customersv1.ListCustomersRequest{PageSize: 2, State: state})
		if res.GetNextPageToken() == "" {
			t.Fatalf("no next_page_token listing %s customers 2 at a time", state)
		}
		return res.GetNextPageToken()
	}
	all := customersv1.CustomerState_CUSTOMER_STATE_UNSPECIFIED
	pending := customersv1.CustomerState_CUSTOMER_STATE_PENDING
	approved := customersv1.CustomerState_CUSTOMER_STATE_APPROVED
	for _, tc := range []struct{ issuedFor, usedWith customersv1.CustomerState }{
		{pending, approved},
		{pending, all},
		{all, pending},
		{approved, customersv1.CustomerState_CUSTOMER_STATE_CLOSED},
	} {
		token := tokenFor(tc.issuedFor)
		_, err := h.svc.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{
			PageSize: 2, PageToken: token, State: tc.usedWith,
		}))
		wantInvalidArgument(t, err, "page_token")

		// The same token with its own filter still works.
		res := h.list(t, &customersv1.ListCustomersRequest{PageSize: 2, PageToken: token, State: tc.issuedFor})
		if len(res.GetCustomers()) == 0 {
			t.Fatalf("token issued for %s gave an empty second page", tc.issuedFor)
		}
	}
}

func testListGarbageToken(t *testing.T, h *harness) {
	h.seed(t, 3)
	for _, token := range []string{"garbage!", "garbage", "AAAA", "////", strings.Repeat("x", 500)} {
		for _, state := range []customersv1.CustomerState{customersv1.CustomerState_CUSTOMER_STATE_UNSPECIFIED, customersv1.CustomerState_CUSTOMER_STATE_PENDING} {
			_, err := h.svc.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{PageToken: token, State: state}))
			wantInvalidArgument(t, err, "page_token")
		}
	}
}

// testListForgedToken: page tokens are signed. A token altered anywhere, or
// made under another deployment's key, is refused and never trusted as a
// place to resume from; a token from another gateway of the same
// deployment (another Service with the same key) is good.
func testListForgedToken(t *testing.T, h *harness) {
	ids := h.seed(t, 5)
	slices.Sort(ids)
	first := h.list(t, &customersv1.ListCustomersRequest{PageSize: 2})
	token := first.GetNextPageToken()
	if token == "" {
		t.Fatal("no next_page_token listing 5 customers 2 at a time")
	}
	for _, forged := range pagetokentest.Altered(token) {
		_, err := h.svc.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{PageSize: 2, PageToken: forged}))
		wantInvalidArgument(t, err, "page_token")
	}

	otherDeployment := customers.NewService(h.store, customers.WithPageTokens(tokens(t, pagetokentest.OtherKey)))
	res, err := otherDeployment.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{PageSize: 2}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{PageSize: 2, PageToken: res.Msg.GetNextPageToken()}))
	wantInvalidArgument(t, err, "page_token")

	gatewayB := customers.NewService(h.store, customers.WithPageTokens(tokens(t, pagetokentest.Key)))
	res, err = gatewayB.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{PageSize: 2, PageToken: token}))
	if err != nil {
		t.Fatalf("another gateway of the deployment refused the token: %v", err)
	}
	if got := idsOf([][]*customersv1.Customer{res.Msg.GetCustomers()}); !slices.Equal(got, ids[2:4]) {
		t.Fatalf("the second page from another gateway = %v, want %v", got, ids[2:4])
	}
}

func testListWhileSigningUp(t *testing.T, h *harness) {
	// Seed customers, then page through them a few at a time while another
	// goroutine keeps signing customers up. Keyset pagination must return
	// each seeded customer exactly once, in id order, whatever is added.
	const (
		seeded   = 60
		pageSize = 7
		maxAdded = 150
	)
	ids := h.seed(t, seeded)

	var (
		added    atomic.Int64
		failed   atomic.Bool
		writeErr error // set before failed, read after the writer ends
		stop     = make(chan struct{})
		writer   sync.WaitGroup
	)
	writer.Go(func() {
		for added.Load() < maxAdded {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := h.svc.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
				Name: "Latecomer", Email: h.email(),
			})); err != nil {
				writeErr = err
				failed.Store(true)
				return
			}
			added.Add(1)
		}
	})
	stopWriter := sync.OnceFunc(func() { close(stop); writer.Wait() })
	defer stopWriter()

	var (
		listed []string
		token  string
		pages  int
	)
	for {
		pages++
		if pages > (seeded+maxAdded)/pageSize+2 {
			t.Fatalf("listing did not end after %d pages", pages)
		}
		// Let at least one sign-up land between pages, unless the writer
		// is done.
		for seen := added.Load(); pages > 1 && seen < maxAdded && seen == added.Load() && !failed.Load(); {
			time.Sleep(20 * time.Microsecond)
		}
		res := h.list(t, &customersv1.ListCustomersRequest{PageSize: pageSize, PageToken: token})
		for _, c := range res.GetCustomers() {
			listed = append(listed, c.GetId())
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	stopWriter()
	if writeErr != nil {
		t.Fatalf("signing up while listing: %v", writeErr)
	}

	for i := 1; i < len(listed); i++ {
		if listed[i] <= listed[i-1] {
			t.Fatalf("ids do not strictly increase across pages: %s then %s (positions %d, %d)", listed[i-1], listed[i], i-1, i)
		}
	}
	for _, id := range ids {
		if _, found := slices.BinarySearch(listed, id); !found {
			t.Fatalf("seeded customer %s missing from the listing", id)
		}
	}
	if added.Load() == 0 {
		t.Fatal("no customer signed up while listing; the test proved nothing")
	}
	t.Logf("listed %d customers in %d pages while %d signed up", len(listed), pages, added.Load())
}

// --- Store ----------------------------------------------------------------

// storedCustomer is a customer as the service would make it, for tests that
// call the Store directly.
func storedCustomer(id, email string) customers.Customer {
	at := epoch.Truncate(time.Microsecond)
	return customers.Customer{
		ID:          id,
		State:       customers.StateSuspended,
		StateReason: "under review",
		Email:       email,
		EmailKey:    customers.CaseInsensitiveEmailKey(email),
		Profile: customers.Profile{
			Name:        "Ada Lovelace",
			Phone:       "+442071234567",
			DateOfBirth: "1815-12-10",
			Address:     &customers.Address{Line1: "12 St James's Square", City: "London", CountryCode: "GB"},
			TaxID:       "AB123456C",
		},
		CreatedAt: at,
		UpdatedAt: at.Add(time.Hour),
	}
}

// normalized returns c with its times in UTC, so that customers compare
// with reflect-like equality whatever location a store reads times in.
func normalized(c customers.Customer) customers.Customer {
	c.CreatedAt = c.CreatedAt.UTC()
	c.UpdatedAt = c.UpdatedAt.UTC()
	return c
}

func wantStored(t *testing.T, what string, got, want customers.Customer) {
	t.Helper()
	g, w := normalized(got), normalized(want)
	same := g.ID == w.ID && g.State == w.State && g.StateReason == w.StateReason &&
		g.Email == w.Email && g.EmailKey == w.EmailKey &&
		g.CreatedAt.Equal(w.CreatedAt) && g.UpdatedAt.Equal(w.UpdatedAt) &&
		g.Profile.Name == w.Profile.Name && g.Profile.Phone == w.Profile.Phone &&
		g.Profile.DateOfBirth == w.Profile.DateOfBirth && g.Profile.TaxID == w.Profile.TaxID &&
		(g.Profile.Address == nil) == (w.Profile.Address == nil) &&
		(g.Profile.Address == nil || *g.Profile.Address == *w.Profile.Address)
	if !same {
		t.Fatalf("%s:\n got  %+v (address %+v)\n want %+v (address %+v)", what, g, g.Profile.Address, w, w.Profile.Address)
	}
}

const (
	storeID1 = "cus_01JQ0000000000000000000001"
	storeID2 = "cus_01JQ0000000000000000000002"
	storeID3 = "cus_01JQ0000000000000000000003"
)

func testStoreUnknown(t *testing.T, h *harness) {
	ctx := t.Context()
	if err := h.store.Create(ctx, storedCustomer(storeID1, "ada@example.com")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	_, err := h.store.Get(ctx, storeID2)
	wantNotFound(t, err, storeID2)
	called := false
	_, err = h.store.Update(ctx, storeID2, func(*customers.Customer) error { called = true; return nil })
	wantNotFound(t, err, storeID2)
	if called {
		t.Error("Update called change for a customer that does not exist")
	}
	_, err = h.store.GetByEmailKey(ctx, customers.CaseInsensitiveEmailKey("grace@example.com"))
	wantNotFound(t, err, "")
}

func testStoreCreateRoundTrip(t *testing.T, h *harness) {
	ctx := t.Context()
	want := storedCustomer(storeID1, "Ada@Example.com")
	if err := h.store.Create(ctx, want); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := h.store.Get(ctx, storeID1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	wantStored(t, "Get after Create", got, want)
	got, err = h.store.GetByEmailKey(ctx, want.EmailKey)
	if err != nil {
		t.Fatalf("GetByEmailKey: %v", err)
	}
	wantStored(t, "GetByEmailKey after Create", got, want)

	// A customer without an address keeps none.
	bare := storedCustomer(storeID2, "grace@example.com")
	bare.Profile = customers.Profile{Name: "Grace Hopper"}
	if err := h.store.Create(ctx, bare); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err = h.store.Get(ctx, storeID2)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	wantStored(t, "Get of a customer with no optional fields", got, bare)

	// Update stores what change made, and returns it.
	updated, err := h.store.Update(ctx, storeID2, func(c *customers.Customer) error {
		c.State = customers.StateClosed
		c.StateReason = "closed by the suite"
		c.Profile.Address = &customers.Address{Line1: "1 Main St", City: "Arlington", Region: "VA", CountryCode: "US"}
		c.UpdatedAt = c.UpdatedAt.Add(time.Minute)
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	bare.State, bare.StateReason = customers.StateClosed, "closed by the suite"
	bare.Profile.Address = &customers.Address{Line1: "1 Main St", City: "Arlington", Region: "VA", CountryCode: "US"}
	bare.UpdatedAt = bare.UpdatedAt.Add(time.Minute)
	wantStored(t, "Update's result", updated, bare)
	got, err = h.store.Get(ctx, storeID2)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	wantStored(t, "Get after Update", got, bare)
}

func testStoreEmailKeyUnique(t *testing.T, h *harness) {
	ctx := t.Context()
	ada := storedCustomer(storeID1, "ada@example.com")
	grace := storedCustomer(storeID2, "grace@example.com")
	for _, c := range []customers.Customer{ada, grace} {
		if err := h.store.Create(ctx, c); err != nil {
			t.Fatalf("Create(%s): %v", c.ID, err)
		}
	}
	err := h.store.Create(ctx, storedCustomer(storeID3, "ADA@example.com"))
	wantEmailTaken(t, err, "ada@example.com")
	_, err = h.store.Get(ctx, storeID3)
	wantNotFound(t, err, storeID3)

	_, err = h.store.Update(ctx, grace.ID, func(c *customers.Customer) error {
		c.Email, c.EmailKey = "Ada@Example.com", ada.EmailKey
		return nil
	})
	wantEmailTaken(t, err, "ada@example.com")
	got, err := h.store.Get(ctx, grace.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	wantStored(t, "customer after a refused email change", got, grace)
	got, err = h.store.GetByEmailKey(ctx, ada.EmailKey)
	if err != nil || got.ID != ada.ID {
		t.Fatalf("GetByEmailKey(ada) = %s, %v; want %s", got.ID, err, ada.ID)
	}
}

func testStoreFailedChange(t *testing.T, h *harness) {
	ctx := t.Context()
	want := storedCustomer(storeID1, "ada@example.com")
	if err := h.store.Create(ctx, want); err != nil {
		t.Fatalf("Create: %v", err)
	}
	refused := errors.New("refused by the suite")
	_, err := h.store.Update(ctx, storeID1, func(c *customers.Customer) error {
		// Change everything, the address in place included, then refuse.
		c.State = customers.StateClosed
		c.Email, c.EmailKey = "grace@example.com", "grace@example.com"
		c.Profile.Name = "Grace Hopper"
		c.Profile.Address.City = "Arlington"
		c.UpdatedAt = c.UpdatedAt.Add(time.Hour)
		return refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("Update returned %v, want the error change returned", err)
	}
	got, err := h.store.Get(ctx, storeID1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	wantStored(t, "customer after a refused change", got, want)
	_, err = h.store.GetByEmailKey(ctx, "grace@example.com")
	wantNotFound(t, err, "")
}

func testStoreResultsNotShared(t *testing.T, h *harness) {
	// What a store returns belongs to the caller: changing it changes
	// nothing stored.
	ctx := t.Context()
	want := storedCustomer(storeID1, "ada@example.com")
	in := want
	addr := *want.Profile.Address
	in.Profile.Address = &addr
	if err := h.store.Create(ctx, in); err != nil {
		t.Fatalf("Create: %v", err)
	}
	in.Profile.Address.City = "changed after Create"

	got, err := h.store.Get(ctx, storeID1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	got.Profile.Address.City = "changed after Get"
	found, err := h.store.GetByEmailKey(ctx, want.EmailKey)
	if err != nil {
		t.Fatalf("GetByEmailKey: %v", err)
	}
	found.Profile.Address.City = "changed after GetByEmailKey"
	page, err := h.store.List(ctx, customers.ListQuery{Limit: 10})
	if err != nil || len(page) != 1 {
		t.Fatalf("List = %d customers, %v; want 1", len(page), err)
	}
	page[0].Profile.Address.City = "changed after List"
	var kept *customers.Address
	updated, err := h.store.Update(ctx, storeID1, func(c *customers.Customer) error {
		kept = c.Profile.Address
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	updated.Profile.Address.City = "changed after Update"
	kept.City = "changed through change's customer"

	got, err = h.store.Get(ctx, storeID1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	wantStored(t, "customer after callers changed what the store returned", got, want)
}

func testStoreListAfterAnyID(t *testing.T, h *harness) {
	// List resumes strictly after AfterID whether or not a customer has it,
	// and stops at Limit.
	ctx := t.Context()
	ids := []string{storeID1, storeID2, storeID3}
	for i, id := range ids {
		c := storedCustomer(id, fmt.Sprintf("c%d@example.com", i))
		c.State = customers.StatePending
		if i == 1 {
			c.State = customers.StateApproved
		}
		if err := h.store.Create(ctx, c); err != nil {
			t.Fatalf("Create(%s): %v", id, err)
		}
	}
	for _, tc := range []struct {
		q    customers.ListQuery
		want []string
	}{
		{customers.ListQuery{Limit: 10}, ids},
		{customers.ListQuery{Limit: 2}, ids[:2]},
		{customers.ListQuery{AfterID: storeID1, Limit: 10}, ids[1:]},
		{customers.ListQuery{AfterID: storeID1 + "0", Limit: 10}, ids[1:]}, // between the first and second
		{customers.ListQuery{AfterID: "cus_", Limit: 10}, ids},
		{customers.ListQuery{AfterID: storeID3, Limit: 10}, nil},
		{customers.ListQuery{AfterID: "cus_01JQ0000000000000000000000", State: customers.StatePending, Limit: 10}, []string{storeID1, storeID3}},
		{customers.ListQuery{AfterID: storeID1, State: customers.StatePending, Limit: 1}, []string{storeID3}},
		{customers.ListQuery{State: customers.StateApproved, Limit: 10}, []string{storeID2}},
	} {
		page, err := h.store.List(ctx, tc.q)
		if err != nil {
			t.Fatalf("List(%+v): %v", tc.q, err)
		}
		var got []string
		for _, c := range page {
			got = append(got, c.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%+v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}
