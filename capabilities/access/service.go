package access

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/ids"
	"plinth.dev/plinth/internal/pagetoken"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/access/v1/accessv1connect"
)

// Service implements the access capabilities over a Store, and the
// authentication the gateway performs on every call (Authenticate). The
// gateway validates requests against the contract before they reach it;
// Service enforces what the contract cannot say (unique names, roles the
// configuration defines, the life of a key).
type Service struct {
	store      Store
	now        func() time.Time
	roleExists func(role string) bool
	tokens     *pagetoken.Codec
}

var _ accessv1connect.AccessServiceHandler = (*Service)(nil)

// Option configures a Service.
type Option interface{ apply(*Service) }

type optionFunc func(*Service)

func (f optionFunc) apply(s *Service) { f(s) }

// WithClock makes the Service read the time from now: when keys are
// created, revoked and used, and whether they have expired. It defaults to
// time.Now.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(s *Service) { s.now = now })
}

// WithRoleCheck makes GrantRole (and Bootstrap) refuse a role for which
// exists returns false, with an *UnknownRoleError: the gateway passes the
// roles its configuration defines. RevokeRole takes away any role, defined
// or not, so that a role dropped from the configuration can still be
// cleaned up. It defaults to accepting every role; a nil exists restores
// the default.
func WithRoleCheck(exists func(role string) bool) Option {
	return optionFunc(func(s *Service) { s.roleExists = exists })
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

// NewService returns the access capabilities over store.
func NewService(store Store, opts ...Option) *Service {
	s := &Service{store: store, now: time.Now, tokens: pagetoken.NewEphemeralCodec()}
	for _, o := range opts {
		o.apply(s)
	}
	if s.roleExists == nil {
		s.roleExists = func(string) bool { return true }
	}
	return s
}

// timestamp returns the current time at the precision every store keeps
// (PostgreSQL keeps microseconds), so backends return identical values.
func (s *Service) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// CreatePrincipal records a new principal, with no role.
func (s *Service) CreatePrincipal(ctx context.Context, req *connect.Request[accessv1.CreatePrincipalRequest]) (*connect.Response[accessv1.CreatePrincipalResponse], error) {
	p := Principal{
		ID:          ids.New("prn"),
		Name:        req.Msg.GetName(),
		Description: req.Msg.GetDescription(),
		CreatedAt:   s.timestamp(),
	}
	if err := s.store.CreatePrincipal(ctx, p); err != nil {
		return nil, err
	}
	return connect.NewResponse(&accessv1.CreatePrincipalResponse{Principal: principalToProto(p)}), nil
}

// GetPrincipal returns one principal by id.
func (s *Service) GetPrincipal(ctx context.Context, req *connect.Request[accessv1.GetPrincipalRequest]) (*connect.Response[accessv1.GetPrincipalResponse], error) {
	p, err := s.store.GetPrincipal(ctx, req.Msg.GetPrincipalId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&accessv1.GetPrincipalResponse{Principal: principalToProto(p)}), nil
}

// ListPrincipals returns a page of principals ordered by id.
func (s *Service) ListPrincipals(ctx context.Context, req *connect.Request[accessv1.ListPrincipalsRequest]) (*connect.Response[accessv1.ListPrincipalsResponse], error) {
	const filter = "ListPrincipals"
	after, err := s.tokens.Decode(ctx, "page_token", filter, req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := pagetoken.Size(req.Msg.GetPageSize())
	// One more than the page, to know whether another page follows.
	found, err := s.store.ListPrincipals(ctx, PrincipalQuery{AfterID: after, Limit: size + 1})
	if err != nil {
		return nil, err
	}
	res := &accessv1.ListPrincipalsResponse{}
	if len(found) > size {
		found = found[:size]
		if res.NextPageToken, err = s.tokens.Encode(ctx, filter, found[size-1].ID); err != nil {
			return nil, err
		}
	}
	res.Principals = make([]*accessv1.Principal, len(found))
	for i, p := range found {
		res.Principals[i] = principalToProto(p)
	}
	return connect.NewResponse(res), nil
}

// GrantRole gives a principal a role the configuration defines.
func (s *Service) GrantRole(ctx context.Context, req *connect.Request[accessv1.GrantRoleRequest]) (*connect.Response[accessv1.GrantRoleResponse], error) {
	role := req.Msg.GetRole()
	if !s.roleExists(role) {
		return nil, &UnknownRoleError{Role: role}
	}
	p, err := s.store.GrantRole(ctx, req.Msg.GetPrincipalId(), role)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&accessv1.GrantRoleResponse{Principal: principalToProto(p)}), nil
}

// RevokeRole takes a role from a principal.
func (s *Service) RevokeRole(ctx context.Context, req *connect.Request[accessv1.RevokeRoleRequest]) (*connect.Response[accessv1.RevokeRoleResponse], error) {
	p, err := s.store.RevokeRole(ctx, req.Msg.GetPrincipalId(), req.Msg.GetRole())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&accessv1.RevokeRoleResponse{Principal: principalToProto(p)}), nil
}

// IssueApiKey issues a principal a new key and returns its secret, once.
func (s *Service) IssueApiKey(ctx context.Context, req *connect.Request[accessv1.IssueApiKeyRequest]) (*connect.Response[accessv1.IssueApiKeyResponse], error) {
	now := s.timestamp()
	expiresAt, err := s.expiry("expires_at", req.Msg.GetExpiresAt(), now)
	if err != nil {
		return nil, err
	}
	var (
		k  APIKey
		cr credential
	)
	err = retryOnPrefixTaken(func() error {
		k, cr = s.newKey(req.Msg.GetPrincipalId(), req.Msg.GetDescription(), now, expiresAt)
		return s.store.CreateKey(ctx, k)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&accessv1.IssueApiKeyResponse{
		ApiKey: keyToProto(k, now),
		Secret: cr.presented,
	}), nil
}

// RotateApiKey replaces an active key with a new one of the same
// principal; the old key works for the overlap only.
func (s *Service) RotateApiKey(ctx context.Context, req *connect.Request[accessv1.RotateApiKeyRequest]) (*connect.Response[accessv1.RotateApiKeyResponse], error) {
	m := req.Msg
	// The contract says as much; a caller that bypasses the gateway gets
	// the same answer.
	if m.GetOverlap() == nil {
		return nil, &domainerr.InvalidArgumentError{Field: "overlap", Description: "is required (0s stops the old key at once)"}
	}
	overlap := m.GetOverlap().AsDuration()
	if m.GetOverlap().CheckValid() != nil || overlap < 0 || overlap > MaxRotationOverlap {
		return nil, &domainerr.InvalidArgumentError{Field: "overlap", Description: "must be from 0 to 7 days"}
	}
	now := s.timestamp()
	expiresAt, err := s.expiry("expires_at", m.GetExpiresAt(), now)
	if err != nil {
		return nil, err
	}
	var (
		old, successor APIKey
		cr             credential
	)
	err = retryOnPrefixTaken(func() (err error) {
		old, successor, err = s.store.RotateKey(ctx, m.GetApiKeyId(), func(k *APIKey) (APIKey, error) {
			if st := k.StateAt(now); st != KeyActive {
				return APIKey{}, &KeyNotActiveError{KeyID: k.ID, State: st}
			}
			// Rotation never lengthens a key's life.
			if end := now.Add(overlap); k.ExpiresAt.IsZero() || end.Before(k.ExpiresAt) {
				k.ExpiresAt = end
			}
			var next APIKey
			next, cr = s.newKey(k.PrincipalID, k.Description, now, expiresAt)
			return next, nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&accessv1.RotateApiKeyResponse{
		ApiKey:         keyToProto(successor, now),
		Secret:         cr.presented,
		PreviousApiKey: keyToProto(old, now),
	}), nil
}

// RevokeApiKey stops a key working from the next call on.
func (s *Service) RevokeApiKey(ctx context.Context, req *connect.Request[accessv1.RevokeApiKeyRequest]) (*connect.Response[accessv1.RevokeApiKeyResponse], error) {
	now := s.timestamp()
	k, err := s.store.UpdateKey(ctx, req.Msg.GetApiKeyId(), func(k *APIKey) error {
		if k.RevokedAt.IsZero() { // a second revocation keeps the first's time
			k.RevokedAt = now
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&accessv1.RevokeApiKeyResponse{ApiKey: keyToProto(k, now)}), nil
}

// ListApiKeys returns a page of a principal's keys ordered by id.
func (s *Service) ListApiKeys(ctx context.Context, req *connect.Request[accessv1.ListApiKeysRequest]) (*connect.Response[accessv1.ListApiKeysResponse], error) {
	principalID := req.Msg.GetPrincipalId()
	filter := "ListApiKeys principal=" + principalID
	after, err := s.tokens.Decode(ctx, "page_token", filter, req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := pagetoken.Size(req.Msg.GetPageSize())
	found, err := s.store.ListKeys(ctx, KeyQuery{PrincipalID: principalID, AfterID: after, Limit: size + 1})
	if err != nil {
		return nil, err
	}
	now := s.timestamp()
	res := &accessv1.ListApiKeysResponse{}
	if len(found) > size {
		found = found[:size]
		if res.NextPageToken, err = s.tokens.Encode(ctx, filter, found[size-1].ID); err != nil {
			return nil, err
		}
	}
	res.ApiKeys = make([]*accessv1.ApiKey, len(found))
	for i, k := range found {
		res.ApiKeys[i] = keyToProto(k, now)
	}
	return connect.NewResponse(res), nil
}

// newKey makes a new key of a principal, and the credential its holder
// gets.
func (s *Service) newKey(principalID, description string, now, expiresAt time.Time) (APIKey, credential) {
	cr := newCredential()
	return APIKey{
		ID:          ids.New("key"),
		PrincipalID: principalID,
		Prefix:      cr.prefix,
		SecretHash:  cr.hash,
		Description: description,
		CreatedAt:   now,
		ExpiresAt:   expiresAt,
	}, cr
}

// expiry returns the expiry a request asks for (zero: never), which must
// be after now.
func (s *Service) expiry(field string, ts *timestamppb.Timestamp, now time.Time) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, &domainerr.InvalidArgumentError{Field: field, Description: "is not a valid timestamp"}
	}
	at := ts.AsTime().UTC().Truncate(time.Microsecond)
	if !at.After(now) {
		return time.Time{}, &domainerr.InvalidArgumentError{Field: field, Description: "must be in the future"}
	}
	return at, nil
}

// prefixAttempts is how many fresh keys a capability draws before it gives
// up on finding an unused prefix: with 32-bit prefixes, a second clash in a
// row means something other than chance is wrong.
const prefixAttempts = 3

// retryOnPrefixTaken calls create until it does not fail with a
// *PrefixTakenError, at most prefixAttempts times.
func retryOnPrefixTaken(create func() error) error {
	var err error
	for range prefixAttempts {
		err = create()
		if _, taken := errors.AsType[*PrefixTakenError](err); !taken {
			return err
		}
	}
	// Not wrapped: the clash is not the caller's to resolve, so it must not
	// reach them as AlreadyExists.
	return fmt.Errorf("access: %d new keys in a row drew a prefix in use (%v)", prefixAttempts, err)
}
