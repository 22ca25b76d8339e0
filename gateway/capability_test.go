package gateway

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// brokenService builds, at run time, a service in an unstable package
// (.v1alpha1) whose methods get the given capability options (nil: none).
func brokenService(t *testing.T, methods map[string]*optionsv1.Capability, order []string) protoreflect.ServiceDescriptor {
	t.Helper()
	svc := &descriptorpb.ServiceDescriptorProto{Name: proto.String("BrokenService")}
	for _, name := range order {
		m := &descriptorpb.MethodDescriptorProto{
			Name:       proto.String(name),
			InputType:  proto.String(".plinth.test.v1alpha1.Empty"),
			OutputType: proto.String(".plinth.test.v1alpha1.Empty"),
		}
		if c := methods[name]; c != nil {
			m.Options = &descriptorpb.MethodOptions{}
			proto.SetExtension(m.Options, optionsv1.E_Capability, c)
		}
		svc.Method = append(svc.Method, m)
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("plinth/test/v1alpha1/broken.proto"),
		Package:     proto.String("plinth.test.v1alpha1"),
		Syntax:      proto.String("proto3"),
		Dependency:  []string{"plinth/options/v1/options.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Empty")}},
		Service:     []*descriptorpb.ServiceDescriptorProto{svc},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("building the test service: %v", err)
	}
	return fd.Services().Get(0)
}

func TestCapabilitiesOfRefusesUndeclaredPolicy(t *testing.T) {
	t.Parallel()
	complete := func(change func(*optionsv1.Capability)) *optionsv1.Capability {
		c := &optionsv1.Capability{
			Owner:     "test-team",
			Scope:     "test.write",
			Mutates:   true,
			Stability: optionsv1.Stability_STABILITY_PREVIEW,
			Summary:   "A test capability.",
		}
		change(c)
		return c
	}
	order := []string{"NoOwner", "NoScope", "StableInAlpha", "NoOptions", "BadScope", "NothingDeclared", "Fine"}
	svc := brokenService(t, map[string]*optionsv1.Capability{
		"NoOwner":         complete(func(c *optionsv1.Capability) { c.Owner = "" }),
		"NoScope":         complete(func(c *optionsv1.Capability) { c.Scope = "" }),
		"StableInAlpha":   complete(func(c *optionsv1.Capability) { c.Stability = optionsv1.Stability_STABILITY_STABLE }),
		"NoOptions":       nil,
		"BadScope":        complete(func(c *optionsv1.Capability) { c.Scope = "Write Everything" }),
		"NothingDeclared": {},
		"Fine":            complete(func(*optionsv1.Capability) {}),
	}, order)

	caps, err := capabilitiesOf("test", svc)
	if err == nil {
		t.Fatal("capabilitiesOf accepted methods with undeclared policy")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 6 {
		t.Errorf("%d errors, want one per faulty method (6):\n%v", len(lines), err)
	}
	const prefix = "plinth.test.v1alpha1.BrokenService/"
	for method, want := range map[string][]string{
		"NoOwner":         {"[owner]"},
		"NoScope":         {"[scope]"},
		"StableInAlpha":   {"STABILITY_STABLE", "plinth.test.v1alpha1"},
		"NoOptions":       {"no (plinth.options.v1.capability) option"},
		"BadScope":        {`"Write Everything"`},
		"NothingDeclared": {"[owner scope stability summary]"},
	} {
		var line string
		for _, l := range lines {
			if strings.Contains(l, prefix+method+" ") || strings.Contains(l, prefix+method+":") {
				line = l
			}
		}
		if line == "" {
			t.Errorf("no error names %s%s:\n%v", prefix, method, err)
			continue
		}
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("error %q should say %q", line, w)
			}
		}
	}
	if strings.Contains(err.Error(), prefix+"Fine") {
		t.Errorf("a well-declared method is reported: %v", err)
	}
	if len(caps) != 1 || caps[0].Procedure != "/"+prefix+"Fine" {
		t.Errorf("capabilities %v, want only Fine", caps)
	}
}

func TestCapabilitiesOfCustomers(t *testing.T) {
	t.Parallel()
	svc := customersv1.File_plinth_customers_v1_customers_proto.Services().ByName("CustomerService")
	caps, err := capabilitiesOf("customers", svc)
	if err != nil {
		t.Fatalf("capabilitiesOf(customers): %v", err)
	}
	if len(caps) != 11 {
		t.Fatalf("%d capabilities, want 11", len(caps))
	}
	byName := map[string]Capability{}
	for _, c := range caps {
		if c.Domain != "customers" || c.Owner != "customer-platform" || c.Stability != optionsv1.Stability_STABILITY_STABLE || c.Summary == "" {
			t.Errorf("%s: %+v, want domain customers, owner customer-platform, stable, with a summary", c.Procedure, c)
		}
		if c.Procedure != "/plinth.customers.v1.CustomerService/"+string(c.Method.Name()) {
			t.Errorf("procedure %q does not match method %s", c.Procedure, c.Method.FullName())
		}
		byName[string(c.Method.Name())] = c
	}
	for name, want := range map[string]struct {
		scope   string
		mutates bool
	}{
		"SignUpCustomer":      {"customers.write", true},
		"GetCustomer":         {"customers.read", false},
		"ListCustomers":       {"customers.read", false},
		"ApproveCustomer":     {"customers.review", true},
		"FindCustomerByEmail": {"customers.read", false},
	} {
		c, ok := byName[name]
		if !ok {
			t.Errorf("no capability %s", name)
			continue
		}
		if c.Scope != want.scope || c.Mutates != want.mutates {
			t.Errorf("%s: scope %q, mutates %v; want %q, %v", name, c.Scope, c.Mutates, want.scope, want.mutates)
		}
	}
	if caps[0].Procedure != "/plinth.customers.v1.CustomerService/SignUpCustomer" {
		t.Errorf("first capability %s, want the contract's order (SignUpCustomer first)", caps[0].Procedure)
	}
}
