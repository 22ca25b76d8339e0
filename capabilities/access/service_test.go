package access_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/access/memory"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/registry"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// clashingStore answers the first clashes key writes with a
// *PrefixTakenError, as a store does when a new key's random prefix is in
// use.
type clashingStore struct {
	access.Store
	clashes int
}

func (s *clashingStore) clash(prefix string) error {
	if s.clashes > 0 {
		s.clashes--
		return &access.PrefixTakenError{Prefix: prefix}
	}
	return nil
}

func (s *clashingStore) CreateKey(ctx context.Context, k access.APIKey) error {
	if err := s.clash(k.Prefix); err != nil {
		return err
	}
	return s.Store.CreateKey(ctx, k)
}

func (s *clashingStore) RotateKey(ctx context.Context, id string, rotate func(*access.APIKey) (access.APIKey, error)) (access.APIKey, access.APIKey, error) {
	if err := s.clash(""); err != nil {
		return access.APIKey{}, access.APIKey{}, err
	}
	return s.Store.RotateKey(ctx, id, rotate)
}

func newPrincipal(t *testing.T, svc *access.Service) *accessv1.Principal {
	t.Helper()
	res, err := svc.CreatePrincipal(t.Context(), connect.NewRequest(&accessv1.CreatePrincipalRequest{Name: "payroll-app"}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetPrincipal()
}

// A prefix in use is the service's to resolve: it draws another key, and
// the caller never hears of it, unless clashes go on (then something other
// than chance is wrong, and the caller gets an internal error, not
// AlreadyExists).
func TestPrefixClashesAreRetried(t *testing.T) {
	for clashes, wantOK := range map[int]bool{0: true, 1: true, 2: true, 3: false} {
		t.Run(fmt.Sprint(clashes), func(t *testing.T) {
			store := &clashingStore{Store: memory.New()}
			svc := access.NewService(store)
			p := newPrincipal(t, svc)
			store.clashes = clashes
			res, err := svc.IssueApiKey(t.Context(), connect.NewRequest(&accessv1.IssueApiKeyRequest{PrincipalId: p.GetId()}))
			if !wantOK {
				if err == nil {
					t.Fatal("IssueApiKey succeeded through 3 clashes")
				}
				if _, isDomain := domainerr.KindOf(err); isDomain {
					t.Fatalf("IssueApiKey after 3 clashes = %v, a domain error; want an internal one", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("IssueApiKey after %d clashes: %v", clashes, err)
			}
			if _, err := svc.Authenticate(t.Context(), res.Msg.GetSecret()); err != nil {
				t.Fatalf("the key issued after %d clashes does not authenticate: %v", clashes, err)
			}

			store.clashes = clashes
			rot, err := svc.RotateApiKey(t.Context(), connect.NewRequest(&accessv1.RotateApiKeyRequest{
				ApiKeyId: res.Msg.GetApiKey().GetId(), Overlap: durationpb.New(time.Hour),
			}))
			if err != nil {
				t.Fatalf("RotateApiKey after %d clashes: %v", clashes, err)
			}
			if _, err := svc.Authenticate(t.Context(), rot.Msg.GetSecret()); err != nil {
				t.Fatalf("the key rotated in after %d clashes does not authenticate: %v", clashes, err)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	var found bool
	for _, d := range registry.Domains() {
		if d.Name != "access" {
			continue
		}
		found = true
		if d.DefaultBackend != "memory" || d.Service.FullName() != "plinth.access.v1.AccessService" {
			t.Errorf("domain access: default backend %q, service %s", d.DefaultBackend, d.Service.FullName())
		}
		path, h, err := d.Mount(memory.New(), registry.Env{})
		if err != nil || h == nil || path != "/plinth.access.v1.AccessService/" {
			t.Errorf("Mount = %q, %v, %v", path, h, err)
		}
	}
	if !found {
		t.Fatal("the access domain is not registered")
	}
}

// The contract's rules say what a valid request is; these are the ones the
// service relies on.
func TestContractRules(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	const (
		prn = "prn_01JQ0000000000000000000001"
		key = "key_01JQ0000000000000000000001"
	)
	future := timestamppb.New(time.Now().Add(time.Hour))
	past := timestamppb.New(time.Now().Add(-time.Hour))
	for _, tc := range []struct {
		name  string
		msg   proto.Message
		valid bool
	}{
		{"a service name", &accessv1.CreatePrincipalRequest{Name: "payroll-app"}, true},
		{"a name of 64", &accessv1.CreatePrincipalRequest{Name: "a" + strings.Repeat("b", 63)}, true},
		{"a name of 65", &accessv1.CreatePrincipalRequest{Name: "a" + strings.Repeat("b", 64)}, false},
		{"an empty name", &accessv1.CreatePrincipalRequest{}, false},
		{"an upper-case name", &accessv1.CreatePrincipalRequest{Name: "Payroll"}, false},
		{"a name with a dot", &accessv1.CreatePrincipalRequest{Name: "payroll.app"}, false},
		{"a name starting with a digit", &accessv1.CreatePrincipalRequest{Name: "1payroll"}, false},
		{"a dotted role", &accessv1.GrantRoleRequest{PrincipalId: prn, Role: "payroll.operator_2-b"}, true},
		{"an upper-case role", &accessv1.GrantRoleRequest{PrincipalId: prn, Role: "Admin"}, false},
		{"an empty role", &accessv1.RevokeRoleRequest{PrincipalId: prn}, false},
		{"a malformed principal id", &accessv1.GetPrincipalRequest{PrincipalId: "prn_1"}, false},
		{"a key that never expires", &accessv1.IssueApiKeyRequest{PrincipalId: prn}, true},
		{"a key that expires", &accessv1.IssueApiKeyRequest{PrincipalId: prn, ExpiresAt: future}, true},
		{"a key that expired", &accessv1.IssueApiKeyRequest{PrincipalId: prn, ExpiresAt: past}, false},
		{"overlap 0", &accessv1.RotateApiKeyRequest{ApiKeyId: key, Overlap: durationpb.New(0)}, true},
		{"overlap 7 days", &accessv1.RotateApiKeyRequest{ApiKeyId: key, Overlap: durationpb.New(access.MaxRotationOverlap)}, true},
		{"overlap over 7 days", &accessv1.RotateApiKeyRequest{ApiKeyId: key, Overlap: durationpb.New(access.MaxRotationOverlap + time.Second)}, false},
		{"negative overlap", &accessv1.RotateApiKeyRequest{ApiKeyId: key, Overlap: durationpb.New(-time.Second)}, false},
		{"no overlap", &accessv1.RotateApiKeyRequest{ApiKeyId: key}, false},
		{"a malformed key id", &accessv1.RevokeApiKeyRequest{ApiKeyId: "key_1"}, false},
		{"page size 200", &accessv1.ListApiKeysRequest{PrincipalId: prn, PageSize: 200}, true},
		{"page size 201", &accessv1.ListPrincipalsRequest{PageSize: 201}, false},
	} {
		err := v.Validate(tc.msg)
		if tc.valid && err != nil {
			t.Errorf("%s: refused: %v", tc.name, err)
		}
		if !tc.valid && err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// Every capability names its owner, its scope and whether it mutates.
func TestCapabilityScopes(t *testing.T) {
	reads := []string{"GetPrincipal", "ListPrincipals", "ListApiKeys"}
	methods := accessv1.File_plinth_access_v1_access_proto.Services().ByName("AccessService").Methods()
	for i := range methods.Len() {
		m := methods.Get(i)
		opts := m.Options()
		c, _ := proto.GetExtension(opts, optionsv1.E_Capability).(*optionsv1.Capability)
		if c == nil {
			t.Fatalf("%s has no capability option", m.Name())
		}
		wantScope, wantMutates := "access.write", true
		if slices.Contains(reads, string(m.Name())) {
			wantScope, wantMutates = "access.read", false
		}
		if c.GetOwner() != "security-platform" || c.GetScope() != wantScope || c.GetMutates() != wantMutates ||
			c.GetStability() != optionsv1.Stability_STABILITY_STABLE || c.GetSummary() == "" {
			t.Errorf("%s: %v; want owner security-platform, scope %q, mutates %v, stable, a summary",
				m.Name(), c, wantScope, wantMutates)
		}
	}
}

// ExampleService_Authenticate shows what the gateway does with the bearer
// key of every call.
func ExampleService_Authenticate() {
	ctx := context.Background()
	svc := access.NewService(memory.New())

	secret, err := svc.Bootstrap(ctx) // shown once: print it for the operator
	if err != nil {
		panic(err)
	}
	p, err := svc.Authenticate(ctx, secret)
	fmt.Println(p.Name, p.Roles, err)

	_, err = svc.Authenticate(ctx, "plk_00000000_"+strings.Repeat("0", 64))
	fmt.Println(errors.Is(err, access.ErrUnauthenticated))
	// Output:
	// admin [admin] <nil>
	// true
}
