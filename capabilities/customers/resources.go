package customers

import (
	"context"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/registry"
)

// Resources returns the customers domain's registry.ResourceSource over
// store: every customer is a resource of type "customer" that owns itself,
// with its state and nothing of its profile or email.
func Resources(store Store) registry.ResourceSource { return resourceSource{store: store} }

type resourceSource struct{ store Store }

// Prefixes returns the prefix of customer ids.
func (resourceSource) Prefixes() []string { return []string{"cus"} }

// CustomerResources returns the customer itself, if it exists and its id
// is after q.AfterID.
func (r resourceSource) CustomerResources(ctx context.Context, q registry.ResourceQuery) ([]registry.Resource, error) {
	if q.Limit < 1 || q.CustomerID <= q.AfterID {
		return nil, nil
	}
	c, err := r.store.Get(ctx, q.CustomerID)
	if err != nil {
		if kind, ok := domainerr.KindOf(err); ok && kind == domainerr.KindNotFound {
			return nil, nil // an unknown customer owns nothing
		}
		return nil, err
	}
	return []registry.Resource{customerResource(c)}, nil
}

// Resource returns the customer with id as a resource.
func (r resourceSource) Resource(ctx context.Context, id string) (registry.Resource, error) {
	c, err := r.store.Get(ctx, id)
	if err != nil {
		return registry.Resource{}, err
	}
	return customerResource(c), nil
}

// customerResource is c as a resource: its id, state and creation time,
// never its profile or email.
func customerResource(c Customer) registry.Resource {
	return registry.Resource{
		ID:         c.ID,
		Domain:     "customers",
		Type:       "customer",
		State:      stateToProto(c.State).String(),
		CustomerID: c.ID,
		CreatedAt:  c.CreatedAt,
	}
}
