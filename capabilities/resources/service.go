package resources

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/internal/pagetoken"
	resourcesv1 "plinth.dev/plinth/sdk/go/gen/plinth/resources/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/resources/v1/resourcesv1connect"
)

// Service implements the resources capabilities over a Store. The gateway
// validates requests against the contract before they reach it; Service
// decides which source an id belongs to (by its prefix), checks that the
// customer of a listing exists, and merges the sources' pages into one
// listing ordered by id:
//
//	ListCustomerResources(customer, after)
//	  ├─ the customer's own source: Resource(customer)      NotFound if none
//	  ├─ every source: CustomerResources(customer, after, size+1)
//	  └─ merge by id, keep size, token after the last
//
// Each source returns its own first size+1 resources after the token's id,
// in id order, so the merged first size+1 are the listing's: keyset paging
// across domains, with no state kept between pages.
type Service struct {
	store  Store
	tokens *pagetoken.Codec
}

var _ resourcesv1connect.ResourceServiceHandler = (*Service)(nil)

// Option configures a Service.
type Option interface{ apply(*Service) }

type optionFunc func(*Service)

func (f optionFunc) apply(s *Service) { f(s) }

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

// NewService returns the resources capabilities over store.
func NewService(store Store, opts ...Option) *Service {
	s := &Service{store: store, tokens: pagetoken.NewEphemeralCodec()}
	for _, o := range opts {
		o.apply(s)
	}
	return s
}

// ListCustomerResources returns a page of what a customer owns, across
// every source, ordered by id.
func (s *Service) ListCustomerResources(ctx context.Context, req *connect.Request[resourcesv1.ListCustomerResourcesRequest]) (*connect.Response[resourcesv1.ListCustomerResourcesResponse], error) {
	m := req.Msg
	customerID := m.GetCustomerId()
	filter := "ListCustomerResources customer=" + customerID
	after, err := s.tokens.Decode(ctx, "page_token", filter, m.GetPageToken())
	if err != nil {
		return nil, err
	}
	sources, err := s.sources()
	if err != nil {
		return nil, err
	}
	// Whether the customer exists is the domain's that keeps customers:
	// asked like any resource, so that no other source has to know.
	if _, err := sources.get(ctx, "customer_id", customerID); err != nil {
		return nil, err
	}
	size := pagetoken.Size(m.GetPageSize())
	// One more than the page, to know whether another page follows.
	q := registry.ResourceQuery{CustomerID: customerID, AfterID: after, Limit: size + 1}
	var found []registry.Resource
	for _, src := range sources.list {
		page, err := src.CustomerResources(ctx, q)
		if err != nil {
			return nil, err
		}
		found = append(found, page...)
	}
	slices.SortFunc(found, func(a, b registry.Resource) int { return cmp.Compare(a.ID, b.ID) })
	res := &resourcesv1.ListCustomerResourcesResponse{}
	if len(found) > size {
		found = found[:size]
		if res.NextPageToken, err = s.tokens.Encode(ctx, filter, found[size-1].ID); err != nil {
			return nil, err
		}
	}
	res.Resources = make([]*resourcesv1.Resource, len(found))
	for i, r := range found {
		res.Resources[i] = resourceToProto(r)
	}
	return connect.NewResponse(res), nil
}

// GetResource returns one resource by id, from the source its prefix
// names.
func (s *Service) GetResource(ctx context.Context, req *connect.Request[resourcesv1.GetResourceRequest]) (*connect.Response[resourcesv1.GetResourceResponse], error) {
	sources, err := s.sources()
	if err != nil {
		return nil, err
	}
	r, err := sources.get(ctx, "resource_id", req.Msg.GetResourceId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&resourcesv1.GetResourceResponse{Resource: resourceToProto(r)}), nil
}

// sourceSet is the Store's sources, indexed by prefix.
type sourceSet struct {
	list     []registry.ResourceSource
	byPrefix map[string]registry.ResourceSource
}

// sources returns the Store's sources as they are now. Two sources that
// claim one prefix are a wiring bug, not the caller's: an internal error.
func (s *Service) sources() (sourceSet, error) {
	set := sourceSet{list: s.store.Sources(), byPrefix: map[string]registry.ResourceSource{}}
	for _, src := range set.list {
		for _, p := range src.Prefixes() {
			if other, dup := set.byPrefix[p]; dup {
				return sourceSet{}, fmt.Errorf("resources: sources %T and %T both claim the id prefix %q", other, src, p)
			}
			set.byPrefix[p] = src
		}
	}
	return set, nil
}

// get returns the resource with id (named by the request's field) from
// the source of its prefix.
func (set sourceSet) get(ctx context.Context, field, id string) (registry.Resource, error) {
	prefix, _ := prefixOf(id)
	src, ok := set.byPrefix[prefix]
	if !ok {
		known := make([]string, 0, len(set.byPrefix))
		for p := range set.byPrefix {
			known = append(known, p)
		}
		slices.Sort(known)
		return registry.Resource{}, &UnknownPrefixError{Field: field, Prefix: prefix, Known: known}
	}
	r, err := src.Resource(ctx, id)
	if err != nil {
		return registry.Resource{}, err
	}
	if r.ID != id {
		return registry.Resource{}, fmt.Errorf("resources: source %T answered resource %s for id %s", src, r.ID, id)
	}
	return r, nil
}
