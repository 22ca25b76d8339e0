package resources_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/customers"
	customersmemory "plinth.dev/plinth/capabilities/customers/memory"
	"plinth.dev/plinth/capabilities/domainerr"
	ledgermemory "plinth.dev/plinth/capabilities/ledger/memory"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/capabilities/resources"
	"plinth.dev/plinth/capabilities/resources/composite"
	resourcesv1 "plinth.dev/plinth/sdk/go/gen/plinth/resources/v1"
)

// TestRegistered: the resources domain mounts over its composite backend,
// and the customers and ledger domains declare their resource sources, over
// the stores their backends open.
func TestRegistered(t *testing.T) {
	stores := map[string]any{"customers": customersmemory.New(), "ledger": ledgermemory.New()}
	var sources []registry.ResourceSource
	var mounted bool
	for _, d := range registry.Domains() {
		switch d.Name {
		case "customers", "ledger":
			if d.Resources == nil {
				t.Errorf("domain %s declares no Resources", d.Name)
				continue
			}
			src, err := d.Resources(stores[d.Name])
			if err != nil {
				t.Fatalf("domain %s: Resources: %v", d.Name, err)
			}
			sources = append(sources, src)
			if _, err := d.Resources(42); err == nil || !strings.Contains(err.Error(), "int") {
				t.Errorf("domain %s: Resources(not a store) = %v, want an error naming the type", d.Name, err)
			}
		case "resources":
			if d.DefaultBackend != "composite" || d.Resources != nil {
				t.Errorf("domain resources: default backend %q, Resources %v", d.DefaultBackend, d.Resources != nil)
			}
			path, h, err := d.Mount(composite.New(func() []registry.ResourceSource { return sources }), registry.Env{})
			if err != nil || h == nil || path != "/plinth.resources.v1.ResourceService/" {
				t.Errorf("Mount = %q, %v, %v", path, h, err)
			}
			mounted = true
		}
	}
	if len(sources) != 2 || !mounted {
		t.Fatalf("registered: %d sources, resources mounted %v", len(sources), mounted)
	}
}

// sourceStub is a source of prefix "cus" that knows nothing.
type sourceStub struct{}

func (sourceStub) Prefixes() []string { return []string{"cus"} }
func (sourceStub) CustomerResources(context.Context, registry.ResourceQuery) ([]registry.Resource, error) {
	return nil, nil
}
func (sourceStub) Resource(_ context.Context, id string) (registry.Resource, error) {
	return registry.Resource{}, &domainerr.NotFoundError{Resource: "stub", ID: id}
}

// Two sources that claim one prefix are a wiring bug: an internal error
// (not a domain error), never one of them chosen at random.
func TestTwoSourcesOfOnePrefix(t *testing.T) {
	sources := []registry.ResourceSource{customers.Resources(customersmemory.New()), sourceStub{}}
	svc := resources.NewService(composite.New(func() []registry.ResourceSource { return sources }))
	_, err := svc.GetResource(t.Context(), connect.NewRequest(&resourcesv1.GetResourceRequest{ResourceId: "cus_01JQ0000000000000000000000"}))
	if _, isDomain := domainerr.KindOf(err); err == nil || isDomain || !strings.Contains(err.Error(), `"cus"`) {
		t.Errorf("GetResource over two sources of cus_: %v", err)
	}
}

// Without sources every id is of an unknown kind.
func TestNoSources(t *testing.T) {
	svc := resources.NewService(composite.New(func() []registry.ResourceSource { return nil }))
	_, err := svc.ListCustomerResources(t.Context(), connect.NewRequest(&resourcesv1.ListCustomerResourcesRequest{CustomerId: "cus_01JQ0000000000000000000000"}))
	var unknown *resources.UnknownPrefixError
	if !errors.As(err, &unknown) || unknown.Field != "customer_id" || len(unknown.Known) != 0 ||
		!strings.Contains(err.Error(), "serves no kind of resource") {
		t.Errorf("ListCustomerResources without sources: %v", err)
	}
}
