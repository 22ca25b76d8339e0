package registry

import (
	"context"
	"fmt"
	"time"
)

// Resource is one record of a domain as the resources domain shows it: what
// a customer owns, in a shape common to every domain. It carries nothing
// sensitive: no names, emails or free text.
type Resource struct {
	// ID is the record's id in its own domain, e.g. "lac_01JQ...". Its
	// prefix is one of its source's Prefixes.
	ID string
	// Domain is the registry name of the domain that keeps it, e.g.
	// "ledger".
	Domain string
	// Type says what it is within its domain, e.g. "ledger_account".
	Type string
	// State is the full name of the domain's state enum value, e.g.
	// "LEDGER_ACCOUNT_STATE_OPEN".
	State string
	// CustomerID is the customer who owns it (a customer owns itself), or
	// "" for what the platform owns.
	CustomerID string
	// CreatedAt is when it was created in its domain.
	CreatedAt time.Time
	// Attributes are non-sensitive facts, by type (e.g. "currency" of a
	// ledger account); nil when there are none. Never a value the
	// domain's contract classifies as sensitive, nor free text a caller
	// wrote.
	Attributes map[string]string
}

// ResourceQuery selects a page of a customer's resources in one source.
type ResourceQuery struct {
	CustomerID string // never empty
	AfterID    string // "" for the first page
	Limit      int
}

// ResourceSource is what one domain offers the resources domain: its
// records that customers own, read in process over the domain's own Store
// (never its backend's internals), so every backend of the domain serves
// it alike. A domain declares one with Domain.Resources; the gateway hands
// every mounted domain's source to the resources domain through
// Env.ResourceSources. Every source is held to the resources domain's
// conformance suite (capabilities/resources/resourcestest) over each
// backend of its domain.
type ResourceSource interface {
	// Prefixes returns the id prefixes of the source's resources, without
	// the underscore (e.g. "lac"); no two sources share one.
	Prefixes() []string

	// CustomerResources returns at most q.Limit resources that customer
	// q.CustomerID owns in the source's domain, with ids greater than
	// q.AfterID, ordered by id. A customer the domain knows nothing of
	// owns nothing there: the answer is empty, not an error (whether the
	// customer exists is the customers domain's to say).
	CustomerResources(ctx context.Context, q ResourceQuery) ([]Resource, error)

	// Resource returns the resource with id, whose prefix is one of
	// Prefixes, or the domain's *domainerr.NotFoundError for it.
	Resource(ctx context.Context, id string) (Resource, error)
}

// ResourcesFunc adapts a typed constructor of a domain's resource source
// to Domain.Resources, checking that the store a backend opened is a S,
// as MountFunc does.
func ResourcesFunc[S any](newSource func(store S) ResourceSource) func(any) (ResourceSource, error) {
	return func(store any) (ResourceSource, error) {
		s, ok := store.(S)
		if !ok {
			var want S
			return nil, fmt.Errorf("registry: backend opened a %T, the domain's resources need a %T", store, &want)
		}
		return newSource(s), nil
	}
}
