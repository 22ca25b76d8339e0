package resources

import (
	"maps"

	"google.golang.org/protobuf/types/known/timestamppb"

	"plinth.dev/plinth/capabilities/registry"
	resourcesv1 "plinth.dev/plinth/sdk/go/gen/plinth/resources/v1"
)

func resourceToProto(r registry.Resource) *resourcesv1.Resource {
	return &resourcesv1.Resource{
		Id:         r.ID,
		Domain:     r.Domain,
		Type:       r.Type,
		State:      r.State,
		CustomerId: r.CustomerID,
		CreatedAt:  timestamppb.New(r.CreatedAt),
		Attributes: maps.Clone(r.Attributes),
	}
}
