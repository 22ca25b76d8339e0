package customers

import (
	"context"
	"strings"
	"time"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/ids"
	"plinth.dev/plinth/internal/pagetoken"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
)

// Listing page sizes.
const (
	// DefaultPageSize is the page size of ListCustomers when the request
	// gives none.
	DefaultPageSize = pagetoken.DefaultPageSize
	// MaxPageSize is the largest page ListCustomers returns; the contract
	// refuses larger requests.
	MaxPageSize = pagetoken.MaxPageSize
)

// Service implements the customers capabilities over a Store. The gateway
// validates requests against the contract before they reach it; Service
// enforces what the contract cannot say (lifecycle, uniqueness, real dates).
type Service struct {
	store    Store
	emailKey func(ctx context.Context, email string) (string, error)
	now      func() time.Time
	tokens   *pagetoken.Codec
}

// EmailKeyer is implemented by stores that derive EmailKey themselves: a
// store that keeps data outside memory makes it a keyed blind index, so
// that it never holds an email in the clear. NewService uses it when the
// store has it.
type EmailKeyer interface {
	EmailKey(ctx context.Context, email string) (string, error)
}

var _ customersv1connect.CustomerServiceHandler = (*Service)(nil)

// Option configures a Service.
type Option interface{ apply(*Service) }

type optionFunc func(*Service)

func (f optionFunc) apply(s *Service) { f(s) }

// WithClock makes the Service read the time from now. It defaults to
// time.Now.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(s *Service) { s.now = now })
}

// WithEmailIndex makes the Service derive EmailKey with key, which gets the
// email with surrounding spaces trimmed and must map every spelling of one
// email that should count as the same (today: any case) to one key. It
// defaults to the store's EmailKey if the store is an EmailKeyer, and to
// CaseInsensitiveEmailKey otherwise.
func WithEmailIndex(key func(ctx context.Context, email string) (string, error)) Option {
	return optionFunc(func(s *Service) { s.emailKey = key })
}

// WithPageTokens makes the Service sign and check its page tokens with
// tokens: the gateway passes the deployment's Codec, so that a token from
// one gateway is good on every other and after a restart. It defaults to a
// Codec with a random key of the Service's own (tokens good for this
// Service only); a nil tokens keeps the default.
func WithPageTokens(tokens *pagetoken.Codec) Option {
	return optionFunc(func(s *Service) {
		if tokens != nil {
			s.tokens = tokens
		}
	})
}

// NewService returns the customers capabilities over store.
func NewService(store Store, opts ...Option) *Service {
	s := &Service{store: store, now: time.Now, tokens: pagetoken.NewEphemeralCodec(),
		emailKey: func(_ context.Context, email string) (string, error) { return CaseInsensitiveEmailKey(email), nil }}
	if k, ok := store.(EmailKeyer); ok {
		s.emailKey = k.EmailKey
	}
	for _, o := range opts {
		o.apply(s)
	}
	return s
}

// CaseInsensitiveEmailKey is the default email index: the email in lower
// case, so that uniqueness and lookups ignore case. It suits the memory
// store only: a store that keeps data outside memory implements EmailKeyer
// with a keyed blind index of the same normalised form (the postgres store
// does), so that it never holds an email in the clear.
func CaseInsensitiveEmailKey(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// timestamp returns the current time at the precision every store keeps
// (PostgreSQL keeps microseconds), so backends return identical customers.
func (s *Service) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// SignUpCustomer records a new customer, who starts pending.
func (s *Service) SignUpCustomer(ctx context.Context, req *connect.Request[customersv1.SignUpCustomerRequest]) (*connect.Response[customersv1.SignUpCustomerResponse], error) {
	m := req.Msg
	profile := Profile{
		Name:        m.GetName(),
		Phone:       m.GetPhone(),
		DateOfBirth: m.GetDateOfBirth(),
		Address:     addressFromProto(m.GetAddress()),
		TaxID:       m.GetTaxId(),
	}
	if err := s.checkProfile(profile); err != nil {
		return nil, err
	}
	now := s.timestamp()
	email := strings.TrimSpace(m.GetEmail())
	emailKey, err := s.emailKey(ctx, email)
	if err != nil {
		return nil, err
	}
	c := Customer{
		ID:        ids.New("cus"),
		State:     StatePending,
		Email:     email,
		EmailKey:  emailKey,
		Profile:   profile,
		CreatedAt: now,
		UpdatedAt: now,
	}
	if err := s.store.Create(ctx, c); err != nil {
		return nil, err
	}
	return connect.NewResponse(&customersv1.SignUpCustomerResponse{Customer: customerToProto(c)}), nil
}

// GetCustomer returns one customer by id.
func (s *Service) GetCustomer(ctx context.Context, req *connect.Request[customersv1.GetCustomerRequest]) (*connect.Response[customersv1.GetCustomerResponse], error) {
	c, err := s.store.Get(ctx, req.Msg.GetCustomerId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&customersv1.GetCustomerResponse{Customer: customerToProto(c)}), nil
}

// ListCustomers returns a page of customers ordered by id.
func (s *Service) ListCustomers(ctx context.Context, req *connect.Request[customersv1.ListCustomersRequest]) (*connect.Response[customersv1.ListCustomersResponse], error) {
	m := req.Msg
	state := stateFromProto(m.GetState())
	filter := "ListCustomers state=" + state.String()
	after, err := s.tokens.Decode(ctx, "page_token", filter, m.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := pagetoken.Size(m.GetPageSize())
	// One more than the page, to know whether another page follows.
	found, err := s.store.List(ctx, ListQuery{AfterID: after, State: state, Limit: size + 1})
	if err != nil {
		return nil, err
	}
	res := &customersv1.ListCustomersResponse{}
	if len(found) > size {
		found = found[:size]
		if res.NextPageToken, err = s.tokens.Encode(ctx, filter, found[size-1].ID); err != nil {
			return nil, err
		}
	}
	res.Customers = make([]*customersv1.Customer, len(found))
	for i, c := range found {
		res.Customers[i] = customerToProto(c)
	}
	return connect.NewResponse(res), nil
}

// UpdateCustomerProfile changes the profile fields set in the request.
func (s *Service) UpdateCustomerProfile(ctx context.Context, req *connect.Request[customersv1.UpdateCustomerProfileRequest]) (*connect.Response[customersv1.UpdateCustomerProfileResponse], error) {
	m := req.Msg
	c, err := s.store.Update(ctx, m.GetCustomerId(), func(c *Customer) error {
		if !c.State.profileEditable() {
			return &NotEditableError{CustomerID: c.ID, State: c.State}
		}
		p := c.Profile
		if m.Name != nil {
			p.Name = m.GetName()
		}
		if m.Phone != nil {
			p.Phone = m.GetPhone()
		}
		if m.DateOfBirth != nil {
			p.DateOfBirth = m.GetDateOfBirth()
		}
		if m.Address != nil {
			p.Address = addressFromProto(m.GetAddress())
		}
		if m.TaxId != nil {
			p.TaxID = m.GetTaxId()
		}
		if err := s.checkProfile(p); err != nil {
			return err
		}
		c.Profile = p
		c.UpdatedAt = s.timestamp()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&customersv1.UpdateCustomerProfileResponse{Customer: customerToProto(c)}), nil
}

// ChangeCustomerEmail gives a customer a new email.
func (s *Service) ChangeCustomerEmail(ctx context.Context, req *connect.Request[customersv1.ChangeCustomerEmailRequest]) (*connect.Response[customersv1.ChangeCustomerEmailResponse], error) {
	m := req.Msg
	email := strings.TrimSpace(m.GetNewEmail())
	emailKey, err := s.emailKey(ctx, email)
	if err != nil {
		return nil, err
	}
	c, err := s.store.Update(ctx, m.GetCustomerId(), func(c *Customer) error {
		if !c.State.profileEditable() {
			return &NotEditableError{CustomerID: c.ID, State: c.State}
		}
		c.Email = email
		c.EmailKey = emailKey
		c.UpdatedAt = s.timestamp()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&customersv1.ChangeCustomerEmailResponse{Customer: customerToProto(c)}), nil
}

// FindCustomerByEmail returns the customer with an email, regardless of case.
func (s *Service) FindCustomerByEmail(ctx context.Context, req *connect.Request[customersv1.FindCustomerByEmailRequest]) (*connect.Response[customersv1.FindCustomerByEmailResponse], error) {
	emailKey, err := s.emailKey(ctx, strings.TrimSpace(req.Msg.GetEmail()))
	if err != nil {
		return nil, err
	}
	c, err := s.store.GetByEmailKey(ctx, emailKey)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&customersv1.FindCustomerByEmailResponse{Customer: customerToProto(c)}), nil
}

// ApproveCustomer moves a pending customer to approved.
func (s *Service) ApproveCustomer(ctx context.Context, req *connect.Request[customersv1.ApproveCustomerRequest]) (*connect.Response[customersv1.ApproveCustomerResponse], error) {
	c, err := s.transition(ctx, req.Msg.GetCustomerId(), ActionApprove, "")
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&customersv1.ApproveCustomerResponse{Customer: customerToProto(c)}), nil
}

// RejectCustomer moves a pending customer to rejected.
func (s *Service) RejectCustomer(ctx context.Context, req *connect.Request[customersv1.RejectCustomerRequest]) (*connect.Response[customersv1.RejectCustomerResponse], error) {
	c, err := s.transition(ctx, req.Msg.GetCustomerId(), ActionReject, req.Msg.GetReason())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&customersv1.RejectCustomerResponse{Customer: customerToProto(c)}), nil
}

// SuspendCustomer moves an approved customer to suspended.
func (s *Service) SuspendCustomer(ctx context.Context, req *connect.Request[customersv1.SuspendCustomerRequest]) (*connect.Response[customersv1.SuspendCustomerResponse], error) {
	c, err := s.transition(ctx, req.Msg.GetCustomerId(), ActionSuspend, req.Msg.GetReason())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&customersv1.SuspendCustomerResponse{Customer: customerToProto(c)}), nil
}

// ReinstateCustomer moves a suspended customer back to approved.
func (s *Service) ReinstateCustomer(ctx context.Context, req *connect.Request[customersv1.ReinstateCustomerRequest]) (*connect.Response[customersv1.ReinstateCustomerResponse], error) {
	c, err := s.transition(ctx, req.Msg.GetCustomerId(), ActionReinstate, "")
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&customersv1.ReinstateCustomerResponse{Customer: customerToProto(c)}), nil
}

// CloseCustomer closes a customer for good.
func (s *Service) CloseCustomer(ctx context.Context, req *connect.Request[customersv1.CloseCustomerRequest]) (*connect.Response[customersv1.CloseCustomerResponse], error) {
	c, err := s.transition(ctx, req.Msg.GetCustomerId(), ActionClose, req.Msg.GetReason())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&customersv1.CloseCustomerResponse{Customer: customerToProto(c)}), nil
}

// transition applies one lifecycle action atomically.
func (s *Service) transition(ctx context.Context, id string, action Action, reason string) (Customer, error) {
	return s.store.Update(ctx, id, func(c *Customer) error {
		next, err := c.State.next(c.ID, action)
		if err != nil {
			return err
		}
		c.State = next
		c.StateReason = reason
		c.UpdatedAt = s.timestamp()
		return nil
	})
}

// checkProfile enforces what the contract's rules cannot express.
func (s *Service) checkProfile(p Profile) error {
	if p.DateOfBirth != "" {
		dob, err := time.Parse(time.DateOnly, p.DateOfBirth)
		if err != nil {
			return &domainerr.InvalidArgumentError{Field: "date_of_birth", Description: "is not a date of the calendar (want YYYY-MM-DD)"}
		}
		if dob.After(s.now()) {
			return &domainerr.InvalidArgumentError{Field: "date_of_birth", Description: "is in the future"}
		}
	}
	return nil
}
