// Package accesstest is the conformance suite of the access domain: every
// access.Store must pass Run, the memory backend included, in the spirit of
// SpiceDB's pkg/datastore/test.
//
//	func TestConformance(t *testing.T) {
//		accesstest.Run(t, func(t *testing.T) access.Store { return memory.New() })
//	}
//
// The suite drives the capabilities (the methods of access.Service, one per
// rpc of plinth.access.v1) and the gateway's entry points (Authenticate,
// Bootstrap) over a fresh store per subtest, so every rule is exercised
// through the backend just as the gateway exercises it; where the Store
// interface promises more than the capabilities show, it calls the Store
// directly. Time comes from a clock the suite moves by hand: a key expires
// because a subtest advanced the clock past its expiry, never because it
// slept.
//
// Every subtest runs in parallel with the others on its own store and keeps
// its work modest (a few dozen principals and keys, 16 concurrent callers),
// so that a backend over a real database runs it in seconds.
package accesstest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/pagetoken"
	"plinth.dev/plinth/internal/pagetoken/pagetokentest"
	"plinth.dev/plinth/internal/testclock"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
)

// Option configures Run.
type Option interface{ apply(*suite) }

type optionFunc func(*suite)

func (f optionFunc) apply(s *suite) { f(s) }

// WithStoredContents gives the suite a way to read everything a store
// holds, as text (every row of every table, every field of every value),
// so that it can check that no secret is stored in any form, whatever the
// Store's methods return. dump gets a store newStore returned. Without it,
// the suite checks only what the Store's methods return.
func WithStoredContents(dump func(t *testing.T, s access.Store) string) Option {
	return optionFunc(func(s *suite) { s.dump = dump })
}

// suite runs each test over a harness of its own.
type suite struct {
	newStore func(t *testing.T) access.Store
	dump     func(t *testing.T, s access.Store) string
}

func (s suite) run(t *testing.T, name string, test func(t *testing.T, h *harness)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		test(t, s.newHarness(t))
	})
}

// epoch is where every subtest's clock starts: a fixed instant with
// nanoseconds, finer than the microseconds PostgreSQL keeps, so that a
// service that forgets to truncate shows up as a difference between what it
// answered and what it stored.
var epoch = time.Date(2025, time.March, 14, 15, 9, 26, 535897932, time.UTC)

// stamp is the timestamp the service answers for an instant: it keeps
// microseconds, the precision every store keeps.
func stamp(t time.Time) *timestamppb.Timestamp {
	return timestamppb.New(t.UTC().Truncate(time.Microsecond))
}

// undefinedRole is the prefix of the roles the suite's role check refuses,
// as the gateway refuses a role its configuration does not define.
const undefinedRole = "undefined"

func roleExists(role string) bool { return !strings.HasPrefix(role, undefinedRole) }

// harness is the service over one store, with its clock.
type harness struct {
	store access.Store // as newStore returned it
	uses  *countingStore
	svc   *access.Service
	clock *testclock.Clock
	suite suite
	seq   atomic.Int64 // numbers the names the suite makes up
}

func (s suite) newHarness(t *testing.T) *harness {
	t.Helper()
	store := s.newStore(t)
	if store == nil {
		t.Fatal("newStore returned a nil store")
	}
	c := testclock.New(epoch)
	uses := &countingStore{Store: store}
	return &harness{
		store: store,
		uses:  uses,
		svc:   access.NewService(uses, access.WithClock(c.Now), access.WithRoleCheck(roleExists), access.WithPageTokens(pageTokens(t, pagetokentest.Key))),
		clock: c,
		suite: s,
	}
}

// pageTokens returns a page-token Codec with key: the same key stands for
// the gateways of one deployment, another key for another deployment.
func pageTokens(t *testing.T, key []byte) *pagetoken.Codec {
	t.Helper()
	c, err := pagetoken.NewCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// countingStore counts the writes Authenticate makes to record that a key
// was used.
type countingStore struct {
	access.Store
	recordedUses atomic.Int64
}

func (s *countingStore) RecordKeyUse(ctx context.Context, id string, at, notBefore time.Time) error {
	s.recordedUses.Add(1)
	return s.Store.RecordKeyUse(ctx, id, at, notBefore)
}

// name returns a principal name no other principal of this harness has.
func (h *harness) name() string {
	return fmt.Sprintf("service-%04d", h.seq.Add(1))
}

// newPrincipal creates a principal with a fresh name, failing the test if
// it can't.
func (h *harness) newPrincipal(t *testing.T) *accessv1.Principal {
	t.Helper()
	res, err := h.svc.CreatePrincipal(t.Context(), connect.NewRequest(&accessv1.CreatePrincipalRequest{
		Name: h.name(), Description: "made up by the conformance suite",
	}))
	if err != nil {
		t.Fatalf("CreatePrincipal: %v", err)
	}
	return res.Msg.GetPrincipal()
}

func (h *harness) getPrincipal(t *testing.T, id string) *accessv1.Principal {
	t.Helper()
	res, err := h.svc.GetPrincipal(t.Context(), connect.NewRequest(&accessv1.GetPrincipalRequest{PrincipalId: id}))
	if err != nil {
		t.Fatalf("GetPrincipal(%s): %v", id, err)
	}
	return res.Msg.GetPrincipal()
}

func (h *harness) grant(ctx context.Context, id, role string) (*accessv1.Principal, error) {
	res, err := h.svc.GrantRole(ctx, connect.NewRequest(&accessv1.GrantRoleRequest{PrincipalId: id, Role: role}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetPrincipal(), nil
}

func (h *harness) revokeRole(ctx context.Context, id, role string) (*accessv1.Principal, error) {
	res, err := h.svc.RevokeRole(ctx, connect.NewRequest(&accessv1.RevokeRoleRequest{PrincipalId: id, Role: role}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetPrincipal(), nil
}

// issued is a key as IssueApiKey or RotateApiKey answered it.
type issued struct {
	key    *accessv1.ApiKey
	secret string
}

func (h *harness) issue(ctx context.Context, req *accessv1.IssueApiKeyRequest) (issued, error) {
	res, err := h.svc.IssueApiKey(ctx, connect.NewRequest(req))
	if err != nil {
		return issued{}, err
	}
	return issued{res.Msg.GetApiKey(), res.Msg.GetSecret()}, nil
}

// mustIssue issues a principal a key that never expires.
func (h *harness) mustIssue(t *testing.T, principalID string) issued {
	t.Helper()
	k, err := h.issue(t.Context(), &accessv1.IssueApiKeyRequest{PrincipalId: principalID, Description: "suite key"})
	if err != nil {
		t.Fatalf("IssueApiKey(%s): %v", principalID, err)
	}
	return k
}

// rotate rotates a key; it answers the new key and the old one.
func (h *harness) rotate(ctx context.Context, req *accessv1.RotateApiKeyRequest) (issued, *accessv1.ApiKey, error) {
	res, err := h.svc.RotateApiKey(ctx, connect.NewRequest(req))
	if err != nil {
		return issued{}, nil, err
	}
	return issued{res.Msg.GetApiKey(), res.Msg.GetSecret()}, res.Msg.GetPreviousApiKey(), nil
}

func (h *harness) mustRotate(t *testing.T, id string, overlap time.Duration) (issued, *accessv1.ApiKey) {
	t.Helper()
	next, old, err := h.rotate(t.Context(), &accessv1.RotateApiKeyRequest{ApiKeyId: id, Overlap: durationpb.New(overlap)})
	if err != nil {
		t.Fatalf("RotateApiKey(%s, %v): %v", id, overlap, err)
	}
	return next, old
}

func (h *harness) revokeKey(ctx context.Context, id string) (*accessv1.ApiKey, error) {
	res, err := h.svc.RevokeApiKey(ctx, connect.NewRequest(&accessv1.RevokeApiKeyRequest{ApiKeyId: id}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetApiKey(), nil
}

// listKeys reads every key of a principal, page by page.
func (h *harness) listKeys(t *testing.T, principalID string, pageSize int32) [][]*accessv1.ApiKey {
	t.Helper()
	var pages [][]*accessv1.ApiKey
	token := ""
	for {
		res, err := h.svc.ListApiKeys(t.Context(), connect.NewRequest(&accessv1.ListApiKeysRequest{
			PrincipalId: principalID, PageSize: pageSize, PageToken: token,
		}))
		if err != nil {
			t.Fatalf("ListApiKeys(%s, page size %d): %v", principalID, pageSize, err)
		}
		pages = append(pages, res.Msg.GetApiKeys())
		if token = res.Msg.GetNextPageToken(); token == "" {
			return pages
		}
		if len(pages) > 1000 {
			t.Fatal("ListApiKeys keeps returning a next page")
		}
	}
}

// keyByID returns the key with the id as ListApiKeys describes it.
func (h *harness) keyByID(t *testing.T, principalID, id string) *accessv1.ApiKey {
	t.Helper()
	for _, page := range h.listKeys(t, principalID, 0) {
		for _, k := range page {
			if k.GetId() == id {
				return k
			}
		}
	}
	t.Fatalf("ListApiKeys(%s) does not list key %s", principalID, id)
	return nil
}

// listPrincipals reads every principal, page by page.
func (h *harness) listPrincipals(t *testing.T, pageSize int32) [][]*accessv1.Principal {
	t.Helper()
	var pages [][]*accessv1.Principal
	token := ""
	for {
		res, err := h.svc.ListPrincipals(t.Context(), connect.NewRequest(&accessv1.ListPrincipalsRequest{
			PageSize: pageSize, PageToken: token,
		}))
		if err != nil {
			t.Fatalf("ListPrincipals(page size %d): %v", pageSize, err)
		}
		pages = append(pages, res.Msg.GetPrincipals())
		if token = res.Msg.GetNextPageToken(); token == "" {
			return pages
		}
		if len(pages) > 1000 {
			t.Fatal("ListPrincipals keeps returning a next page")
		}
	}
}

// wantAuthenticates fails the test unless secret authenticates principal
// (with exactly the principal's roles as GetPrincipal reads them).
func (h *harness) wantAuthenticates(t *testing.T, what, secret string, principal *accessv1.Principal) access.Principal {
	t.Helper()
	p, err := h.svc.Authenticate(t.Context(), secret)
	if err != nil {
		t.Fatalf("%s: Authenticate: %v, want principal %s", what, err, principal.GetId())
	}
	want := h.getPrincipal(t, principal.GetId())
	if p.ID != want.GetId() || p.Name != want.GetName() || strings.Join(p.Roles, ",") != strings.Join(want.GetRoles(), ",") {
		t.Fatalf("%s: Authenticate = %s %q roles %q, want %s %q roles %q",
			what, p.ID, p.Name, p.Roles, want.GetId(), want.GetName(), want.GetRoles())
	}
	return p
}

// wantRefused fails the test unless secret is refused with
// access.ErrUnauthenticated, the one error for every failure.
func (h *harness) wantRefused(t *testing.T, what, secret string) {
	t.Helper()
	p, err := h.svc.Authenticate(t.Context(), secret)
	wantUnauthenticated(t, what, p, err, secret)
}

func wantUnauthenticated(t *testing.T, what string, p access.Principal, err error, secret string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: Authenticate succeeded (principal %s), want it refused", what, p.ID)
	}
	if !errors.Is(err, access.ErrUnauthenticated) {
		t.Fatalf("%s: Authenticate: %v (%T), want access.ErrUnauthenticated", what, err, err)
	}
	// One error, word for word: nothing in it tells one failure from
	// another.
	if err.Error() != access.ErrUnauthenticated.Error() {
		t.Fatalf("%s: Authenticate: %q, want exactly %q", what, err, access.ErrUnauthenticated)
	}
	if _, ok := domainerr.KindOf(err); ok {
		t.Fatalf("%s: Authenticate's refusal %q is a domain error; it must be ErrUnauthenticated alone", what, err)
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		t.Fatalf("%s: the refusal repeats the presented key", what)
	}
	if p.ID != "" || p.Name != "" || p.Roles != nil {
		t.Fatalf("%s: a refused Authenticate returned principal %+v", what, p)
	}
}

var (
	principalIDPattern = regexp.MustCompile(`^prn_[0-9A-Z]{26}$`)
	keyIDPattern       = regexp.MustCompile(`^key_[0-9A-Z]{26}$`)
	secretPattern      = regexp.MustCompile(`^plk_([0-9a-f]{8})_[0-9a-f]{64}$`)
)

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

func wantNotFound(t *testing.T, err error, resource, id string) {
	t.Helper()
	nf := errorAs[*domainerr.NotFoundError](t, err)
	if nf.Resource != resource || nf.ID != id {
		t.Fatalf("NotFoundError{%q, %q}, want {%q, %q}", nf.Resource, nf.ID, resource, id)
	}
	wantKind(t, err, domainerr.KindNotFound)
}

func wantInvalidArgument(t *testing.T, err error, field string) {
	t.Helper()
	ia := errorAs[*domainerr.InvalidArgumentError](t, err)
	if ia.Field != field {
		t.Fatalf("InvalidArgumentError.Field = %q, want %q (error %q)", ia.Field, field, err)
	}
	wantKind(t, err, domainerr.KindInvalidArgument)
}

// wantSame fails the test unless got and want are equal, field for field.
func wantSame(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}
