package registry_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/registry"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
)

func mountNothing(any, registry.Env, ...connect.HandlerOption) (string, http.Handler, error) {
	return "/", nil, nil
}

func open(context.Context, registry.Env) (any, error) { return struct{}{}, nil }

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatalf("did not panic; want a panic saying %q", want)
		}
		if !strings.Contains(r.(string), want) {
			t.Fatalf("panicked with %q, want %q", r, want)
		}
	}()
	f()
}

func TestRegistry(t *testing.T) {
	service := customersv1.File_plinth_customers_v1_customers_proto.Services().Get(0)
	registry.RegisterDomain(registry.Domain{Name: "testdomain", Service: service, DefaultBackend: "one",
		Mount: mountNothing})
	registry.RegisterBackend(registry.Backend{Domain: "testdomain", Name: "one", Open: open})
	registry.RegisterBackend(registry.Backend{Domain: "testdomain", Name: "two", Open: open})

	mustPanic(t, "registered twice", func() {
		registry.RegisterBackend(registry.Backend{Domain: "testdomain", Name: "one", Open: open})
	})
	mustPanic(t, "registered twice", func() {
		registry.RegisterDomain(registry.Domain{Name: "testdomain", Service: service, DefaultBackend: "one",
			Mount: mountNothing})
	})
	mustPanic(t, "must match", func() {
		registry.RegisterBackend(registry.Backend{Domain: "testdomain", Name: "", Open: open})
	})
	mustPanic(t, "needs an Open", func() {
		registry.RegisterBackend(registry.Backend{Domain: "testdomain", Name: "three"})
	})

	b, err := registry.LookupBackend("testdomain", "two")
	if err != nil || b.ID() != "testdomain.two" {
		t.Fatalf("LookupBackend = %v, %v", b, err)
	}
	_, err = registry.LookupBackend("testdomain", "mongo")
	if err == nil || !strings.Contains(err.Error(), `unknown backend "mongo"`) || !strings.Contains(err.Error(), "one, two") {
		t.Fatalf("an unknown backend's error should list the known ones: %v", err)
	}
	_, err = registry.LookupBackend("nodomain", "one")
	if err == nil || !strings.Contains(err.Error(), "testdomain") {
		t.Fatalf("an unknown domain's error should list the known ones: %v", err)
	}
}

type store interface{ Get() string }

type fakeStore struct{}

func (fakeStore) Get() string { return "x" }

func TestMountFuncChecksTheStoreType(t *testing.T) {
	mount := registry.MountFunc(func(s store, _ registry.Env, _ ...connect.HandlerOption) (string, http.Handler) {
		return "/svc/" + s.Get(), http.NotFoundHandler()
	})
	if path, _, err := mount(fakeStore{}, registry.Env{}); err != nil || path != "/svc/x" {
		t.Fatalf("mount(a store) = %q, %v", path, err)
	}
	if _, _, err := mount(42, registry.Env{}); err == nil || !strings.Contains(err.Error(), "int") {
		t.Fatalf("mount(not a store) = %v, want an error naming the type", err)
	}
}

type sourceOf struct{ store }

func (sourceOf) Prefixes() []string { return []string{"tst"} }
func (sourceOf) CustomerResources(context.Context, registry.ResourceQuery) ([]registry.Resource, error) {
	return nil, nil
}
func (s sourceOf) Resource(_ context.Context, id string) (registry.Resource, error) {
	return registry.Resource{ID: id, Type: s.Get()}, nil
}

func TestResourcesFuncChecksTheStoreType(t *testing.T) {
	resources := registry.ResourcesFunc(func(s store) registry.ResourceSource { return sourceOf{s} })
	src, err := resources(fakeStore{})
	if err != nil {
		t.Fatalf("resources(a store) = %v", err)
	}
	if r, _ := src.Resource(t.Context(), "tst_1"); r.Type != "x" {
		t.Errorf("the source is not over the store: %+v", r)
	}
	if _, err := resources(42); err == nil || !strings.Contains(err.Error(), "int") {
		t.Fatalf("resources(not a store) = %v, want an error naming the type", err)
	}
}
