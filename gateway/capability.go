package gateway

import (
	"errors"
	"fmt"
	"regexp"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// Capability is one rpc as the gateway sees it: its procedure and the policy
// its contract declares in (plinth.options.v1.capability).
type Capability struct {
	// Procedure is the Connect procedure,
	// e.g. "/plinth.customers.v1.CustomerService/SignUpCustomer".
	Procedure string
	// Domain is the registry name of the domain that serves it.
	Domain    string
	Method    protoreflect.MethodDescriptor
	Owner     string
	Scope     string
	Mutates   bool
	Stability optionsv1.Stability
	Summary   string
}

// unstablePackage matches the package versions buf breaking does not guard.
var unstablePackage = regexp.MustCompile(`\.v\d+(alpha|beta|test)\d*$`)

// scopePattern is what a scope looks like: "<domain>.<verb>", lower case.
var scopePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$`)

// capabilitiesOf reads the capability options of every method of a domain's
// service. A method without an owner, scope, stability or summary is an
// error that names it, so that the gateway does not start with a capability
// whose policy nobody declared.
func capabilitiesOf(domain string, service protoreflect.ServiceDescriptor) ([]Capability, error) {
	var (
		caps []Capability
		errs []error
	)
	methods := service.Methods()
	for i := range methods.Len() {
		m := methods.Get(i)
		name := fmt.Sprintf("capability %s/%s", service.FullName(), m.Name())
		opts, _ := proto.GetExtension(m.Options(), optionsv1.E_Capability).(*optionsv1.Capability)
		if opts == nil {
			errs = append(errs, fmt.Errorf("%s has no (plinth.options.v1.capability) option: declare its owner, scope, stability and summary", name))
			continue
		}
		var missing []string
		if opts.GetOwner() == "" {
			missing = append(missing, "owner")
		}
		if opts.GetScope() == "" {
			missing = append(missing, "scope")
		}
		if opts.GetStability() == optionsv1.Stability_STABILITY_UNSPECIFIED {
			missing = append(missing, "stability")
		}
		if opts.GetSummary() == "" {
			missing = append(missing, "summary")
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("%s has no %v in its (plinth.options.v1.capability) option", name, missing))
			continue
		}
		if !scopePattern.MatchString(opts.GetScope()) {
			errs = append(errs, fmt.Errorf("%s: scope %q must look like \"customers.read\"", name, opts.GetScope()))
			continue
		}
		if opts.GetStability() == optionsv1.Stability_STABILITY_STABLE && unstablePackage.MatchString(string(service.ParentFile().Package())) {
			errs = append(errs, fmt.Errorf("%s is marked STABILITY_STABLE in the unstable package %s, which buf breaking does not guard", name, service.ParentFile().Package()))
			continue
		}
		caps = append(caps, Capability{
			Procedure: fmt.Sprintf("/%s/%s", service.FullName(), m.Name()),
			Domain:    domain,
			Method:    m,
			Owner:     opts.GetOwner(),
			Scope:     opts.GetScope(),
			Mutates:   opts.GetMutates(),
			Stability: opts.GetStability(),
			Summary:   opts.GetSummary(),
		})
	}
	return caps, errors.Join(errs...)
}
